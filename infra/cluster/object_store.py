"""The object store as the workflow sees it: its credentials and endpoint (ObjectStoreAccess) and its buckets.

Replaces the tutorials' hand-made steps: copying ``mlpipeline-minio-artifact`` into the user namespace, writing the
``access-minio`` PodDefault (:mod:`.poddefaults` now), and templating Seldon's rclone secret with sed.
ObjectStoreAccess comes before the platform (KFP's own pods read its Secret); Buckets after it (it needs the store).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.cluster.meta import child_options, object_meta
from kfops.base.contract import (
    BUCKETS,
    PROJECT_IMAGE,
    PROJECT_IMAGE_USER,
    S3_ACCESS_KEY_KEY,
    S3_CONFIG_KEYS,
    S3_CONFIG_MAP,
    S3_SECRET_ENV,
    S3_SECRET_KEY_KEY,
    S3_SECRET_NAME,
    SELDON_S3_SECRET_NAME,
)
from kfops.base.pod_security import restricted_container, restricted_pod
from kfops.base.storage import DEFAULT_REGION, S3Credentials

_COMPONENT = "object-store"
#: rclone reads a remote named ``s3`` from ``RCLONE_CONFIG_S3_*``; Seldon's storage initializer maps ``s3://`` URIs
#: to that remote.
RCLONE_PREFIX = "RCLONE_CONFIG_S3_"

# Creates the missing buckets and nothing else: idempotent, so the Job can be re-run or replaced safely.
_CREATE_BUCKETS = """\
import os
import boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name=os.environ["AWS_DEFAULT_REGION"])
have = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
for bucket in os.environ["KFOPS_BUCKETS"].split(","):
    if bucket not in have:
        s3.create_bucket(Bucket=bucket)
        print("created bucket", bucket)
"""


@dataclass(frozen=True)
class ObjectStoreAccessArgs:
    """Inputs of :class:`ObjectStoreAccess`.

    Attributes:
        namespace: Namespace of the secrets and the ConfigMap.
        endpoint: In-cluster URL of the S3 store.
        credentials: The key pair from secret config, or None to generate one (only for a store this stack
            installs, which then takes its credentials from the generated secret).
        region: Region S3 clients sign for.
        rclone_provider: rclone ``provider`` value for Seldon's storage initializer.
    """

    namespace: pulumi.Input[str]
    endpoint: str
    credentials: S3Credentials | None = None
    region: str = DEFAULT_REGION
    rclone_provider: str = "Other"


class ObjectStoreAccess(pulumi.ComponentResource):
    """The KFP artifact secret, the Seldon rclone secret, and the ConfigMap with the store's endpoint and region.

    Attributes:
        endpoint: In-cluster S3 endpoint.
        region: Region S3 clients sign for.
        access_key: The access key id (a Pulumi secret).
        secret_key: The secret access key (a Pulumi secret).
        secrets: The Secret resources, for workloads that must not start before them.
    """

    def __init__(self, name: str, args: ObjectStoreAccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfops:platform:ObjectStoreAccess", name, None, opts)
        child = child_options(self, opts)
        access_key: pulumi.Input[str]
        secret_key: pulumi.Input[str]
        if args.credentials is None:
            # AWS-shaped key pair: 20 characters id, 40 characters secret, letters and digits only so it survives
            # every client's config format (rclone, boto3, MLflow) without quoting.
            access_key = random.RandomPassword(f"{name}-access-key", length=20, special=False, opts=child).result
            secret_key = random.RandomPassword(f"{name}-secret-key", length=40, special=False, opts=child).result
        else:
            access_key, secret_key = args.credentials.access_key_id, args.credentials.secret_access_key
        self.access_key = pulumi.Output.secret(access_key)
        self.secret_key = pulumi.Output.secret(secret_key)
        self.endpoint = pulumi.Output.from_input(args.endpoint)
        self.region = pulumi.Output.from_input(args.region)

        s3_secret = k8s.core.v1.Secret(
            f"{name}-kfp-artifact", metadata=object_meta(S3_SECRET_NAME, args.namespace, _COMPONENT), type="Opaque",
            string_data={S3_ACCESS_KEY_KEY: self.access_key, S3_SECRET_KEY_KEY: self.secret_key}, opts=child)
        seldon_secret = k8s.core.v1.Secret(
            f"{name}-seldon-rclone", metadata=object_meta(SELDON_S3_SECRET_NAME, args.namespace, _COMPONENT),
            type="Opaque", string_data=rclone_config(args.endpoint, args.rclone_provider, self.access_key,
                                                     self.secret_key), opts=child)
        config = k8s.core.v1.ConfigMap(
            f"{name}-settings", metadata=object_meta(S3_CONFIG_MAP, args.namespace, _COMPONENT),
            data={"AWS_ENDPOINT_URL_S3": args.endpoint, "AWS_DEFAULT_REGION": args.region}, opts=child)
        self.secrets = [s3_secret, seldon_secret]
        self.resources: list[pulumi.Resource] = [s3_secret, seldon_secret, config]
        self.register_outputs({"endpoint": self.endpoint, "s3_secret": S3_SECRET_NAME,
                               "seldon_secret": SELDON_S3_SECRET_NAME, "config_map": S3_CONFIG_MAP})


@dataclass(frozen=True)
class BucketsArgs:
    """Inputs of :class:`Buckets`.

    Attributes:
        namespace: Namespace of the Job.
        buckets: Buckets the workflow uses.
    """

    namespace: pulumi.Input[str]
    buckets: tuple[str, ...] = BUCKETS


class Buckets(pulumi.ComponentResource):
    """A Job that creates the workflow's buckets if they are missing.

    It reads the keys from the Secret and the endpoint from the ConfigMap of :class:`ObjectStoreAccess`.

    Attributes:
        buckets: Bucket names.
    """

    def __init__(self, name: str, args: BucketsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfops:platform:Buckets", name, None, opts)
        child = child_options(self, opts)
        self.buckets = pulumi.Output.from_input(list(args.buckets))
        env = [
            *s3_secret_env(),
            *({"name": key, "valueFrom": {"configMapKeyRef": {"name": S3_CONFIG_MAP, "key": key}}}
              for key in S3_CONFIG_KEYS),
            {"name": "KFOPS_BUCKETS", "value": ",".join(args.buckets)},
        ]
        k8s.batch.v1.Job(
            f"{name}-job", metadata=object_meta("kfops-create-buckets", args.namespace, _COMPONENT),
            spec={
                "backoffLimit": 6,
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/component": _COMPONENT}},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "automountServiceAccountToken": False,
                        "securityContext": restricted_pod(PROJECT_IMAGE_USER, PROJECT_IMAGE_USER),
                        "containers": [{
                            "name": "create-buckets", "image": PROJECT_IMAGE,
                            "command": ["python", "-c", _CREATE_BUCKETS], "env": env,
                            "securityContext": restricted_container(),
                        }],
                    },
                },
            },
            opts=child)
        self.register_outputs({"buckets": self.buckets})


def s3_secret_env() -> list[dict[str, object]]:
    """Env entries that read the KFP artifact secret into the variable names boto3 and MLflow read.

    Returns:
        ``[{"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": ...}}, ...]``.
    """
    return [{"name": variable, "valueFrom": {"secretKeyRef": {"name": S3_SECRET_NAME, "key": key}}}
            for variable, key in S3_SECRET_ENV.items()]


def rclone_config(
    endpoint: str, provider: str, access_key: pulumi.Input[str], secret_key: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """The ``RCLONE_CONFIG_S3_*`` variables Seldon Core's rclone storage initializer reads to download models.

    Args:
        endpoint: S3 endpoint URL.
        provider: rclone provider (``Minio``, ``AWS``, ``Other``...).
        access_key: Access key id.
        secret_key: Secret access key.

    Returns:
        Secret data: variable name to value.
    """
    return {
        f"{RCLONE_PREFIX}TYPE": "s3",
        f"{RCLONE_PREFIX}PROVIDER": provider,
        # Credentials come from these keys, not from the pod's environment or an instance role.
        f"{RCLONE_PREFIX}ENV_AUTH": "false",
        f"{RCLONE_PREFIX}ACCESS_KEY_ID": access_key,
        f"{RCLONE_PREFIX}SECRET_ACCESS_KEY": secret_key,
        f"{RCLONE_PREFIX}ENDPOINT": endpoint,
    }
