"""S3 access for steps and trials, configured only from the environment.

Locally ``kfops local env`` sets the variables; on a cluster the ``access-minio`` PodDefault and the
``mlpipeline-minio-artifact`` secret do. Credentials are read at call time and passed explicitly, so a client never
reuses keys boto3 cached from an earlier environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from kfops.base.errors import KfopsError


@dataclass(frozen=True)
class S3Credentials:
    """An S3 access key pair (the local store's generated one, or a stack's secret config).

    ``repr`` shows neither key, so they stay out of tracebacks, logs and test reports.
    """

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)

#: Region S3 clients sign requests for unless the environment names one; MinIO and SeaweedFS accept any.
DEFAULT_REGION = "us-east-1"

#: Variables that may carry the S3 endpoint, in order of precedence: boto3's own, MLflow's, Kubeflow's PodDefault.
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "MINIO_ENDPOINT_URL")


def endpoint_url(env: Mapping[str, str] | None = None) -> str | None:
    """The S3 endpoint from the environment (``http://`` added when a PodDefault gives ``host:port``)."""
    env = os.environ if env is None else env
    for name in ENDPOINT_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value if "://" in value else f"http://{value}"
    return None


def s3_client(connect_timeout: float = 5.0, attempts: int = 3, env: Mapping[str, str] | None = None) -> Any:
    """A boto3 S3 client for the configured endpoint.

    Args:
        connect_timeout: Seconds to wait for a TCP connection.
        attempts: Total attempts per request (boto3's standard retry mode, with backoff).
        env: Where to read the endpoint, region and credentials; this process's environment by default.

    Raises:
        KfopsError: No credentials in the environment.
    """
    import boto3
    from botocore.config import Config

    env = os.environ if env is None else env
    access_key = env.get("AWS_ACCESS_KEY_ID")
    secret_key = env.get("AWS_SECRET_ACCESS_KEY")
    if not access_key or not secret_key:
        raise KfopsError("no S3 credentials in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
                         'locally run `eval "$(kfops local env)"`; on a cluster a step reads them from Secret '
                         "mlpipeline-minio-artifact (a notebook: label it access-minio: \"true\")")
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url(env),
        region_name=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or DEFAULT_REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(connect_timeout=connect_timeout, read_timeout=60,
                      retries={"mode": "standard", "total_max_attempts": attempts},
                      s3={"addressing_style": "path"}),
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key.

    Raises:
        KfopsError: Not an S3 URI with both a bucket and a key.
    """
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        raise KfopsError(f"{uri!r} is not an S3 object URI", "use the form s3://bucket/path/to/object")
    return parsed.netloc, key


def describe_endpoint_error(error: Exception) -> str:
    """A short reason for an S3 failure, naming the endpoint."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    endpoint = endpoint_url() or "AWS default"
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        return f"S3 endpoint {endpoint} does not answer"
    return f"S3 endpoint {endpoint} failed: {type(error).__name__}: {str(error)[:200]}"


def ensure_bucket(client: Any, bucket: str) -> None:
    """Create ``bucket`` unless it already exists (safe to call on every run)."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as create_error:
            if create_error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
