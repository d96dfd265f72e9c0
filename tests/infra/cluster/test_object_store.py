from __future__ import annotations

import pytest
from pulumi.runtime import rpc

from infra.cluster.mock_runtime import SECRET_PLACEHOLDER, Rendering, record
from infra.cluster.object_store import Buckets, BucketsArgs, ObjectStoreAccess, ObjectStoreAccessArgs
from infra.cluster.poddefaults import ENDPOINT_ENV, PodDefaults, PodDefaultsArgs
from infra.cluster.validate import validate_all
from kfops.base.contract import (
    ACCESS_MINIO_PODDEFAULT,
    BUCKETS,
    S3_ACCESS_KEY_KEY,
    S3_CONFIG_KEYS,
    S3_CONFIG_MAP,
    S3_SECRET_ENV,
    S3_SECRET_KEY_KEY,
    S3_SECRET_NAME,
    SELDON_S3_SECRET_NAME,
)
from kfops.base.storage import S3Credentials

pytestmark = pytest.mark.unit

ENDPOINT = "http://s3.storage.svc.cluster.local:9000"
CREDENTIALS = S3Credentials("AKIATESTACCESSKEY000", "test-secret-key-that-must-never-be-rendered")


def build(credentials: S3Credentials | None = CREDENTIALS) -> Rendering:
    def program() -> None:
        ObjectStoreAccess("object-store", ObjectStoreAccessArgs(
            namespace="team-ml", endpoint=ENDPOINT, credentials=credentials, rclone_provider="Minio"))
        Buckets("buckets", BucketsArgs(namespace="team-ml"))
        PodDefaults("poddefaults", PodDefaultsArgs(namespace="team-ml", s3_endpoint=ENDPOINT,
                                                   mlflow_url="http://kfops-mlflow.team-ml.svc.cluster.local:5000"))

    return record(program)


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


def test_the_endpoint_and_region_are_a_config_map_steps_and_trials_read() -> None:
    data = build().find("ConfigMap", S3_CONFIG_MAP)["data"]
    assert set(data) == set(S3_CONFIG_KEYS)
    assert data["AWS_ENDPOINT_URL_S3"] == ENDPOINT


def test_bucket_job_reads_keys_from_the_secret_and_the_endpoint_from_the_config_map() -> None:
    job = build().find("Job", "kfops-create-buckets")
    env = {entry["name"]: entry for entry in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KFOPS_BUCKETS"]["value"] == ",".join(BUCKETS)
    assert env["AWS_ENDPOINT_URL_S3"]["valueFrom"] == {"configMapKeyRef": {"name": S3_CONFIG_MAP,
                                                                            "key": "AWS_ENDPOINT_URL_S3"}}
    for variable, key in S3_SECRET_ENV.items():
        assert env[variable]["valueFrom"] == {"secretKeyRef": {"name": S3_SECRET_NAME, "key": key}}


def test_every_object_is_valid() -> None:
    validate_all(build().manifests())
