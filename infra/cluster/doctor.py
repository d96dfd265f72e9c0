"""``kfops doctor --stack NAME``: what would make a run fail on the stack's cluster, found before it does.

Everything is read through the stack's kube context and nothing is changed, except the in-namespace probe (a
short-lived Job, deleted afterwards; ``--no-probe`` skips it). What is checked comes from the same facts the program
is built from: the CRDs and webhooks of the upstream installs (:mod:`kfops.base.upstream`), the names of the
contract (:mod:`kfops.base.contract`), and the grants the Workspace's Role is made of.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfops.base.checks import Check, fail, guarded, ok, warn
from kfops.base.contract import (
    ACCESS_MINIO_PODDEFAULT,
    MLFLOW_CONFIG_KEYS,
    MLFLOW_CONFIG_MAP,
    MLFLOW_PODDEFAULT,
    PIPELINE_SERVICE_ACCOUNT,
    PROJECT_IMAGE,
    PROJECT_IMAGE_USER,
    S3_CONFIG_KEYS,
    S3_CONFIG_MAP,
    S3_SECRET_ENV,
    S3_SECRET_NAME,
    SELDON_DEPLOYER_POD_VERBS,
    SELDON_DEPLOYER_VERBS,
    SELDON_S3_SECRET_NAME,
    SERVING_CONFIG_KEYS,
    SERVING_CONFIG_MAP,
)
from kfops.base.pod_security import restricted_container, restricted_pod
from kfops.base.seldon_versions import license_warning, parse_version
from kfops.base.upstream import Grant, Service, cert_manager, katib, kfp, kubeflow, seldon

#: The custom resources the workflow creates or the program deploys, at the versions they use.
CRDS = {
    "experiments.kubeflow.org": "v1beta1",
    "trials.kubeflow.org": "v1beta1",
    "seldondeployments.machinelearning.seldon.io": "v1",
    "poddefaults.kubeflow.org": "v1alpha1",
    "pipelines.pipelines.kubeflow.org": "v2beta1",
    "pipelineversions.pipelines.kubeflow.org": "v2beta1",
}
#: CRDs only the Kubernetes-native KFP mode needs.
K8S_NATIVE_CRDS = ("pipelines.pipelines.kubeflow.org", "pipelineversions.pipelines.kubeflow.org")
#: Admission webhooks the workflow's objects go through, by what depends on them.
WEBHOOKS: dict[str, Service] = {
    "cert-manager (issues the webhooks' certificates)": cert_manager.WEBHOOK,
    "Katib (Experiments, trial pods)": katib.WEBHOOK,
    "PodDefault (notebooks' credentials)": kubeflow.PODDEFAULT_SERVICE,
    "Seldon Core (SeldonDeployments)": seldon.WEBHOOK,
    "KFP (PipelineVersions)": kfp.PIPELINE_VERSION_WEBHOOK,
}
#: The operator's Deployment in Seldon Core's namespace (named by the chart).
SELDON_OPERATOR = "seldon-controller-manager"


@dataclass(frozen=True)
class StackScope:
    """What the checks look at: the namespace, and how the stack deploys the pipeline."""

    namespace: str
    kfp_mode: str = "kubernetes"
    context: str | None = None


def from_stack(stack: str) -> StackScope:
    """The namespace, KFP mode and kube context of a stack (``Pulumi.<stack>.yaml``)."""
    from infra.cluster.stack_config import load_stack_config

    _, config, _ = load_stack_config(stack)
    return StackScope(namespace=config.get("kfops:namespace", "kubeflow"),
                  kfp_mode=config.get("kfops:kfpMode", "kubernetes"), context=config.get("kubernetes:context"))


def _status(error: Exception) -> int:
    return int(getattr(error, "status", 0) or 0)


def check_api(api: Any) -> Check:
    """The API server answers (its version)."""
    from kubernetes import client

    version = client.VersionApi(api).get_code()
    return ok("API server", f"answers, Kubernetes {version.git_version}")


def check_crds(api: Any, scope: StackScope) -> list[Check]:
    """Each CRD the workflow uses is installed and serves the version it uses."""
    from kubernetes import client

    extensions = client.ApiextensionsV1Api(api)
    found = []
    for name, version in CRDS.items():
        label = f"CRD {name}"
        if name in K8S_NATIVE_CRDS and scope.kfp_mode != "kubernetes":
            found.append(ok(label, f"not needed (kfops:kfpMode is {scope.kfp_mode})"))
            continue
        try:
            crd = extensions.read_custom_resource_definition(name)
        except client.ApiException as error:
            if _status(error) == 404:
                found.append(fail(label, "not installed", "install the platform (kfops:installPlatform true on a "
                                                          "bare cluster) or the component that owns it"))
                continue
            raise
        served = [v.name for v in crd.spec.versions if v.served]
        found.append(ok(label, f"serves {version}") if version in served else
                     fail(label, f"serves {', '.join(served)}, not {version}",
                          "install the version kfops pins (kfops/base/upstream)"))
    return found


def check_webhooks(api: Any, scope: StackScope) -> list[Check]:
    """Each admission webhook the workflow's objects pass has a ready endpoint (else they are refused)."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    found = []
    for what, service in WEBHOOKS.items():
        label = f"webhook {what}"
        if service is kfp.PIPELINE_VERSION_WEBHOOK and scope.kfp_mode != "kubernetes":
            continue
        try:
            endpoints = core.read_namespaced_endpoints(service.name, service.namespace)
        except client.ApiException as error:
            if _status(error) == 404:
                found.append(fail(label, f"Service {service.namespace}/{service.name} does not exist",
                                  "install the platform, or the component that owns it"))
                continue
            raise
        ready = sum(len(subset.addresses or []) for subset in endpoints.subsets or [])
        waiting = sum(len(subset.not_ready_addresses or []) for subset in endpoints.subsets or [])
        found.append(ok(label, f"{service.namespace}/{service.name} has {ready} ready endpoint(s)") if ready else
                     fail(label, f"{service.namespace}/{service.name} has no ready endpoint ({waiting} not ready): "
                                 "objects it admits are refused", f"kubectl -n {service.namespace} get pods; "
                                 f"kubectl -n {service.namespace} describe pods"))
    return found


def check_namespace(api: Any, scope: StackScope) -> list[Check]:
    """The namespace exists with the labels Katib and KFP act on."""
    from kubernetes import client

    try:
        namespace = client.CoreV1Api(api).read_namespace(scope.namespace)
    except client.ApiException as error:
        if _status(error) == 404:
            return [fail(f"namespace {scope.namespace}", "does not exist", "run `pulumi up` for the stack")]
        raise
    labels = namespace.metadata.labels or {}
    found = []
    for wanted, status, why in (
            (katib.INJECTION_LABEL.value, "fail", "Katib refuses Experiments and collects no metrics without it"),
            ({"pipelines.kubeflow.org/enabled": "true"}, "warn", "multi-user KFP provisions the namespace with it")):
        (key, value), = wanted.items()
        label = f"namespace label {key}"
        if labels.get(key) == value:
            found.append(ok(label, f"{scope.namespace} has {key}={value}"))
        else:
            fix = f"kubectl label namespace {scope.namespace} {key}={value} (or run `pulumi up`)"
            found.append(fail(label, f"missing: {why}", fix) if status == "fail" else warn(label, "missing: " + why,
                                                                                         fix))
    return found


def _keys(kind: str, read: Callable[[], Any], wanted: set[str], fix: str) -> Check:
    from kubernetes import client

    try:
        obj = read()
    except client.ApiException as error:
        if _status(error) == 404:
            return fail(kind, "does not exist", fix)
        raise
    have = set((obj.data or {}).keys())
    missing = wanted - have
    return fail(kind, f"lacks key(s) {', '.join(sorted(missing))}", fix) if missing else \
        ok(kind, f"has {', '.join(sorted(wanted))}")


def check_objects(api: Any, scope: StackScope) -> list[Check]:
    """The Secrets, ConfigMaps, ServiceAccount and PodDefaults the program creates exist, with their keys."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    ns = scope.namespace
    fix = "run `pulumi up` for the stack (the program creates it)"
    from infra.cluster.object_store import RCLONE_PREFIX

    found = [
        _keys(f"Secret {S3_SECRET_NAME}", lambda: core.read_namespaced_secret(S3_SECRET_NAME, ns),
              set(S3_SECRET_ENV.values()), fix),
        _keys(f"Secret {SELDON_S3_SECRET_NAME}", lambda: core.read_namespaced_secret(SELDON_S3_SECRET_NAME, ns),
              {f"{RCLONE_PREFIX}{key}" for key in ("TYPE", "ENDPOINT", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY")}, fix),
        _keys(f"ConfigMap {S3_CONFIG_MAP}", lambda: core.read_namespaced_config_map(S3_CONFIG_MAP, ns),
              set(S3_CONFIG_KEYS), fix),
        _keys(f"ConfigMap {MLFLOW_CONFIG_MAP}", lambda: core.read_namespaced_config_map(MLFLOW_CONFIG_MAP, ns),
              set(MLFLOW_CONFIG_KEYS), fix),
        _keys(f"ConfigMap {SERVING_CONFIG_MAP}", lambda: core.read_namespaced_config_map(SERVING_CONFIG_MAP, ns),
              set(SERVING_CONFIG_KEYS), fix),
    ]
    try:
        core.read_namespaced_service_account(PIPELINE_SERVICE_ACCOUNT, ns)
        found.append(ok(f"ServiceAccount {PIPELINE_SERVICE_ACCOUNT}", "exists"))
    except client.ApiException as error:
        if _status(error) != 404:
            raise
        found.append(fail(f"ServiceAccount {PIPELINE_SERVICE_ACCOUNT}", "does not exist: runs cannot use it", fix))
    custom = client.CustomObjectsApi(api)
    for name in (ACCESS_MINIO_PODDEFAULT, MLFLOW_PODDEFAULT):
        try:
            custom.get_namespaced_custom_object("kubeflow.org", "v1alpha1", ns, "poddefaults", name)
            found.append(ok(f"PodDefault {name}", "exists (for the namespace's notebooks)"))
        except client.ApiException as error:
            if _status(error) != 404:
                raise
            found.append(warn(f"PodDefault {name}", "does not exist: notebooks labelled for it get nothing "
                                                    "(runs do not need it)", fix))
    return found


def runner_grants() -> list[tuple[str, str, str, str | None, str]]:
    """``(group, resource, verb, name, why)`` of everything the runner's ServiceAccount must be allowed to do."""
    from infra.cluster.workspace import WORKFLOW_GRANTS

    grants: list[Grant] = list(WORKFLOW_GRANTS)
    listed = [(g.api_group, g.resource, g.verb, g.resource_name, g.why) for g in grants]
    listed += [("machinelearning.seldon.io", "seldondeployments", verb, None, "the deploy step swaps models")
               for verb in SELDON_DEPLOYER_VERBS]
    listed += [("", "pods", verb, None, "the deploy step waits for the new model's pods")
               for verb in SELDON_DEPLOYER_POD_VERBS]
    return listed


def check_rbac(api: Any, scope: StackScope) -> list[Check]:
    """The runner's ServiceAccount may do each thing a run does (one SubjectAccessReview per grant)."""
    from kubernetes import client

    authorization = client.AuthorizationV1Api(api)
    user = f"system:serviceaccount:{scope.namespace}:{PIPELINE_SERVICE_ACCOUNT}"
    found = []
    for group, resource, verb, name, why in runner_grants():
        attributes = client.V1ResourceAttributes(namespace=scope.namespace, group=group, resource=resource,
                                                 verb=verb, name=name)
        review = authorization.create_subject_access_review(client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(user=user, resource_attributes=attributes)))
        what = f"{verb} {resource}{'/' + name if name else ''}" + (f" ({group})" if group else "")
        found.append(ok(f"runner may {what}", why) if review.status.allowed else
                     fail(f"runner may {what}", f"denied to {PIPELINE_SERVICE_ACCOUNT}: {why}",
                          "run `pulumi up` for the stack (its Role grants it)"))
    return found


#: What the probe Job runs: the object store with the Secret's keys, then an MLflow API call (not /health, which
#: MLflow exempts from its Host check: it would answer even to a client the server refuses).
PROBE = """\
import os, urllib.request, boto3
boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"]).list_buckets()
urllib.request.urlopen(os.environ["MLFLOW_TRACKING_URI"].rstrip("/") + "/api/2.0/mlflow/experiments/search"
                       "?max_results=1", timeout=10).read()
print("object store and MLflow answer")
"""


def probe_job(name: str, timeout: float) -> dict[str, Any]:
    """The doctor's probe: a Job with the env every step gets, run as the steps' ServiceAccount and user."""
    env = [{"name": var, "valueFrom": {"secretKeyRef": {"name": S3_SECRET_NAME, "key": key}}}
           for var, key in S3_SECRET_ENV.items()]
    env += [{"name": key, "valueFrom": {"configMapKeyRef": {"name": config_map, "key": key}}}
            for config_map, keys in ((S3_CONFIG_MAP, S3_CONFIG_KEYS), (MLFLOW_CONFIG_MAP, MLFLOW_CONFIG_KEYS))
            for key in keys]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "kfops",
                                              "app.kubernetes.io/component": "doctor"}},
        "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 300, "activeDeadlineSeconds": int(timeout),
                 "template": {
                     "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                     "spec": {"restartPolicy": "Never", "serviceAccountName": PIPELINE_SERVICE_ACCOUNT,
                              "securityContext": restricted_pod(PROJECT_IMAGE_USER, PROJECT_IMAGE_USER),
                              "containers": [{"name": "probe", "image": PROJECT_IMAGE,
                                              "command": ["python", "-c", PROBE], "env": env,
                                              "securityContext": restricted_container()}]}}},
    }


def check_probe(api: Any, scope: StackScope, timeout: float = 180, poll: float = 2) -> Check:
    """Run a short-lived Job in the namespace, with the env every step gets, that reaches the store and MLflow."""
    from kubernetes import client

    batch = client.BatchV1Api(api)
    name = f"kfops-doctor-{uuid.uuid4().hex[:6]}"
    job = probe_job(name, timeout)
    batch.create_namespaced_job(scope.namespace, job)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = batch.read_namespaced_job(name, scope.namespace).status
            if status.succeeded:
                return ok("object store and MLflow from the namespace", "a pod with the steps' env reached both")
            if status.failed:
                return fail("object store and MLflow from the namespace", "a pod with the steps' env failed to reach "
                                                                          "them", f"kubectl -n {scope.namespace} "
                                                                                  f"logs job/{name}")
            time.sleep(poll)
        return fail("object store and MLflow from the namespace", f"the probe Job did not finish in {timeout:.0f} s",
                    f"kubectl -n {scope.namespace} describe job {name}")
    finally:
        batch.delete_namespaced_job(name, scope.namespace, propagation_policy="Background")


def check_seldon(api: Any) -> Check:
    """Seldon Core's operator runs, and which licence its version comes under."""
    from kubernetes import client

    deployments = client.AppsV1Api(api).list_namespaced_deployment(seldon.WEBHOOK.namespace).items
    operator = next((d for d in deployments if d.metadata.name == SELDON_OPERATOR), None)
    if operator is None:
        return fail("Seldon Core", f"no {SELDON_OPERATOR} in {seldon.WEBHOOK.namespace}",
                    "install the operator (kfops:installPlatform, or Seldon's Helm chart)")
    image = operator.spec.template.spec.containers[0].image
    version = image.rsplit(":", 1)[-1] if ":" in image else ""
    try:
        parse_version(version)
    except ValueError:
        return warn("Seldon Core", f"operator image {image}: version unknown", "pin a released operator version")
    warning = license_warning(version)
    return warn("Seldon Core", warning, f"use {seldon.VERSION}, the last Apache-2.0 release, unless you hold a "
                                        "licence") if warning else ok("Seldon Core", f"{version} (Apache-2.0)")


def run_checks(api: Any, scope: StackScope, probe: bool = True) -> list[Check]:
    """Every cluster check; one that cannot run is its own failure, and the others still run."""
    found = guarded("API server", lambda: check_api(api), "check the kube context (kubectl cluster-info)")
    if found[0].status == "fail":
        return found
    steps: list[tuple[str, Callable[[], Check | list[Check]], str]] = [
        ("CRDs", lambda: check_crds(api, scope), "kubectl get crd"),
        ("webhooks", lambda: check_webhooks(api, scope), "kubectl get endpoints -A"),
        ("namespace", lambda: check_namespace(api, scope), "run `pulumi up`"),
        ("objects", lambda: check_objects(api, scope), "run `pulumi up`"),
        ("RBAC", lambda: check_rbac(api, scope), "run `pulumi up`"),
        ("Seldon Core", lambda: check_seldon(api), "kubectl -n seldon-system get deploy"),
    ]
    if probe:
        steps.append(("probe", lambda: check_probe(api, scope), f"kubectl -n {scope.namespace} get jobs"))
    return [*found, *(check for name, step, fix in steps for check in guarded(name, step, fix))]


def api_client(scope: StackScope) -> Any:
    """A Kubernetes client for the stack's kube context (the current one when the stack names none)."""
    from kubernetes import config

    return config.new_client_from_config(context=scope.context)
