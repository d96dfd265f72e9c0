"""Store: put the cleaned dataset in the object store under a content-addressed key and return its URI."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.storage import describe_endpoint_error, endpoint_url, ensure_bucket, s3_client


@in_step(Step.STORE)
def store_dataset(path: Path, bucket: str, prefix: str) -> str:
    """Upload ``path`` to ``s3://bucket/prefix/<sha256>.parquet``.

    The key is derived from the content, so storing the same data twice is a no-op that returns the same URI, and
    a URI always names exactly one version of the data (trials and the final training read the same bytes). S3
    makes an object visible only once its upload completed, so a failed run never leaves a partial dataset behind.

    Returns:
        The ``s3://`` URI of the stored object.

    Raises:
        KfopsError: The object store is unreachable or refuses the upload.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    key = f"{prefix.strip('/')}/{digest}{path.suffix}"
    client = s3_client()
    try:
        ensure_bucket(client, bucket)
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            if head["ContentLength"] == path.stat().st_size:
                return f"s3://{bucket}/{key}"
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        client.upload_file(str(path), bucket, key)
    except (BotoCoreError, ClientError) as error:
        raise KfopsError(f"could not store the dataset in s3://{bucket}/{key}: {describe_endpoint_error(error)}",
                         f"check that the object store at {endpoint_url() or 'AWS'} is up (locally: "
                         "`kfops local status`) and the credentials are valid") from error
    return f"s3://{bucket}/{key}"
