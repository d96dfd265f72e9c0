"""Platform: the parts of Kubeflow the workflow needs, installed on a bare (kind) cluster from pinned releases.

Optional: a real Kubeflow cluster already has them. Upstream manifests and charts are referenced by release tag, never
by branch, and rendered by the Kubernetes provider at ``pulumi up`` (so this cannot run without network and a
cluster; the mock runtime records only the references). What gets installed:

- cert-manager (Helm): certificates for the KFP and PodDefault admission webhooks.
- KFP in Kubernetes-native standalone mode, with its bundled SeaweedFS object store (S3 at ``minio-service:9000``).
  Standalone runs execute in KFP's own namespace, ``kubeflow``; the kind stack uses it as the workspace.
- Katib standalone (Experiments, Trials, the metrics-collector webhook).
- The PodDefault admission webhook (Kubeflow's, standalone).
- Seldon Core v1 operator (Helm), 1.17.1 unless the stack says otherwise.
- MLflow is not here: Tracking deploys it, on any cluster.

The module is named ``cluster_platform`` because ``infra/`` is the program directory Pulumi puts first on
``sys.path``, where a ``platform.py`` would shadow the standard library's ``platform``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from kfops.base.contract import S3_SECRET_NAME
from kfops.base.seldon_versions import DEFAULT_SELDON_CORE_VERSION

CERT_MANAGER_VERSION = "v1.16.2"
KFP_VERSION = "2.17.1"
KATIB_VERSION = "v0.19.0"
#: Release of Kubeflow's manifests the PodDefault webhook comes from.
KUBEFLOW_MANIFESTS_VERSION = "v1.10.0"

#: Namespace KFP (standalone) installs into, and where its runs execute.
KFP_NAMESPACE = "kubeflow"
#: S3 endpoint of the SeaweedFS store bundled with KFP (its Service keeps MinIO's name and port).
BUNDLED_S3_ENDPOINT = f"http://minio-service.{KFP_NAMESPACE}:9000"

_KFP_TREE = f"https://github.com/kubeflow/pipelines/tree/{KFP_VERSION}/manifests/kustomize"
_KATIB_TREE = f"https://github.com/kubeflow/katib/tree/{KATIB_VERSION}/manifests/v1beta1/installs"
_MANIFESTS_TREE = f"https://github.com/kubeflow/manifests/tree/{KUBEFLOW_MANIFESTS_VERSION}/applications"

Transformation = Callable[[Any, pulumi.ResourceOptions], None]


@dataclass(frozen=True)
class PlatformArgs:
    """Inputs of :class:`Platform`.

    Attributes:
        seldon_version: Seldon Core operator chart version.
        istio: Whether the cluster has Istio (Seldon then creates VirtualServices for its deployments).
    """

    seldon_version: str = DEFAULT_SELDON_CORE_VERSION
    istio: bool = False


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


class Platform(pulumi.ComponentResource):
    """cert-manager, KFP (Kubernetes-native, standalone), Katib, the PodDefault webhook and the Seldon operator.

    Attributes:
        kfp_namespace: Where KFP runs execute.
        s3_endpoint: The bundled object store's in-cluster endpoint.
    """

    kfp_namespace: pulumi.Output[str]
    s3_endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfops:platform:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cert_manager = k8s.helm.v3.Release(
            f"{name}-cert-manager", chart="cert-manager", version=CERT_MANAGER_VERSION, namespace="cert-manager",
            create_namespace=True, repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo="https://charts.jetstack.io"),
            values={"crds": {"enabled": True}}, opts=child)
        webhooks_need_certs = pulumi.ResourceOptions(parent=self, depends_on=[cert_manager])

        kfp_cluster = k8s.kustomize.Directory(
            f"{name}-kfp-cluster-scoped", directory=f"{_KFP_TREE}/cluster-scoped-resources", opts=child)
        k8s.kustomize.Directory(
            f"{name}-kfp", directory=f"{_KFP_TREE}/env/cert-manager/platform-agnostic-k8s-native",
            # ObjectStoreAccess creates this secret with the stack's credentials; the bundled store's init job then
            # configures its admin user from it instead of the upstream default.
            transformations=[drop(("Secret", S3_SECRET_NAME))],
            opts=pulumi.ResourceOptions.merge(webhooks_need_certs, pulumi.ResourceOptions(depends_on=[kfp_cluster])))
        k8s.kustomize.Directory(
            f"{name}-katib", directory=f"{_KATIB_TREE}/katib-standalone",
            # KFP's manifests create the shared namespace; Workspace labels it.
            transformations=[drop(("Namespace", KFP_NAMESPACE))], opts=child)
        k8s.kustomize.Directory(
            f"{name}-poddefaults", directory=f"{_MANIFESTS_TREE}/admission-webhook/upstream/overlays/cert-manager",
            opts=webhooks_need_certs)
        k8s.helm.v3.Release(
            f"{name}-seldon-core", chart="seldon-core-operator", version=args.seldon_version,
            namespace="seldon-system", create_namespace=True,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo="https://storage.googleapis.com/seldon-charts"),
            values={"usageMetrics": {"enabled": False}, "istio": {"enabled": args.istio}}, opts=child)

        self.kfp_namespace = pulumi.Output.from_input(KFP_NAMESPACE)
        self.s3_endpoint = pulumi.Output.from_input(BUNDLED_S3_ENDPOINT)
        self.register_outputs({"kfp_namespace": self.kfp_namespace, "s3_endpoint": self.s3_endpoint})
