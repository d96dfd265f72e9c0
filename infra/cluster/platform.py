"""Platform: the parts of Kubeflow the workflow needs, installed on a bare (kind) cluster from pinned releases.

Optional: a real Kubeflow cluster already has them. Upstream manifests and charts are referenced by release tag, never
by branch, and rendered by the Kubernetes provider at ``pulumi up`` (so this cannot run without network and a
cluster; the mock runtime records only the references). Versions, paths and names come from the upstream facts
(:mod:`kfops.base.upstream`), each checked at its tag. What gets installed, in this order:

1. cert-manager (Helm release ``cert-manager``): certificates for KFP's and the PodDefault webhook's admission
   webhooks. The release is done only once its post-install API check passed, i.e. once its webhook accepts
   Issuers and Certificates.
2. KFP in Kubernetes-native standalone mode: its cluster-scoped resources, then the install, with its bundled SeaweedFS
   object store (S3 on ``seaweedfs.kubeflow:9000``). Standalone runs execute in ``kubeflow``.
3. Katib standalone (Experiments, Trials, the metrics-collector webhook; its own certificates).
4. The PodDefault admission webhook (Kubeflow's, standalone).
5. Seldon Core v1 operator (Helm), 1.17.1 unless the stack says otherwise.

The ``kubeflow`` Namespace and KFP's ``mlpipeline-minio-artifact`` Secret are left out of the upstream manifests:
kfops creates both first (Workspace, ObjectStoreAccess), because KFP's API server, UI and SeaweedFS read that Secret
when they start, and SeaweedFS makes its keys the store's admin credentials. Every object of an install waits for
what the install needs (``prerequisites``, cert-manager, the cluster-scoped resources), and :attr:`Platform.ready`
resolves only once every object of every install is ready, for whatever needs the platform working.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from kfops.base.seldon_versions import DEFAULT_SELDON_CORE_VERSION
from kfops.base.upstream import Source, cert_manager, katib, kfp, kubeflow, seldon

#: Namespace KFP (standalone) installs into, and where its runs execute.
KFP_NAMESPACE = kfp.NAMESPACE
#: S3 endpoint of the SeaweedFS store bundled with KFP.
BUNDLED_S3_ENDPOINT = kfp.OBJECT_STORE.url()

Transformation = Callable[[Any, pulumi.ResourceOptions], None]
Dependencies = pulumi.Output[list[pulumi.Resource]]


#: Every upstream kustomization the platform installs, by part: the remote directory at the pinned tag.
KUSTOMIZATIONS = {
    "kfp-cluster-scoped": Source(kfp.REPO, kfp.VERSION, kfp.CLUSTER_SCOPED.value).tree_url(),
    "kfp": Source(kfp.REPO, kfp.VERSION, kfp.K8S_NATIVE.value).tree_url(),
    "katib": Source(katib.REPO, katib.VERSION, katib.STANDALONE.value).tree_url(),
    "poddefaults": Source(kubeflow.REPO, kubeflow.VERSION, kubeflow.PODDEFAULT_WEBHOOK.value).tree_url(),
}


@dataclass(frozen=True)
class PlatformArgs:
    """Inputs of :class:`Platform`.

    Attributes:
        seldon_version: Seldon Core operator chart version.
        istio: Whether the cluster has Istio (Seldon then creates VirtualServices for its deployments).
        prerequisites: What every install waits for: the ``kubeflow`` Namespace and the S3 Secret kfops creates.
    """

    seldon_version: str = DEFAULT_SELDON_CORE_VERSION
    istio: bool = False
    prerequisites: Sequence[pulumi.Resource] = field(default_factory=tuple)


def drop(*objects: tuple[str, str]) -> Transformation:
    """A kustomize transformation that leaves out objects another component of this program owns.

    Args:
        objects: ``(kind, name)`` pairs to leave out.

    Returns:
        The transformation (it turns a matching object into an empty ``List``, the provider's way to skip one).
    """
    unwanted = set(objects)

    def transform(obj: Any, _opts: pulumi.ResourceOptions) -> None:
        if (obj.get("kind"), obj.get("metadata", {}).get("name")) in unwanted:
            obj.clear()
            obj.update({"apiVersion": "v1", "kind": "List", "items": []})

    return transform


def after(dependencies: Dependencies) -> Transformation:
    """A kustomize transformation making every object of the kustomization wait for ``dependencies``.

    A kustomize Directory (v1) does not pass its own ``depends_on`` to the objects it creates; this does.
    """

    def transform(_obj: Any, opts: pulumi.ResourceOptions) -> None:
        opts.depends_on = dependencies

    return transform


def objects_of(directory: k8s.kustomize.Directory) -> Dependencies:
    """Every object a kustomize Directory created: depending on these waits until each is ready."""
    return directory.resources.apply(lambda resources: list(resources.values()))


def combined(*parts: Dependencies | Sequence[pulumi.Resource]) -> Dependencies:
    """One list of dependencies from resources and lists of resources still to resolve."""
    outputs = [pulumi.Output.from_input(list(part)) if not isinstance(part, pulumi.Output) else part
               for part in parts]
    return pulumi.Output.all(*outputs).apply(lambda lists: [resource for group in lists for resource in group])


class Platform(pulumi.ComponentResource):
    """cert-manager, KFP (Kubernetes-native, standalone), Katib, the PodDefault webhook and the Seldon operator.

    Attributes:
        kfp_namespace: Where KFP runs execute.
        s3_endpoint: The bundled object store's in-cluster endpoint.
        ready: Every object of every install; depending on it waits until the platform works.
    """

    kfp_namespace: pulumi.Output[str]
    s3_endpoint: pulumi.Output[str]
    ready: Dependencies

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfops:platform:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prerequisites = list(args.prerequisites)
        chart, chart_repo = cert_manager.CHART.value
        certificates = k8s.helm.v3.Release(
            f"{name}-cert-manager", name=cert_manager.RELEASE, chart=chart, version=cert_manager.VERSION,
            namespace=cert_manager.NAMESPACE, create_namespace=True,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart_repo), values=cert_manager.CRDS_VALUE.value,
            opts=child)

        kfp_cluster = k8s.kustomize.Directory(
            f"{name}-kfp-cluster-scoped", directory=KUSTOMIZATIONS["kfp-cluster-scoped"],
            resource_prefix=f"{name}-kfp-cluster-scoped",
            # Workspace creates the namespace first, with the labels KFP's and Katib's own Namespace objects carry.
            transformations=[drop(("Namespace", KFP_NAMESPACE)), after(combined(prerequisites))], opts=child)
        kfp_install = k8s.kustomize.Directory(
            f"{name}-kfp", directory=KUSTOMIZATIONS["kfp"], resource_prefix=f"{name}-kfp",
            # ObjectStoreAccess creates this Secret first, with the stack's credentials: the API server, the UI and
            # SeaweedFS read it when they start, and SeaweedFS makes its keys the store's admin credentials.
            transformations=[drop(("Secret", kfp.ARTIFACT_SECRET.value[0])),
                             after(combined(prerequisites, [certificates], objects_of(kfp_cluster)))],
            opts=child)
        katib_install = k8s.kustomize.Directory(
            f"{name}-katib", directory=KUSTOMIZATIONS["katib"], resource_prefix=f"{name}-katib",
            transformations=[drop(("Namespace", KFP_NAMESPACE)), after(combined(prerequisites))], opts=child)
        poddefaults = k8s.kustomize.Directory(
            f"{name}-poddefaults", directory=KUSTOMIZATIONS["poddefaults"], resource_prefix=f"{name}-poddefaults",
            transformations=[after(combined(prerequisites, [certificates]))], opts=child)
        seldon_chart, seldon_repo = seldon.CHART.value
        operator = k8s.helm.v3.Release(
            f"{name}-seldon-core", name="seldon-core", chart=seldon_chart, version=args.seldon_version,
            namespace=seldon.WEBHOOK.namespace, create_namespace=True,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=seldon_repo),
            values={"usageMetrics": {"enabled": False}, "istio": {"enabled": args.istio}}, opts=child)

        self.ready = combined([certificates, operator], objects_of(kfp_cluster), objects_of(kfp_install),
                              objects_of(katib_install), objects_of(poddefaults))
        self.kfp_namespace = pulumi.Output.from_input(KFP_NAMESPACE)
        self.s3_endpoint = pulumi.Output.from_input(BUNDLED_S3_ENDPOINT)
        self.register_outputs({"kfp_namespace": self.kfp_namespace, "s3_endpoint": self.s3_endpoint})
