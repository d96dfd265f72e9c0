from __future__ import annotations

import copy

import pytest

from components.deploy import (
    ServingSettings,
    cluster_endpoints,
    endpoint_url,
    parse_protocols,
    seldon_deployment,
    serving_name,
)
from infra.cluster.seldon import rollback_manifest
from infra.cluster.validate import validate_manifest
from kfops.base.contract import PROJECT_IMAGE, SELDON_S3_SECRET_NAME, SERVING_V1_IMAGE
from kfops.base.errors import KfopsError
from kfops.base.seldon_versions import license_warning

pytestmark = pytest.mark.unit

SOURCE = "s3://mlflow/artifacts/1/models/m-123/artifacts"


def render(protocol: str, **settings: str) -> dict:
    return seldon_deployment(protocol, model_name="kfops-winequality", version="7", model_uri=SOURCE,
                             namespace="team-ml", settings=ServingSettings(**settings))


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_rendered_deployments_are_valid_seldon_resources(protocol: str) -> None:
    validate_manifest(render(protocol))


def test_v2_is_the_mlflow_server_on_mlserver_with_the_project_image() -> None:
    manifest = render("v2")
    assert manifest["metadata"]["name"] == "kfops-model"
    spec = manifest["spec"]
    assert spec["protocol"] == "v2"
    graph = spec["predictors"][0]["graph"]
    assert graph["implementation"] == "MLFLOW_SERVER"
    assert graph["modelUri"] == SOURCE
    assert graph["envSecretRefName"] == SELDON_S3_SECRET_NAME
    container = spec["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]
    assert container["name"] == graph["name"]
    assert container["image"] == PROJECT_IMAGE
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLSERVER_MODEL_IMPLEMENTATION"] == "kfops_serving.mlserver_runtime.KfopsMLflowRuntime"
    assert env["MLSERVER_MODEL_VERSION"] == "7"
    # Variables the operator sets with override=false: defining one would make it drop the container's env.
    assert not env.keys() & {"MLSERVER_HTTP_PORT", "MLSERVER_GRPC_PORT", "MLSERVER_MODEL_URI",
                             "PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "PREDICTIVE_UNIT_GRPC_SERVICE_PORT"}


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_the_graph_node_is_named_after_the_model_so_the_v2_path_finds_it(protocol: str) -> None:
    # Seldon forces MLSERVER_MODEL_NAME to the node's name; the executor forwards /v2/models/<name>/infer as is.
    manifest = render(protocol)
    predictor = manifest["spec"]["predictors"][0]
    assert predictor["graph"]["name"] == "kfops-winequality"
    assert predictor["componentSpecs"][0]["spec"]["containers"][0]["name"] == "kfops-winequality"
    url = endpoint_url("v2", "kfops-winequality", ServingSettings(), "team-ml")
    assert url == ("http://kfops-model-default.team-ml.svc.cluster.local:8000"
                   "/v2/models/kfops-winequality/infer")


@pytest.mark.parametrize(("registered", "served"), [
    ("kfops-winequality", "kfops-winequality"),
    ("Wine_Quality v2", "wine-quality-v2"),
    ("x" * 70, "x" * 63),
])
def test_serving_names_are_dns_labels(registered: str, served: str) -> None:
    assert serving_name(registered) == served


@pytest.mark.parametrize("registered", ["", "___", "7up"])
def test_a_model_name_that_cannot_be_served_is_refused(registered: str) -> None:
    with pytest.raises(KfopsError, match="cannot name a serving container"):
        serving_name(registered)


def test_v1_is_the_seldon_wrapper_image_reading_the_downloaded_model() -> None:
    manifest = render("v1")
    assert manifest["metadata"]["name"] == "kfops-model-v1"
    spec = manifest["spec"]
    assert spec["protocol"] == "seldon"
    graph = spec["predictors"][0]["graph"]
    assert "implementation" not in graph
    # KfopsModel(**parameters): the wrapper reports the registered name and version with every answer.
    assert graph["parameters"] == [{"name": "model_uri", "type": "STRING", "value": "/mnt/models"},
                                   {"name": "model_name", "type": "STRING", "value": "kfops-winequality"},
                                   {"name": "model_version", "type": "STRING", "value": "7"}]
    assert spec["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["image"] == SERVING_V1_IMAGE


def test_cluster_settings_come_from_the_serving_config_map() -> None:
    settings = ServingSettings.from_env({"SELDON_ENV_SECRET_REF_NAME": "custom-secret",
                                         "SELDON_DEPLOYMENT_NAME": "wine", "SELDON_PREDICTOR_NAME": "main"})
    manifest = seldon_deployment("v2", model_name="m", version="1", model_uri=SOURCE, namespace="n",
                                 settings=settings)
    assert manifest["metadata"]["name"] == "wine"
    assert manifest["spec"]["predictors"][0]["name"] == "main"
    assert manifest["spec"]["predictors"][0]["graph"]["envSecretRefName"] == "custom-secret"
    assert ServingSettings.from_env({}) == ServingSettings()


def test_images_are_pinned() -> None:
    for image in (PROJECT_IMAGE, SERVING_V1_IMAGE):
        assert ":" in image
        assert not image.endswith(":latest")


def test_bsl_seldon_versions_are_flagged() -> None:
    assert license_warning("1.17.1") is None
    assert "Business Source License" in (license_warning("1.18.0") or "")


@pytest.mark.parametrize(("value", "expected"), [("v2", ("v2",)), ("v1", ("v1",)), ("both", ("v2", "v1"))])
def test_protocol_choices(value: str, expected: tuple[str, ...]) -> None:
    assert parse_protocols(value) == expected


def test_unknown_protocol() -> None:
    with pytest.raises(KfopsError, match="unknown serving protocol 'grpc'"):
        parse_protocols("grpc")


def test_rollback_reapplies_the_previous_spec_without_server_fields() -> None:
    previous = copy.deepcopy(render("v2"))
    previous["metadata"].update({"resourceVersion": "42", "uid": "abc", "managedFields": [{}]})
    previous["status"] = {"state": "Available"}
    restored = rollback_manifest(previous)
    assert restored["spec"] == previous["spec"]
    assert set(restored["metadata"]) == {"name", "namespace", "labels"}
    assert "status" not in restored
    validate_manifest(restored)


def test_v2_is_also_served_over_grpc_by_seldons_executor() -> None:
    from kfops.base.upstream import seldon

    urls = cluster_endpoints(("v2", "v1"), "kfops-winequality", ServingSettings(), "team-ml")
    assert urls["v2-grpc"] == "grpc://kfops-model-default.team-ml.svc.cluster.local:5001"
    assert set(urls) == {"v2", "v1", "v2-grpc"}
    assert set(cluster_endpoints(("v1",), "kfops-winequality", ServingSettings(), "team-ml")) == {"v1"}
    # The executor serves gRPC whatever spec.transport says, so the deployment does not set it.
    assert "transport" not in render("v2")["spec"]
    assert seldon.EXECUTOR_SERVES_BOTH.value == ("rest", "grpc")
    assert "ModelInfer" in seldon.EXECUTOR_V2_GRPC_METHODS.value


@pytest.mark.parametrize("protocol", ["v2", "v1"])
def test_the_containers_set_no_variable_that_makes_seldon_drop_their_env(protocol: str) -> None:
    from kfops.base.upstream import seldon

    manifest = seldon_deployment(protocol, model_name="m", version="1", model_uri="s3://b/m", namespace="ns",
                                 settings=ServingSettings())
    for container in manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"]:
        names = {item["name"] for item in container.get("env", [])}
        assert not names & set(seldon.RESERVED_ENV.value)


@pytest.mark.parametrize("protocol", ["v2", "v1"])
def test_a_busy_model_server_is_given_more_than_a_second_to_answer_its_probes(protocol: str) -> None:
    manifest = seldon_deployment(protocol, model_name="m", version="1", model_uri="s3://b/m", namespace="ns",
                                 settings=ServingSettings())
    [container] = manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["timeoutSeconds"] >= 5
        assert container[probe]["failureThreshold"] * container[probe]["periodSeconds"] >= 30
