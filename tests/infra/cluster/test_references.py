"""Every name the stack and the workflow refer to exists: a Service someone installs, a Secret or ConfigMap the program
creates, a grant upstream documents. Checked on the kind stack with the real compiled workflow."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from components.deploy import ServingSettings, seldon_deployment
from components.tune import build_tuning_experiment
from infra.cluster.mock_runtime import Rendering, run_program
from kfops.base.upstream import Service, cert_manager, katib, kfp, kubeflow, seldon

pytestmark = pytest.mark.unit

HOST = re.compile(r"\b([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)")
UPSTREAM_SERVICES: tuple[Service, ...] = (kfp.API, kfp.UI, kfp.OBJECT_STORE, kfp.PIPELINE_VERSION_WEBHOOK,
                                          katib.WEBHOOK, seldon.WEBHOOK, kubeflow.PODDEFAULT_SERVICE,
                                          cert_manager.WEBHOOK)


@pytest.fixture(scope="module")
def kind() -> Rendering:
    return run_program({"kfops:installPlatform": "true", "kfops:namespace": "kubeflow"})


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a nested structure."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def everything(kind: Rendering) -> list[dict[str, Any]]:
    """The rendered objects, plus what the workflow creates at run time (its Experiment and SeldonDeployments)."""
    experiment = build_tuning_experiment("winequality", "s3://datasets/x.parquet", max_trials=2, parallel_trials=1,
                                         max_failed_trials=0, namespace="kubeflow")
    deployments = [seldon_deployment(p, model_name="kfops-winequality", version="1", model_uri="s3://mlflow/x",
                                     namespace="kubeflow", settings=ServingSettings()) for p in ("v2", "v1")]
    return [*kind.manifests(), experiment, *deployments]


def test_every_in_cluster_host_is_a_service_someone_installs(kind: Rendering) -> None:
    rendered = {(obj["metadata"]["name"], obj["metadata"]["namespace"], port["port"]) for obj in kind.manifests()
                if obj["kind"] == "Service" for port in obj["spec"]["ports"]}
    upstream = {(service.name, service.namespace, service.port) for service in UPSTREAM_SERVICES}
    found = {(name, namespace, int(port)) for name, namespace, port in HOST.findall(json.dumps(everything(kind)))}
    assert found, "the stack names no in-cluster service at all?"
    assert found <= rendered | upstream, found - rendered - upstream
    assert (kfp.OBJECT_STORE.name, kfp.OBJECT_STORE.namespace, kfp.OBJECT_STORE.port) in found


def test_every_secret_and_config_map_referenced_is_created(kind: Rendering) -> None:
    created = {(obj["kind"], obj["metadata"]["name"]) for obj in kind.manifests()}
    referenced: set[tuple[str, str]] = set()
    for key, value in walk(everything(kind)):
        if key == "secretKeyRef":
            referenced.add(("Secret", value["name"]))
        elif key == "configMapKeyRef":
            referenced.add(("ConfigMap", value["name"]))
        elif key in ("secretName", "envSecretRefName") and isinstance(value, str):
            referenced.add(("Secret", value))
        elif key == "configMapName" and isinstance(value, str):
            referenced.add(("ConfigMap", value))
    assert referenced, "nothing referenced?"
    assert referenced <= created, referenced - created
    # KFP's own pods read this Secret: the program must create it under upstream's name.
    assert ("Secret", kfp.ARTIFACT_SECRET.value[0]) in created


def test_the_runner_may_do_what_upstream_says_the_run_does(kind: Rendering) -> None:
    rules = [rule for obj in kind.manifests() if obj["kind"] == "Role" for rule in obj["rules"]]

    def allowed(group: str, resource: str, verb: str, name: str | None) -> bool:
        return any(group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
                   and (not rule.get("resourceNames") or name in rule["resourceNames"]) for rule in rules)

    for grant in (*kfp.RUNNER_GRANTS, *katib.CLIENT_GRANTS):
        assert allowed(grant.api_group, grant.resource, grant.verb, grant.resource_name), grant
