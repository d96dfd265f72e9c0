from __future__ import annotations

import pytest
from pulumi.runtime import rpc

from infra.cluster.object_store import ENDPOINT_ENV, ObjectStoreAccess, ObjectStoreAccessArgs
from infra.cluster.render import SECRET_PLACEHOLDER, Rendering, record
from infra.cluster.validate import validate_all
from kfops.base.contract import (
    ACCESS_MINIO_PODDEFAULT,
    BUCKETS,
    S3_ACCESS_KEY_KEY,
    S3_SECRET_ENV,
    S3_SECRET_KEY_KEY,
    S3_SECRET_NAME,
    SELDON_S3_SECRET_NAME,
)
from kfops.base.storage import S3Credentials

pytestmark = pytest.mark.unit

ENDPOINT = "http://s3.storage.svc.cluster.local:9000"
CREDENTIALS = S3Credentials("AKIATESTACCESSKEY000", "test-secret-key-that-must-never-be-rendered")


def build(credentials: S3Credentials | None = CREDENTIALS, create_buckets: bool = True) -> Rendering:
    return record(lambda: ObjectStoreAccess("object-store", ObjectStoreAccessArgs(
        namespace="team-ml", endpoint=ENDPOINT, credentials=credentials, rclone_provider="Minio",
        create_buckets=create_buckets)))


def test_kfp_artifact_secret_has_the_keys_kubeflow_reads_marked_secret() -> None:
    rendering = build()
    data = rendering.inputs_of("Secret", S3_SECRET_NAME)["stringData"]
    assert rpc.is_rpc_secret(data)
    assert rpc.unwrap_rpc_secret(data) == {S3_ACCESS_KEY_KEY: CREDENTIALS.access_key_id,
                                           S3_SECRET_KEY_KEY: CREDENTIALS.secret_access_key}


def test_seldon_secret_is_rclone_s3_remote_config() -> None:
    data = build().inputs_of("Secret", SELDON_S3_SECRET_NAME)["stringData"]
    assert rpc.is_rpc_secret(data)
    assert rpc.unwrap_rpc_secret(data) == {
        "RCLONE_CONFIG_S3_TYPE": "s3",
        "RCLONE_CONFIG_S3_PROVIDER": "Minio",
        "RCLONE_CONFIG_S3_ENV_AUTH": "false",
        "RCLONE_CONFIG_S3_ACCESS_KEY_ID": CREDENTIALS.access_key_id,
        "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": CREDENTIALS.secret_access_key,
        "RCLONE_CONFIG_S3_ENDPOINT": ENDPOINT,
    }


def test_access_minio_poddefault_injects_credentials_by_reference_and_the_endpoint() -> None:
    spec = build().find("PodDefault", ACCESS_MINIO_PODDEFAULT)["spec"]
    assert spec["selector"] == {"matchLabels": {ACCESS_MINIO_PODDEFAULT: "true"}}
    by_name = {entry["name"]: entry for entry in spec["env"]}
    for variable, key in S3_SECRET_ENV.items():
        assert by_name[variable]["valueFrom"] == {"secretKeyRef": {"name": S3_SECRET_NAME, "key": key}}
    assert by_name[ENDPOINT_ENV]["value"] == ENDPOINT


def test_rendered_secrets_hold_placeholders_only() -> None:
    rendering = build()
    assert set(rendering.find("Secret", S3_SECRET_NAME)["stringData"].values()) == {SECRET_PLACEHOLDER}
    text = repr(rendering.manifests())
    assert CREDENTIALS.secret_access_key not in text
    assert CREDENTIALS.access_key_id not in text


def test_generated_credentials_are_secrets_too() -> None:
    rendering = build(credentials=None)
    assert len(rendering.of_type("random:index/randomPassword:RandomPassword")) == 2
    data = rendering.inputs_of("Secret", S3_SECRET_NAME)["stringData"]
    assert rpc.is_rpc_secret(data)
    generated = rpc.unwrap_rpc_secret(data)
    assert len(generated[S3_ACCESS_KEY_KEY]) == 20
    assert len(generated[S3_SECRET_KEY_KEY]) == 40
    assert generated[S3_SECRET_KEY_KEY] not in repr(rendering.manifests())


def test_bucket_job_creates_the_workflow_buckets_after_the_secret_exists() -> None:
    rendering = build()
    assert "object-store-kfp-artifact" in rendering.named("object-store-buckets").depends_on
    job = rendering.find("Job", "kfops-create-buckets")
    env = {entry["name"]: entry for entry in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KFOPS_BUCKETS"]["value"] == ",".join(BUCKETS)
    assert env["AWS_ENDPOINT_URL"]["value"] == ENDPOINT


def test_bucket_job_is_optional() -> None:
    assert build(create_buckets=False).of_type("kubernetes:batch/v1:Job") == []


def test_every_object_is_valid() -> None:
    validate_all(build().manifests())
