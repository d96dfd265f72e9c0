"""kfops' own pods pass Pod Security's ``restricted`` level (the namespace warns at it), checked with the standard's
own rules (tests/upstream/pod_security.py, which agrees with pod-security-admission's 128 baseline and restricted
v1.32 fixtures), applied to what the stack renders and the workflow creates.

Containers upstream controllers add are theirs: Seldon's executor and storage initializer do not pass, and are left
out (docs/cluster-review.md); Katib's metrics collector is configured to run with the trial's securityContext.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from infra.cluster.doctor import probe_job
from kfops.base.contract import PROJECT_IMAGE_USER
from kfops.base.upstream import katib
from tests.upstream.pod_security import violations
from tests.upstream.world import World, kind_world

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def world() -> World:
    return kind_world()


def test_the_checker_refuses_what_restricted_refuses() -> None:
    """Table-driven from the standard: each pod breaks exactly one rule."""
    good = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                             "capabilities": {"drop": ["ALL"]}}}]}
    assert violations({"spec": good}) == {}
    cases: list[tuple[str, dict[str, Any]]] = [
        ("runAsNonRoot", {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}),
        ("seccompProfile_restricted", {"securityContext": {"runAsNonRoot": True}}),
        ("allowPrivilegeEscalation", {"containers": [{"name": "c", "securityContext": {
            "capabilities": {"drop": ["ALL"]}}}]}),
        ("capabilities_restricted", {"containers": [{"name": "c", "securityContext": {
            "allowPrivilegeEscalation": False}}]}),
        ("runAsUser", {"securityContext": {"runAsNonRoot": True, "runAsUser": 0,
                                           "seccompProfile": {"type": "RuntimeDefault"}}}),
        ("restrictedVolumes", {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
        ("hostNamespaces", {"hostNetwork": True}),
    ]
    for check, change in cases:
        assert set(violations({"spec": {**good, **change}})) == {check}, check


def template_of(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"])


def test_the_stacks_own_workloads_pass_restricted(world: World) -> None:
    workloads = [p for p in world.objects(origin="kfops") if p.kind in ("Deployment", "Job")]
    assert {p.name for p in workloads} == {"kfops-mlflow", "kfops-create-buckets"}
    for placed in workloads:
        assert violations(template_of(placed.obj)) == {}, placed.name


def test_the_doctors_probe_passes_restricted() -> None:
    assert violations(template_of(probe_job("kfops-doctor-x", 60))) == {}


def trial_pod_as_katib_makes_it(world: World) -> dict[str, Any]:
    """The trial pod once Katib's mutator injected its metrics collector, as the stack configures Katib
    (katib-config's collector image, and the trial container's securityContext copied if injectSecurityContext)."""
    [experiment] = world.objects("Experiment")
    template = experiment.obj["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
    name, key = katib.CONFIG.value
    config = yaml.safe_load(world.find("ConfigMap", name, katib.NAMESPACE).obj["data"][key])
    [collector] = [c for c in config["runtime"]["metricsCollectors"] if c["kind"] == "StdOut"]
    sidecar: dict[str, Any] = {"name": "metrics-logger-and-collector", "image": collector["image"]}
    if config["init"]["controller"].get("injectSecurityContext"):
        first = template["spec"]["containers"][0]
        if first.get("securityContext"):
            sidecar["securityContext"] = dict(first["securityContext"])
    spec = {**template["spec"], "containers": [*template["spec"]["containers"], sidecar],
            "shareProcessNamespace": True}
    return {"metadata": template.get("metadata", {}), "spec": spec}


def test_a_trial_pod_passes_restricted_with_katibs_collector_in_it(world: World) -> None:
    pod = trial_pod_as_katib_makes_it(world)
    assert len(pod["spec"]["containers"]) == 2
    assert violations(pod) == {}


def test_kfops_containers_in_seldons_pods_pass_restricted(world: World) -> None:
    for deployment in world.objects("SeldonDeployment"):
        for predictor in deployment.obj["spec"]["predictors"]:
            for component in predictor["componentSpecs"]:
                # Only kfops' own containers, and no pod securityContext: the operator sets the pod's.
                pod = {"spec": {"containers": component["spec"]["containers"]}}
                assert violations(pod) == {}, deployment.name


def test_every_workflow_step_asks_kfp_for_a_non_root_user() -> None:
    """KFP's backend hardens the rest of a step's pod itself (security_context.go at 2.17.0), all but runAsNonRoot."""
    from pipelines.compile import compile_workflow

    compiled = list(yaml.safe_load_all(compile_workflow()))
    executors = compiled[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors
    for name, executor in executors.items():
        context = executor["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert int(context["runAsUser"]) == PROJECT_IMAGE_USER, name
