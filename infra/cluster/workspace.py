"""Workspace: the namespace the workflow runs in, its ServiceAccount and the least-privilege RBAC of its steps."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from infra.cluster.meta import child_options, labels, object_meta
from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT
from kfops.base.upstream import Grant, katib, kfp, kubeflow

_COMPONENT = "workspace"

#: Katib refuses Experiments in a namespace without this label, and injects its metrics collector only there.
KATIB_INJECTION_LABEL = katib.INJECTION_LABEL.value
#: The PodDefault admission webhook only mutates pods of namespaces with this label (Kubeflow profile namespaces).
PODDEFAULT_WEBHOOK_LABEL = kubeflow.PODDEFAULT_NAMESPACE_LABEL.value
#: KFP's profile controller provisions its per-namespace artifact config for namespaces with this label.
KFP_ENABLED_LABEL = {"pipelines.kubeflow.org/enabled": "true"}


def policy_rules(grants: Iterable[Grant]) -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """Role rules granting exactly ``grants`` (one rule per API group, resource and resource name)."""
    verbs: dict[tuple[str, str, str | None], list[str]] = {}
    for grant in grants:
        verbs.setdefault((grant.api_group, grant.resource, grant.resource_name), []).append(grant.verb)
    return [k8s.rbac.v1.PolicyRuleArgs(api_groups=[group], resources=[resource], verbs=sorted(set(names)),
                                       resource_names=[name] if name else None)
            for (group, resource, name), names in sorted(verbs.items(), key=lambda item: str(item[0]))]


#: What the workflow's steps do with the Kubernetes API in their own namespace, and nothing more: what KFP's driver,
#: launcher and Argo's executor do as the run's ServiceAccount, and the tune step's Experiment and Trials.
#: (Managing SeldonDeployments is granted by ServingConfig, which owns serving.)
WORKFLOW_GRANTS: tuple[Grant, ...] = (*kfp.RUNNER_GRANTS, *katib.CLIENT_GRANTS)


def namespace_labels(namespace: str, istio_injection: bool, platform: bool = False) -> dict[str, str]:
    """Labels the workflow's namespace needs for Katib, KFP and Istio to act on its pods.

    Args:
        namespace: The namespace.
        istio_injection: Whether Istio should inject sidecars.
        platform: Whether the stack installs the platform into this namespace (then it also gets the labels KFP's own
            Namespace object would have set).

    Returns:
        The label map. The PodDefault webhook's label is left off the namespace the webhook itself runs in: with its
        ``failurePolicy: Fail``, the webhook's own pods could not be created while it is down.
    """
    return {
        **labels(_COMPONENT),
        **(kfp.NAMESPACE_LABELS.value if platform else {}),
        **(PODDEFAULT_WEBHOOK_LABEL if namespace != kubeflow.PODDEFAULT_NAMESPACE else {}),
        **KATIB_INJECTION_LABEL,
        **KFP_ENABLED_LABEL,
        "istio-injection": "enabled" if istio_injection else "disabled",
    }


@dataclass(frozen=True)
class WorkspaceArgs:
    """Inputs of :class:`Workspace`.

    Attributes:
        namespace: Namespace name (also the Profile name in profile mode).
        mode: ``namespace`` (create it), ``profile`` (create a Kubeflow Profile) or ``existing`` (label it).
        istio_injection: Whether Istio injects sidecars into the namespace's pods.
        profile_owner: Owner of the Profile (profile mode).
        platform: Whether the stack installs the platform into this namespace.
    """

    namespace: str
    mode: Literal["namespace", "profile", "existing"] = "namespace"
    istio_injection: bool = False
    profile_owner: str | None = None
    platform: bool = False


class Workspace(pulumi.ComponentResource):
    """The workflow's namespace (or Profile), its pipeline-runner ServiceAccount, Role and RoleBinding.

    Attributes:
        namespace: The namespace name, resolved once the namespace exists (use it so objects wait for it).
        service_account: Name of the ServiceAccount pipeline runs use.
        resource: The Namespace, Profile or namespace patch itself (for what must wait until it exists).
    """

    namespace: pulumi.Output[str]
    service_account: pulumi.Output[str]

    def __init__(self, name: str, args: WorkspaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfops:platform:Workspace", name, None, opts)
        child = child_options(self, opts)
        wanted_labels = namespace_labels(args.namespace, args.istio_injection, args.platform)

        self.resource: pulumi.Resource
        if args.mode == "profile":
            # The profile controller creates the namespace and labels it from its namespace-labels config, which in
            # Kubeflow's manifests includes the Katib, KFP and PodDefault labels above.
            profile = k8s.apiextensions.CustomResource(
                f"{name}-profile", api_version="kubeflow.org/v1", kind="Profile",
                metadata=object_meta(args.namespace, None, _COMPONENT),
                spec={"owner": {"kind": "User", "name": args.profile_owner}}, opts=child)
            self.namespace = profile.metadata.apply(lambda meta: meta["name"])
            self.resource = profile
        elif args.mode == "existing":
            patch = k8s.core.v1.NamespacePatch(
                f"{name}-namespace",
                metadata=k8s.meta.v1.ObjectMetaPatchArgs(name=args.namespace, labels=wanted_labels), opts=child)
            self.namespace = patch.metadata.apply(lambda meta: meta["name"])
            self.resource = patch
        else:
            namespace = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=args.namespace, labels=wanted_labels), opts=child)
            self.namespace = namespace.metadata.apply(lambda meta: meta["name"])
            self.resource = namespace

        account = k8s.core.v1.ServiceAccount(
            f"{name}-runner", metadata=object_meta(PIPELINE_SERVICE_ACCOUNT, self.namespace, _COMPONENT), opts=child)
        role = k8s.rbac.v1.Role(
            f"{name}-runner", metadata=object_meta(PIPELINE_SERVICE_ACCOUNT, self.namespace, _COMPONENT),
            rules=policy_rules(WORKFLOW_GRANTS), opts=child)
        bind_to_runner(f"{name}-runner", role, self.namespace, _COMPONENT, child)
        self.service_account = account.metadata.apply(lambda meta: meta["name"])

        self.register_outputs({"namespace": self.namespace, "service_account": self.service_account})


def bind_to_runner(
    name: str, role: k8s.rbac.v1.Role, namespace: pulumi.Input[str], component: str, opts: pulumi.ResourceOptions
) -> k8s.rbac.v1.RoleBinding:
    """Bind a namespaced Role to the pipeline-runner ServiceAccount (never a ClusterRole: nothing cluster-wide).

    Args:
        name: Logical name of the binding.
        role: The Role to grant.
        namespace: Namespace of the Role and the ServiceAccount.
        component: Component label of the binding.
        opts: Options (parent) of the binding.

    Returns:
        The RoleBinding.
    """
    return k8s.rbac.v1.RoleBinding(
        name,
        metadata=object_meta(role.metadata.apply(lambda meta: meta["name"]), namespace, component),
        role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role",
                                         name=role.metadata.apply(lambda meta: meta["name"])),
        subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=PIPELINE_SERVICE_ACCOUNT, namespace=namespace)],
        opts=opts)
