from __future__ import annotations

import pytest

from infra.cluster.mock_runtime import Rendering, record
from infra.cluster.tracking import SERVER_NAME, Tracking, TrackingArgs
from infra.cluster.validate import validate_all
from kfops.base.contract import MLFLOW_ARTIFACT_ROOT as ARTIFACT_ROOT
from kfops.base.contract import MLFLOW_CONFIG_KEYS, MLFLOW_CONFIG_MAP, PROJECT_IMAGE_USER, S3_SECRET_ENV, S3_SECRET_NAME

pytestmark = pytest.mark.unit

S3 = "http://s3.storage.svc.cluster.local:9000"


def build(**changes: object) -> Rendering:
    def program() -> None:
        import pulumi_kubernetes as k8s

        secret = k8s.core.v1.Secret("s3", metadata={"name": S3_SECRET_NAME, "namespace": "team-ml"})
        args = {"namespace": "team-ml", "s3_endpoint": S3, "secrets": [secret], **changes}
        Tracking("tracking", TrackingArgs(**args))  # type: ignore[arg-type]

    return record(program)


def test_deployed_server_is_what_the_config_map_points_at() -> None:
    rendering = build()
    url = f"http://{SERVER_NAME}.team-ml.svc.cluster.local:5000"
    data = rendering.find("ConfigMap", MLFLOW_CONFIG_MAP)["data"]
    assert data == {"MLFLOW_TRACKING_URI": url, "MLFLOW_S3_ENDPOINT_URL": S3}
    assert set(data) == set(MLFLOW_CONFIG_KEYS)
    service = rendering.find("Service", SERVER_NAME)
    deployment = rendering.find("Deployment", SERVER_NAME)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"].items() >= service["spec"]["selector"].items()


def test_server_keeps_runs_in_a_database_volume_and_artifacts_in_s3() -> None:
    rendering = build()
    pod = rendering.find("Deployment", SERVER_NAME)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    command = container["command"]
    assert command[command.index("--default-artifact-root") + 1] == ARTIFACT_ROOT
    assert command[command.index("--backend-store-uri") + 1].startswith("sqlite:////")
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == SERVER_NAME
    env = {entry["name"]: entry for entry in container["env"]}
    for variable, key in S3_SECRET_ENV.items():
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": S3_SECRET_NAME, "key": key}


def test_server_starts_only_after_the_secret_it_reads() -> None:
    assert "s3" in build().named("tracking-server").depends_on


def test_external_server_is_only_referenced() -> None:
    rendering = build(mode="external", external_url="https://mlflow.example.com")
    assert rendering.of_type("kubernetes:apps/v1:Deployment") == []
    assert rendering.find("ConfigMap", MLFLOW_CONFIG_MAP)["data"]["MLFLOW_TRACKING_URI"] == \
        "https://mlflow.example.com"


def test_the_database_volume_is_writable_by_the_image_user() -> None:
    pod = build().find("Deployment", SERVER_NAME)["spec"]["template"]["spec"]
    assert pod["securityContext"].items() >= {"runAsUser": PROJECT_IMAGE_USER, "runAsGroup": PROJECT_IMAGE_USER,
                                              "fsGroup": PROJECT_IMAGE_USER}.items()


def test_every_object_is_valid() -> None:
    validate_all(build().manifests())


def test_the_server_runs_no_job_runner_and_sends_no_telemetry() -> None:
    from kfops.base.tracking import SERVER_ENV

    [container] = build().find("Deployment", SERVER_NAME)["spec"]["template"]["spec"]["containers"]
    env = {entry["name"]: entry.get("value") for entry in container["env"]}
    assert env.items() >= SERVER_ENV.items()
