"""Admission webhooks on the kind stack, derived from the webhook configurations upstream's bundles and charts create
(as the program transforms them), never listed by hand.

- A webhook that fails closed must never stand between its own namespace's pods and their creation: otherwise the
  first ``pulumi up`` races (webhook configuration before its server's pod) and any restart deadlocks.
- After every pod of the stack is deleted at once, every workload gets its pods back.
- Katib's metrics collector is still injected into the workflow's trial pods.
- Every object ``pulumi up`` creates that a webhook admits is created after the webhook's server is ready (and, for
  a certificate cert-manager injects, after the CA is in the webhook configuration).
"""

from __future__ import annotations

import pytest

from kfops.base.upstream import cert_manager, katib
from tests.upstream.admission import (
    blocking,
    fail_closed_pod_webhooks,
    namespace_labels,
    pod_templates,
    resource_of,
    restart_from_nothing,
    serving,
    webhooks,
)
from tests.upstream.world import HELM_RELEASE, World, kind_world

pytestmark = pytest.mark.unit

#: The pulumi-kubernetes annotation that makes ``pulumi up`` wait for a condition of an object.
WAIT_FOR = "pulumi.com/waitFor"


@pytest.fixture(scope="module")
def world() -> World:
    return kind_world()


def test_the_stack_has_fail_closed_pod_webhooks_to_judge(world: World) -> None:
    names = {w.name for w in fail_closed_pod_webhooks(world)}
    assert katib.POD_MUTATOR.value[1] in names
    assert len(list(pod_templates(world))) >= 20


def test_no_fail_closed_webhook_selects_a_pod_of_its_own_namespace(world: World) -> None:
    """Its own pods, and every pod of the namespace it runs in, which the stack needs before the webhook serves."""
    problems = []
    for webhook in fail_closed_pod_webhooks(world):
        servers = serving(world, webhook)
        assert servers, f"{webhook.name}: no pod serves it"
        namespaces = {pod.namespace for pod in servers}
        for pod in pod_templates(world):
            if pod.namespace in namespaces and webhook.selects(namespace_labels(world, pod.namespace), pod.labels):
                problems.append(f"{webhook.name} (failurePolicy Fail) selects {pod.namespace}/{pod.workload.name}")
    assert not problems, "\n".join(problems)


def test_every_workload_gets_its_pods_back_after_every_pod_is_deleted(world: World) -> None:
    recovered, stuck = restart_from_nothing(world)
    assert not stuck, f"{len(stuck)} of {len(stuck) + len(recovered)} workloads never get a pod: {sorted(stuck)}"


def test_katib_still_injects_its_metrics_collector_into_the_workflows_trial_pods(world: World) -> None:
    [experiment] = world.objects("Experiment")
    template = experiment.obj["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
    labels = template.get("metadata", {}).get("labels") or {}
    namespace = namespace_labels(world, str(experiment.namespace))
    selected = {w.name for w in webhooks(world) if w.matches("", "v1", "pods") and w.selects(namespace, labels)}
    assert katib.POD_MUTATOR.value[1] in selected
    [mutator] = [w for w in webhooks(world) if w.name == katib.POD_MUTATOR.value[1]]
    assert mutator.fails_closed, "a trial pod must never start without its metrics collector"


def admitting(world: World, placed: object) -> list:
    from tests.upstream.world import Placed

    assert isinstance(placed, Placed)
    group, version, resource = resource_of(world, placed)
    labels = placed.obj.get("metadata", {}).get("labels") or {}
    namespace = namespace_labels(world, placed.namespace) if placed.namespace else None
    return [w for w in webhooks(world) if w.fails_closed and w.matches(group, version, resource)
            and w.selects(namespace, labels)]


def test_what_pulumi_creates_waits_for_the_webhooks_that_admit_it(world: World) -> None:
    problems = []
    releases = {r.name for r in world.rendering.of_type(HELM_RELEASE)}
    checked = 0
    for placed in world.placed:
        if placed.resource is None or placed.resource in releases:
            continue  # created at run time, or by Helm inside its release
        needs = world.dependencies(placed.resource)
        for webhook in admitting(world, placed):
            checked += 1
            servers = {pod.workload.resource for pod in serving(world, webhook)}
            if not servers & (needs | releases.intersection(needs)):
                problems.append(f"{placed.kind} {placed.name} does not wait for the server of {webhook.name}")
            if webhook.configuration.resource not in needs | {placed.resource}:
                problems.append(f"{placed.kind} {placed.name} does not wait for {webhook.configuration.name}")
            annotations = webhook.configuration.obj["metadata"].get("annotations") or {}
            injected = not all(w.get("clientConfig", {}).get("caBundle") for w in webhook.configuration.obj["webhooks"])
            if "cert-manager.io/inject-ca-from" in annotations and injected and WAIT_FOR not in annotations:
                problems.append(f"{webhook.configuration.name}'s CA is injected by cert-manager, but pulumi up does "
                                "not wait for it")
    assert checked, "nothing on the stack meets a webhook?"
    assert not problems, "\n".join(sorted(set(problems)))


def test_cert_manager_objects_wait_for_cert_managers_release(world: World) -> None:
    """cert-manager's own webhook is in its chart, which the pinned data does not hold: its Issuers and Certificates
    (group ``cert-manager.io``) must wait for the release, which ends once the webhook admits them."""
    [release] = [r for r in world.rendering.of_type(HELM_RELEASE) if r.inputs["chart"] == cert_manager.CHART.value[0]]
    issued = [p for p in world.placed if p.obj["apiVersion"].startswith("cert-manager.io/")]
    assert issued
    for placed in issued:
        assert placed.resource is not None
        assert release.name in world.dependencies(placed.resource), placed.name


def test_trial_pods_need_katib_and_nothing_else_of_the_platform(world: World) -> None:
    """Only run-time trial pods depend on Katib's webhook; the platform's own pods depend on none."""
    for pod in pod_templates(world):
        assert not blocking(world, pod), (pod.workload.name, [w.name for w in blocking(world, pod)])
