"""The cluster target's deploy: SeldonDeployments applied with server-side apply and rolled back on failure.

A SeldonDeployment that does not become Available in time is replaced by its previous spec, so the previous model
keeps serving.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from components.deploy import (
    GROUP,
    VERSION,
    Deployed,
    ServingSettings,
    check_compatibility,
    cluster_endpoints,
    cluster_runtimes,
    license_warnings,
    resolve_champion,
    seldon_deployment,
)
from infra.cluster.kube import current_namespace, load_kubernetes_config
from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.paths import REPO_ROOT


@in_step(Step.DEPLOY)
def deploy_on_cluster(champion_uri: str, *, protocols: tuple[str, ...], settings: ServingSettings,
                      namespace: str = "", timeout: float = 600) -> Deployed:
    """Serve the model ``champion_uri`` names with Seldon Core in ``namespace`` (the pod's own when empty).

    Raises:
        KfopsError: Incompatible model, or a roll-out that failed (the previous model keeps serving).
    """
    import mlflow

    name, version, source = resolve_champion(champion_uri)
    namespace = namespace or current_namespace()
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}"))
    check_compatibility(model_dir, cluster_runtimes(protocols, REPO_ROOT))
    manifests = [seldon_deployment(p, model_name=name, version=version, model_uri=source, namespace=namespace,
                                   settings=settings) for p in protocols]
    for manifest in manifests:
        apply_and_wait(manifest, timeout=timeout)
    endpoints = cluster_endpoints(protocols, name, settings, namespace)
    return Deployed(name, version, "seldon", endpoints, manifests, license_warnings(settings))


class SeldonDeployments:
    """Read and server-side apply SeldonDeployments (the dynamic client: the typed one cannot send apply patches)."""

    def __init__(self) -> None:
        from kubernetes import client, dynamic


        load_kubernetes_config()
        self.client = dynamic.DynamicClient(client.ApiClient())
        self.resource = self.client.resources.get(api_version=f"{GROUP}/{VERSION}", kind="SeldonDeployment")

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return self.resource.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def apply(self, body: dict[str, Any]) -> None:
        """Server-side apply ``body`` as field manager ``kfops``."""
        metadata = body["metadata"]
        self.client.server_side_apply(self.resource, body=body, name=metadata["name"],
                                      namespace=metadata["namespace"], field_manager="kfops", force_conflicts=True)

    def ready_pods(self, namespace: str, labels: dict[str, str]) -> int:
        """How many running pods with ``labels`` are Ready."""
        from kubernetes import client

        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        pods = client.CoreV1Api(self.client.client).list_namespaced_pod(namespace, label_selector=selector).items
        return sum(1 for pod in pods if pod.metadata.deletion_timestamp is None and any(
            condition.type == "Ready" and condition.status == "True" for condition in pod.status.conditions or []))


@in_step(Step.DEPLOY)
def apply_and_wait(manifest: dict[str, Any], *, timeout: float, poll: float = 5,
                   api: SeldonDeployments | None = None) -> None:
    """Apply ``manifest``; wait until it is served; re-apply the previous spec if it does not get there.

    Served means Seldon says ``Available`` and every replica of the new version has a Ready pod: right after an
    apply, and during a rolling update, Seldon's status still says Available for the previous spec's pods (it has no
    observedGeneration and does not check the roll-out), so the status alone would take a crashing model for served.

    Raises:
        KfopsError: The deployment did not become Available (the previous spec has been re-applied).
    """
    from kubernetes.client.exceptions import ApiException

    api = api or SeldonDeployments()
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    previous = api.get(name, namespace)
    try:
        api.apply(manifest)
    except ApiException as error:
        raise KfopsError(f"Seldon refused SeldonDeployment {namespace}/{name}: {error.status} "
                               f"{(error.body or '')[:400]}", "check the Seldon Core installation") from error
    predictor = manifest["spec"]["predictors"][0]
    replicas = int(predictor.get("replicas", 1))
    deadline = time.monotonic() + timeout
    state, reason = "", ""
    while time.monotonic() < deadline:
        status = (api.get(name, namespace) or {}).get("status") or {}
        state, reason = status.get("state", ""), status.get("description", "")
        if state == "Available":
            ready = api.ready_pods(namespace, predictor["labels"])
            if ready >= replicas:
                return
            state, reason = "Available for the previous spec", f"{ready} of {replicas} new pods ready"
        if state == "Failed":
            break
        time.sleep(poll)
    if previous is not None:
        api.apply(rollback_manifest(previous))
        fix = "the previous model keeps serving; inspect the new pods with kubectl describe"
    else:
        fix = f"inspect it with `kubectl -n {namespace} describe seldondeployment {name}`"
    raise KfopsError(f"SeldonDeployment {namespace}/{name} is {state or 'not Available'} after "
                           f"{timeout:.0f} s ({reason or 'no reason given'})", fix)


def rollback_manifest(previous: dict[str, Any]) -> dict[str, Any]:
    """What to apply to return to ``previous`` (a SeldonDeployment as read from the API): its spec and labels."""
    metadata = previous["metadata"]
    return {"apiVersion": previous["apiVersion"], "kind": previous["kind"], "spec": previous["spec"],
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"],
                         "labels": metadata.get("labels", {})}}
