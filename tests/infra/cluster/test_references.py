"""Every reference the stack, the workflow and the nightly harness make resolves against what exists on the kind stack:
the objects upstream's pinned bundles and charts create (after the program's transformations) plus the objects kfops
renders and the workflow creates. Not against kfops' facts: a fact that drifted from upstream cannot vouch for itself.

The one kind of object that is neither rendered nor in upstream's files is what Seldon's operator makes from a
SeldonDeployment at run time: its predictor Services. Those are derived from the SeldonDeployments in the world by
the operator's naming and port rules (code facts, :mod:`kfops.base.upstream.seldon`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from components.deploy import cluster_endpoints
from infra.cluster.tracking import SERVER_NAME
from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT
from kfops.base.upstream import katib, kfp, seldon
from tests.kind.forwards import platform_forwards, serving_forwards
from tests.upstream.world import RUN_NAMESPACE, Placed, World, kind_world

pytestmark = pytest.mark.unit

HOST = re.compile(r"\b([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)")
CORE_GROUPS = {"", "v1", "apps", "batch", "rbac.authorization.k8s.io", "admissionregistration.k8s.io",
               "apiextensions.k8s.io", "networking.k8s.io", "scheduling.k8s.io", "policy", "storage.k8s.io"}


@pytest.fixture(scope="module")
def world() -> World:
    return kind_world()


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a nested structure."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def services(world: World) -> dict[tuple[str, str], set[int]]:
    """``(name, namespace) -> ports`` of every Service on the stack, the operator's predictor Services included."""
    found: dict[tuple[str, str], set[int]] = {}
    for placed in world.objects("Service"):
        found[(placed.name, str(placed.namespace))] = {int(port["port"]) for port in placed.obj["spec"]["ports"]}
    for placed in world.objects("SeldonDeployment"):
        for predictor in placed.obj["spec"]["predictors"]:
            name = seldon.PREDICTOR_SERVICE_NAME.value.format(deployment=placed.name, predictor=predictor["name"])
            found[(name, str(placed.namespace))] = {seldon.PREDICTOR_SERVICE_PORT.value,
                                                     seldon.PREDICTOR_GRPC_PORT.value}
    return found


def referring(world: World) -> list[Placed]:
    """What kfops writes: its rendered objects and the workflow's run-time objects."""
    return [p for p in world.placed if p.origin in ("kfops", "run")]


def harness_targets() -> set[tuple[str, str, int]]:
    forwards = {**platform_forwards(), **serving_forwards()}
    return {(f.service, f.namespace, f.remote_port) for f in forwards.values()}


def test_every_in_cluster_host_is_a_service_on_the_stack(world: World) -> None:
    known = services(world)
    named = {(name, namespace, int(port)) for placed in referring(world)
             for name, namespace, port in HOST.findall(json.dumps(placed.obj))}
    named |= {(name, namespace, int(port)) for url in cluster_endpoints(("v2", "v1"), "kfops-winequality",
                                                                         serving_settings(), RUN_NAMESPACE).values()
              for name, namespace, port in HOST.findall(url)}
    named |= harness_targets()
    assert (kfp.OBJECT_STORE.name, kfp.OBJECT_STORE.namespace, kfp.OBJECT_STORE.port) in named
    missing = {ref for ref in named if ref[2] not in known.get((ref[0], ref[1]), set())}
    assert not missing, f"hosts no Service on the stack answers: {sorted(missing)}"


def serving_settings() -> Any:
    from components.deploy import ServingSettings

    return ServingSettings()


def test_the_mlflow_forward_targets_the_tracking_service(world: World) -> None:
    forward = platform_forwards()["mlflow"]
    assert forward.service == SERVER_NAME
    assert forward.remote_port in services(world)[(SERVER_NAME, forward.namespace)]


def secrets_and_config_maps(world: World) -> dict[tuple[str, str, str], set[str]]:
    """``(kind, name, namespace) -> keys`` of every Secret and ConfigMap on the stack."""
    found = {}
    for kind in ("Secret", "ConfigMap"):
        for placed in world.objects(kind):
            keys = set(placed.obj.get("data") or {}) | set(placed.obj.get("stringData") or {})
            found[(kind, placed.name, str(placed.namespace))] = keys
    return found


def test_every_secret_and_config_map_referenced_exists_with_its_keys(world: World) -> None:
    existing = secrets_and_config_maps(world)
    problems = []
    count = 0
    for placed in referring(world):
        namespace = str(placed.namespace or RUN_NAMESPACE)
        for key, value in walk(placed.obj):
            ref: tuple[str, str, str | None] | None = None
            if key == "secretKeyRef":
                ref = ("Secret", value["name"], value["key"])
            elif key == "configMapKeyRef":
                ref = ("ConfigMap", value["name"], value["key"])
            elif key == "secretRef":
                ref = ("Secret", value["name"], None)
            elif key == "configMapRef":
                ref = ("ConfigMap", value["name"], None)
            elif key in ("secretName", "envSecretRefName") and isinstance(value, str):
                ref = ("Secret", value, None)
            if ref is None:
                continue
            count += 1
            keys = existing.get((ref[0], ref[1], namespace))
            if keys is None:
                problems.append(f"{placed.kind}/{placed.name} needs {ref[0]} {namespace}/{ref[1]}, which nobody makes")
            elif ref[2] is not None and ref[2] not in keys:
                problems.append(f"{placed.kind}/{placed.name} needs key {ref[2]!r} of {ref[0]} {ref[1]} ({keys})")
    assert count > 5, "nothing referenced?"
    assert not problems, "\n".join(problems)


def test_the_object_store_secret_has_the_keys_upstreams_pods_read(world: World) -> None:
    """KFP's API server, UI and SeaweedFS read the Secret kfops creates in place of upstream's (which is dropped)."""
    name = kfp.ARTIFACT_SECRET.value[0]
    created = world.find("Secret", name, kfp.NAMESPACE)
    assert created.origin == "kfops"
    keys = secrets_and_config_maps(world)[("Secret", name, kfp.NAMESPACE)]
    for placed in world.objects("Deployment", origin="upstream"):
        for key, value in walk(placed.obj):
            if key == "secretKeyRef" and value["name"] == name:
                assert value["key"] in keys, (placed.name, value)


def test_every_service_account_used_exists(world: World) -> None:
    accounts = {(p.name, str(p.namespace)) for p in world.objects("ServiceAccount")}
    used = {(PIPELINE_SERVICE_ACCOUNT, RUN_NAMESPACE)}
    for placed in referring(world):
        for key, value in walk(placed.obj):
            if key == "serviceAccountName" and isinstance(value, str):
                used.add((value, str(placed.namespace)))
        if placed.kind in ("RoleBinding", "ClusterRoleBinding"):
            used |= {(s["name"], s["namespace"]) for s in placed.obj["subjects"] if s["kind"] == "ServiceAccount"}
    assert used - accounts == set()


def served_kinds(world: World) -> set[tuple[str, str, str]]:
    """``(group, version, kind)`` every CRD on the stack serves."""
    return {(crd.obj["spec"]["group"], version["name"], crd.obj["spec"]["names"]["kind"])
            for crd in world.objects("CustomResourceDefinition") for version in crd.obj["spec"]["versions"]
            if version.get("served")}


def test_every_custom_kind_kfops_creates_is_served_by_a_crd_on_the_stack(world: World) -> None:
    served = served_kinds(world)
    used = set()
    for placed in referring(world):
        group, _, version = placed.obj["apiVersion"].rpartition("/")
        if group not in CORE_GROUPS:
            used.add((group, version, placed.kind))
    assert {kind for _, _, kind in used} >= {"Experiment", "SeldonDeployment", "Pipeline", "PipelineVersion",
                                             "PodDefault"}
    assert used - served == set()


def test_the_runner_may_do_what_upstream_says_the_run_does(world: World) -> None:
    rules = [rule for placed in world.objects("Role", origin="kfops") for rule in placed.obj["rules"]]

    def allowed(group: str, resource: str, verb: str, name: str | None) -> bool:
        return any(group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
                   and (not rule.get("resourceNames") or name in rule["resourceNames"]) for rule in rules)

    for grant in (*kfp.RUNNER_GRANTS, *katib.CLIENT_GRANTS):
        assert allowed(grant.api_group, grant.resource, grant.verb, grant.resource_name), grant
    # The names the grants name are objects on the stack.
    assert world.find("ConfigMap", kfp.LAUNCHER_CONFIG_MAP.value, kfp.NAMESPACE)
