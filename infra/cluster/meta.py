"""Metadata every object the Pulumi program creates shares: recommended labels and one way to build ObjectMeta."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from kfops.base.contract import POD_LABELS

#: Recommended Kubernetes labels on every object, so ``kubectl get all -l app.kubernetes.io/part-of=kfops`` lists them.
PART_OF = {"app.kubernetes.io/part-of": "kfops", "app.kubernetes.io/managed-by": "pulumi"}


def labels(component: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels of an object that belongs to one component of kfops.

    Args:
        component: What the object is part of, e.g. ``"tracking"``.
        extra: More labels; they win over the recommended ones.

    Returns:
        The label map.
    """
    return {**PART_OF, "app.kubernetes.io/component": component, **(extra or {})}


def object_meta(
    name: pulumi.Input[str],
    namespace: pulumi.Input[str] | None,
    component: str,
    extra_labels: Mapping[str, str] | None = None,
) -> k8s.meta.v1.ObjectMetaArgs:
    """ObjectMeta with a fixed name (never auto-named: the workflow looks objects up by name) and kfops labels.

    Args:
        name: The object's name.
        namespace: Its namespace, or None for a cluster-scoped object.
        component: The component label value.
        extra_labels: More labels.

    Returns:
        The metadata.
    """
    return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=labels(component, extra_labels))


def child_options(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """Options of a component's children: parented to it, and waiting for what the component waits for.

    Pulumi does not pass a component's ``depends_on`` on to its children, so without this a child could be created
    before, say, the platform install its component was told to wait for.

    Args:
        parent: The component.
        opts: The component's own options.

    Returns:
        Options for its children.
    """
    return pulumi.ResourceOptions(parent=parent, depends_on=opts.depends_on if opts else None)


def in_cluster_url(service: str, namespace: str, port: int) -> str:
    """The cluster-DNS URL of a Service port, reachable from any namespace.

    Args:
        service: Service name.
        namespace: Its namespace.
        port: Service port.

    Returns:
        ``http://<service>.<namespace>.svc.cluster.local:<port>``.
    """
    return f"http://{service}.{namespace}.svc.cluster.local:{port}"


def pod_default(name: str, selector_label: str, namespace: pulumi.Input[str], component: str, desc: str,
                env: list[dict[str, Any]], opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """A Kubeflow ``PodDefault`` that injects ``env`` into the pods carrying its label.

    It is named after the label it selects (``<label>: "true"``, the form in :data:`kfops.base.contract.POD_LABELS`).

    Args:
        name: Logical (Pulumi) name.
        selector_label: The label pods carry to receive this PodDefault; also the object's name.
        namespace: Namespace of the PodDefault (it applies to pods of this namespace only).
        component: Component label.
        desc: What the PodDefault injects (shown in Kubeflow's notebook UI).
        env: Environment entries to inject.
        opts: Options (parent) of the resource.

    Returns:
        The PodDefault resource.
    """
    return k8s.apiextensions.CustomResource(
        name, api_version="kubeflow.org/v1alpha1", kind="PodDefault",
        metadata=object_meta(selector_label, namespace, component),
        spec={"desc": desc, "selector": {"matchLabels": {selector_label: POD_LABELS[selector_label]}}, "env": env},
        opts=opts)
