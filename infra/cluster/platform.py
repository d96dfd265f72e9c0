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
import yaml

from infra.cluster.teardown import KatibDrain
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
        run_service_account: The ServiceAccount (in KFP's namespace) runs use when they name none; upstream's
            ``pipeline-runner`` if not given.
    """

    seldon_version: str = DEFAULT_SELDON_CORE_VERSION
    istio: bool = False
    prerequisites: Sequence[pulumi.Resource] = field(default_factory=tuple)
    run_service_account: str | None = None


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


#: What each install leaves out: objects kfops creates itself (the ``kubeflow`` Namespace, with the labels it needs;
#: KFP's S3 Secret, with the stack's credentials) and Katib's UI, which nothing uses.
DROPPED: dict[str, tuple[tuple[str, str], ...]] = {
    "kfp-cluster-scoped": (("Namespace", kfp.NAMESPACE),),
    "kfp": (("Secret", kfp.ARTIFACT_SECRET.value[0]),),
    "katib": (("Namespace", katib.NAMESPACE), *((kind, "katib-ui") for kind in (
        "Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"))),
    "poddefaults": (),
}

#: The pulumi-kubernetes annotation that makes ``pulumi up`` wait until a JSONPath of the object exists.
WAIT_FOR = "pulumi.com/waitFor"
#: The cert-manager annotation by which its cainjector fills a webhook configuration's ``caBundle``.
INJECT_CA_FROM = "cert-manager.io/inject-ca-from"


def scope_katib_pod_mutator(obj: Any, _opts: pulumi.ResourceOptions) -> None:
    """Send only trial pods to Katib's pod mutator, and say it fails closed (upstream leaves it implicit).

    Upstream's mutator selects every pod of a namespace labelled for injection, ``kubeflow`` included, and fails
    closed: Katib's own pod and every other pod there could not be created while Katib is down (the first ``pulumi
    up`` races, a restart deadlocks). The mutator itself passes every pod that is not a trial's, so selecting only
    the pods kfops' trial template labels changes nothing it injects (:data:`kfops.base.upstream.katib.POD_MUTATOR`).
    """
    configuration, name = katib.POD_MUTATOR.value
    if obj.get("kind") == "MutatingWebhookConfiguration" and obj.get("metadata", {}).get("name") == configuration:
        for webhook in obj.get("webhooks", []):
            if webhook.get("name") == name:
                webhook["objectSelector"] = {"matchLabels": dict(katib.TRIAL_POD_LABEL.value)}
                webhook["failurePolicy"] = "Fail"


def inject_security_context_into_collectors(obj: Any, _opts: pulumi.ResourceOptions) -> None:
    """Have Katib give its metrics collector the trial container's securityContext.

    katib-config's ``init.controller.injectSecurityContext`` is off upstream: the collector image would run as root
    next to a non-root trial container, and the trial pod could not pass Pod Security's ``restricted`` level.
    """
    if obj.get("kind") == "ConfigMap" and obj.get("metadata", {}).get("name") == katib.CONFIG.value[0]:
        key = katib.CONFIG.value[1]
        config = yaml.safe_load(obj["data"][key])
        config.setdefault("init", {}).setdefault("controller", {})["injectSecurityContext"] = True
        obj["data"][key] = yaml.safe_dump(config, sort_keys=False)


def await_injected_ca(obj: Any, _opts: pulumi.ResourceOptions) -> None:
    """Make ``pulumi up`` wait for the CA cert-manager injects into a webhook configuration.

    Such a webhook fails closed and has no CA until cert-manager's cainjector writes one: an object it admits,
    created before, would be refused. Upstream's empty ``caBundle`` is left out so that Pulumi neither owns the field
    nor sees it as already there.
    """
    if obj.get("kind") not in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        return
    annotations = obj.setdefault("metadata", {}).setdefault("annotations", {})
    if INJECT_CA_FROM not in annotations:
        return
    for webhook in obj.get("webhooks", []):
        client = webhook.get("clientConfig", {})
        if not client.get("caBundle"):
            client.pop("caBundle", None)
    annotations[WAIT_FOR] = "jsonpath={.webhooks[0].clientConfig.caBundle}"


def default_run_service_account(name: str) -> Transformation:
    """A transformation making runs that name no ServiceAccount (e.g. started from KFP's UI) run as ``name``.

    Instead of upstream's broad ``pipeline-runner``; KFP's API server reads its default from a variable
    (:data:`kfops.base.upstream.kfp.RUNNER_ACCOUNT_SETTING`).
    """

    def transform(obj: Any, _opts: pulumi.ResourceOptions) -> None:
        if obj.get("kind") == "Deployment" and obj.get("metadata", {}).get("name") == kfp.API.name:
            for container in obj["spec"]["template"]["spec"]["containers"]:
                env = [item for item in container.get("env", []) if item["name"] != kfp.RUNNER_ACCOUNT_SETTING.value]
                container["env"] = [*env, {"name": kfp.RUNNER_ACCOUNT_SETTING.value, "value": name}]

    return transform


def after(dependencies: Dependencies) -> Transformation:
    """A kustomize transformation making every object of the kustomization wait for ``dependencies``.

    A kustomize Directory (v1) does not pass its own ``depends_on`` to the objects it creates; this does.
    """

    def transform(_obj: Any, opts: pulumi.ResourceOptions) -> None:
        opts.depends_on = dependencies

    return transform


#: How long ``pulumi up`` waits for an install's object (a Deployment whose images a fresh kind node pulls, behind
#: others doing the same on two cores): Pulumi's defaults (10 minutes for a Deployment, 300 s for a Helm release) are
#: too short for a cold node, and a timeout there fails the whole run.
INSTALL_TIMEOUT_MINUTES = 20


def patient(_obj: Any, opts: pulumi.ResourceOptions) -> None:
    """A kustomize transformation giving every object of the install :data:`INSTALL_TIMEOUT_MINUTES` to be ready."""
    minutes = f"{INSTALL_TIMEOUT_MINUTES}m"
    opts.custom_timeouts = pulumi.CustomTimeouts(create=minutes, update=minutes, delete=minutes)


def objects_of(directory: k8s.kustomize.Directory) -> Dependencies:
    """Every object a kustomize Directory created: depending on these waits until each is ready."""
    return directory.resources.apply(lambda resources: list(resources.values()))


def combined(*parts: Dependencies | Sequence[pulumi.Resource]) -> Dependencies:
    """One list of dependencies from resources and lists of resources still to resolve."""
    outputs = [pulumi.Output.from_input(list(part)) if not isinstance(part, pulumi.Output) else part
               for part in parts]
    return pulumi.Output.all(*outputs).apply(lambda lists: [resource for group in lists for resource in group])


def seldon_values(istio: bool) -> dict[str, Any]:
    """The Seldon Core operator chart's values (keys of its values.yaml at the pinned version).

    Its executor, which fronts every predictor pod, requests 500m CPU and 512 MiB by default (and is limited to the
    same): two predictors and a rolling update's surge pod do not fit a kind node. 100m/128Mi requests with a 1-CPU
    limit leave room and do not throttle the executor under load tests.
    """
    return {"usageMetrics": {"enabled": False}, "istio": {"enabled": istio},
            "executor": {"resources": {"cpuRequest": "100m", "memoryRequest": "128Mi", "cpuLimit": "1",
                                       "memoryLimit": "512Mi"}}}


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
            timeout=INSTALL_TIMEOUT_MINUTES * 60, opts=child)

        kfp_cluster = k8s.kustomize.Directory(
            f"{name}-kfp-cluster-scoped", directory=KUSTOMIZATIONS["kfp-cluster-scoped"],
            resource_prefix=f"{name}-kfp-cluster-scoped",
            # Workspace creates the namespace first, with the labels KFP's and Katib's own Namespace objects carry.
            transformations=[drop(*DROPPED["kfp-cluster-scoped"]), patient, after(combined(prerequisites))], opts=child)
        kfp_install = k8s.kustomize.Directory(
            f"{name}-kfp", directory=KUSTOMIZATIONS["kfp"], resource_prefix=f"{name}-kfp",
            # ObjectStoreAccess creates this Secret first, with the stack's credentials: the API server, the UI and
            # SeaweedFS read it when they start, and SeaweedFS makes its keys the store's admin credentials.
            transformations=[drop(*DROPPED["kfp"]), await_injected_ca, patient,
                             *([default_run_service_account(args.run_service_account)]
                               if args.run_service_account else []),
                             after(combined(prerequisites, [certificates], objects_of(kfp_cluster)))],
            opts=child)
        katib_install = k8s.kustomize.Directory(
            f"{name}-katib", directory=KUSTOMIZATIONS["katib"], resource_prefix=f"{name}-katib",
            transformations=[drop(*DROPPED["katib"]), scope_katib_pod_mutator, inject_security_context_into_collectors,
                             patient, after(combined(prerequisites))],
            opts=child)
        # Deleted before any of Katib: the workflow's Experiments go while Katib can still finalize them.
        KatibDrain(f"{name}-katib-drain", namespace=KFP_NAMESPACE, context=pulumi.Config("kubernetes").get("context"),
                   opts=pulumi.ResourceOptions(parent=self, depends_on=objects_of(katib_install)))
        poddefaults = k8s.kustomize.Directory(
            f"{name}-poddefaults", directory=KUSTOMIZATIONS["poddefaults"], resource_prefix=f"{name}-poddefaults",
            transformations=[drop(*DROPPED["poddefaults"]), await_injected_ca, patient,
                             after(combined(prerequisites, [certificates]))], opts=child)
        seldon_chart, seldon_repo = seldon.CHART.value
        operator = k8s.helm.v3.Release(
            f"{name}-seldon-core", name="seldon-core", chart=seldon_chart, version=args.seldon_version,
            namespace=seldon.WEBHOOK.namespace, create_namespace=True,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=seldon_repo),
            values=seldon_values(args.istio), timeout=INSTALL_TIMEOUT_MINUTES * 60, opts=child)

        self.ready = combined([certificates, operator], objects_of(kfp_cluster), objects_of(kfp_install),
                              objects_of(katib_install), objects_of(poddefaults))
        self.kfp_namespace = pulumi.Output.from_input(KFP_NAMESPACE)
        self.s3_endpoint = pulumi.Output.from_input(BUNDLED_S3_ENDPOINT)
        self.register_outputs({"kfp_namespace": self.kfp_namespace, "s3_endpoint": self.s3_endpoint})
