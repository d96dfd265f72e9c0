from __future__ import annotations

import pytest

from infra.cluster.mock_runtime import Rendering, record
from infra.cluster.serving_config import CONFIG_MAP_NAME, ServingConfig, ServingConfigArgs
from infra.cluster.validate import validate_all
from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT, SELDON_S3_SECRET_NAME, SERVING_CONFIG_KEYS

pytestmark = pytest.mark.unit


def build(version: str = "1.17.1") -> Rendering:
    return record(lambda: ServingConfig("serving", ServingConfigArgs(namespace="team-ml", seldon_version=version)))


def test_deploy_step_settings_name_the_secret_and_pinned_version() -> None:
    data = build().find("ConfigMap", CONFIG_MAP_NAME)["data"]
    assert data["SELDON_ENV_SECRET_REF_NAME"] == SELDON_S3_SECRET_NAME
    assert data["SELDON_CORE_VERSION"] == "1.17.1"
    # Exactly the keys the deploy step reads (a key nobody reads is a setting that silently does nothing).
    assert set(data) == set(SERVING_CONFIG_KEYS)


def test_runner_may_manage_seldon_deployments_and_read_their_pods_and_nothing_else() -> None:
    rendering = build()
    rules = rendering.find("Role", "kfops-seldon-deployer")["rules"]
    assert [(rule["apiGroups"], rule["resources"]) for rule in rules] == [
        (["machinelearning.seldon.io"], ["seldondeployments"]), ([""], ["pods"])]
    assert rules[1]["verbs"] == ["get", "list"]
    binding = rendering.find("RoleBinding", "kfops-seldon-deployer")
    assert binding["subjects"][0]["name"] == PIPELINE_SERVICE_ACCOUNT


@pytest.mark.parametrize(("version", "warned"), [("1.17.1", False), ("1.16.0", False), ("1.18.0", True)])
def test_bsl_licensed_versions_are_warned_about(version: str, warned: bool) -> None:
    warnings = build(version).warnings
    assert any("Business Source License" in warning for warning in warnings) is warned


def test_endpoint_is_the_seldon_service_of_the_predictor() -> None:
    endpoints: list[str] = []

    def program() -> None:
        serving = ServingConfig("serving", ServingConfigArgs(namespace="team-ml"))
        serving.endpoint.apply(endpoints.append)

    record(program)
    assert endpoints == ["http://kfops-model-default.team-ml.svc.cluster.local:8000"]


def test_every_object_is_valid() -> None:
    validate_all(build().manifests())
