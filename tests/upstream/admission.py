"""Admission as the API server applies it, over the objects of a :class:`~tests.upstream.world.World`: which webhooks
an object meets, who serves them, and whether every pod of the stack can (re)start.

Rules follow admissionregistration.k8s.io/v1: ``failurePolicy`` defaults to ``Fail``; a webhook is called for an
object when one of its rules matches the operation, group, version and resource, its ``namespaceSelector`` matches
the namespace's labels (which always include ``kubernetes.io/metadata.name``) and its ``objectSelector`` the object's
labels. ``matchConditions`` are left out on purpose: they test who makes the request, and pods are made by controllers
(ReplicaSet, Job, Argo), whatever kfops' own identities are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.upstream.world import Placed, World

#: Workload kinds and where their pod template is.
WORKLOADS = {"Deployment": ("spec", "template"), "StatefulSet": ("spec", "template"),
             "DaemonSet": ("spec", "template"), "Job": ("spec", "template")}
#: The resource (plural) of the built-in kinds the stack creates.
CORE_RESOURCES = {"Pod": "pods", "Service": "services", "ConfigMap": "configmaps", "Secret": "secrets",
                  "ServiceAccount": "serviceaccounts", "Namespace": "namespaces", "Deployment": "deployments",
                  "Job": "jobs", "PersistentVolumeClaim": "persistentvolumeclaims", "Role": "roles",
                  "RoleBinding": "rolebindings", "ClusterRole": "clusterroles",
                  "ClusterRoleBinding": "clusterrolebindings", "NetworkPolicy": "networkpolicies",
                  "PriorityClass": "priorityclasses", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets",
                  "CustomResourceDefinition": "customresourcedefinitions",
                  "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
                  "ValidatingWebhookConfiguration": "validatingwebhookconfigurations"}


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a label selector matches ``labels`` (an absent or empty selector matches everything)."""
    if not selector:
        return True
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


@dataclass(frozen=True)
class Webhook:
    """One webhook of a configuration on the stack."""

    configuration: Placed
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def fails_closed(self) -> bool:
        return self.spec.get("failurePolicy", "Fail") == "Fail"

    def matches(self, group: str, version: str, resource: str, operation: str = "CREATE") -> bool:
        def has(values: list[str], value: str) -> bool:
            return "*" in values or value in values

        return any(has(rule.get("apiGroups", []), group) and has(rule.get("apiVersions", []), version)
                   and has(rule.get("resources", []), resource) and has(rule.get("operations", []), operation)
                   for rule in self.spec.get("rules", []))

    def selects(self, namespace_labels: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
        """Whether an object with ``labels`` in a namespace with ``namespace_labels`` (None: cluster-scoped) is sent
        to this webhook."""
        if namespace_labels is not None and not selects(self.spec.get("namespaceSelector"), namespace_labels):
            return False
        return selects(self.spec.get("objectSelector"), labels)

    @property
    def service(self) -> tuple[str, str] | None:
        target = self.spec.get("clientConfig", {}).get("service")
        return (target["name"], target["namespace"]) if target else None


def webhooks(world: World) -> list[Webhook]:
    return [Webhook(placed, spec) for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
            for placed in world.objects(kind) for spec in placed.obj.get("webhooks", [])]


def namespace_labels(world: World, namespace: str) -> dict[str, str]:
    return {**world.namespaces().get(namespace, {}), "kubernetes.io/metadata.name": namespace}


@dataclass(frozen=True)
class PodTemplate:
    """The pods a workload makes: its namespace and the labels they carry."""

    workload: Placed
    namespace: str
    labels: dict[str, str]
    spec: dict[str, Any]


def pod_templates(world: World, origins: tuple[str, ...] = ("kfops", "upstream")) -> Iterator[PodTemplate]:
    for placed in world.placed:
        if placed.kind in WORKLOADS and placed.origin in origins:
            template = placed.obj
            for key in WORKLOADS[placed.kind]:
                template = template[key]
            yield PodTemplate(placed, str(placed.namespace), dict(template.get("metadata", {}).get("labels") or {}),
                              template["spec"])


def serving(world: World, webhook: Webhook) -> list[PodTemplate]:
    """The workloads whose pods serve a webhook: those its Service selects."""
    if webhook.service is None:
        return []
    name, namespace = webhook.service
    service = world.find("Service", name, namespace)
    selector = service.obj["spec"].get("selector") or {}
    return [pod for pod in pod_templates(world) if pod.namespace == namespace
            and all(pod.labels.get(key) == value for key, value in selector.items())]


def fail_closed_pod_webhooks(world: World) -> list[Webhook]:
    return [w for w in webhooks(world) if w.fails_closed and w.matches("", "v1", "pods")]


def blocking(world: World, pod: PodTemplate) -> list[Webhook]:
    """The fail-closed webhooks a pod of ``pod`` must get through to be created."""
    labels = namespace_labels(world, pod.namespace)
    return [w for w in fail_closed_pod_webhooks(world) if w.selects(labels, pod.labels)]


def restart_from_nothing(world: World) -> tuple[set[str], set[str]]:
    """Every pod of the stack deleted at once (a node restart): which workloads get pods back, which never do.

    A workload's pod is created once every fail-closed webhook it meets has a serving pod; webhooks' servers come
    back as their own pods are created. Returns ``(recovered, stuck)`` as ``namespace/name`` of the workloads.
    """
    pods = list(pod_templates(world))
    servers = {w.name + "@" + w.configuration.name: {p.workload.resource for p in serving(world, w)}
               for w in fail_closed_pod_webhooks(world)}
    running: set[str | None] = set()
    changed = True
    while changed:
        changed = False
        for pod in pods:
            if pod.workload.resource in running:
                continue
            if all(servers[w.name + "@" + w.configuration.name] & running for w in blocking(world, pod)):
                running.add(pod.workload.resource)
                changed = True
    recovered = {f"{p.namespace}/{p.workload.name}" for p in pods if p.workload.resource in running}
    stuck = {f"{p.namespace}/{p.workload.name}" for p in pods if p.workload.resource not in running}
    return recovered, stuck


def resource_of(world: World, placed: Placed) -> tuple[str, str, str]:
    """``(group, version, resource)`` of an object, the resource of a custom kind from its CRD."""
    group, _, version = placed.obj["apiVersion"].rpartition("/")
    if placed.kind in CORE_RESOURCES:
        return group, version, CORE_RESOURCES[placed.kind]
    for crd in world.objects("CustomResourceDefinition"):
        names = crd.obj["spec"]["names"]
        if crd.obj["spec"]["group"] == group and names["kind"] == placed.kind:
            return group, version, names["plural"]
    raise LookupError(f"no CRD on the stack serves {placed.obj['apiVersion']} {placed.kind}")
