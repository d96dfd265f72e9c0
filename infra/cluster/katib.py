"""Run the Experiment on a cluster: create it through the Kubernetes API, wait for it, collect its trials.

This is the ``katib`` executor. It needs a Katib installation and RBAC to create Experiments and read Trials in
the namespace (the Pulumi program's Workspace grants exactly that to the pipeline's service account).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kfops.base.errors import KfopsError

STEP = "tune"
GROUP, VERSION = "kubeflow.org", "v1beta1"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def current_namespace(default: str = "kubeflow-user-example-com") -> str:
    """The namespace this pod runs in (pipeline steps run in the user's namespace), else ``default``."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as handle:
            return handle.read().strip() or default
    except OSError:
        return default


def load_kubernetes_config(step: str) -> None:
    """Use the pod's service account in a cluster, else the local kube config.

    Raises:
        KfopsError: Neither is available.
    """
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_incluster_config()
    except ConfigException:
        try:
            config.load_kube_config()
        except (ConfigException, OSError) as error:
            raise KfopsError(step, f"no Kubernetes configuration found ({error})",
                             "run this step inside the cluster, or choose the local target") from error


def _custom_objects_api() -> Any:
    from kubernetes import client

    load_kubernetes_config(STEP)
    return client.CustomObjectsApi()


def trial_record(trial: dict[str, Any]) -> dict[str, Any]:
    """A Katib ``Trial`` object as a trial record of the tuning result (see :mod:`.results`)."""
    status = trial.get("status") or {}
    final = next((c for c in reversed(status.get("conditions") or []) if c.get("status") == "True"), {})
    return {
        "name": trial["metadata"]["name"],
        "condition": final.get("type", "Pending"),
        "reason": final.get("reason", ""),
        "message": final.get("message", ""),
        "parameterAssignments": (trial.get("spec") or {}).get("parameterAssignments") or [],
        "observation": status.get("observation") or {"metrics": []},
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
    }


def finished(experiment: dict[str, Any]) -> bool:
    """Whether Katib marked the experiment Succeeded or Failed."""
    return any(c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True"
               for c in (experiment.get("status") or {}).get("conditions") or [])


def run_on_cluster(experiment: dict[str, Any], *, timeout: float = 3600, poll: float = 10,
                   report: Callable[[dict[str, Any]], None] | None = None, api: Any = None) -> dict[str, Any]:
    """Create ``experiment``, wait until Katib finishes it, and return the tuning result.

    Args:
        experiment: The Experiment from :func:`components.katib.experiment.build_experiment`.
        timeout: Seconds to wait before giving up (the Experiment is left in place for inspection).
        poll: Seconds between status reads.
        report: Called with the experiment's status after each read (progress logging).
        api: A ``kubernetes.client.CustomObjectsApi``; created from the in-cluster or local config when omitted.

    Raises:
        KfopsError: The API refuses the Experiment or the experiment does not finish within ``timeout``.
    """
    from kubernetes.client.exceptions import ApiException

    api = api or _custom_objects_api()
    name = experiment["metadata"]["name"]
    namespace = experiment["metadata"]["namespace"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", experiment)
    except ApiException as error:
        raise KfopsError(STEP, f"Katib refused Experiment {namespace}/{name}: {error.status} {error.reason} "
                               f"{(error.body or '')[:500]}",
                         "check the Katib installation and the pipeline service account's RBAC") from error
    deadline = time.monotonic() + timeout
    while True:
        current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)
        if report:
            report(current.get("status") or {})
        if finished(current):
            break
        if time.monotonic() > deadline:
            raise KfopsError(STEP, f"Experiment {namespace}/{name} did not finish within {timeout:.0f} s",
                             f"inspect it with `kubectl -n {namespace} describe experiment {name}`; raise the "
                             "timeout or lower maxTrialCount")
        time.sleep(poll)
    trials = api.list_namespaced_custom_object(GROUP, VERSION, namespace, "trials",
                                               label_selector=f"katib.kubeflow.org/experiment={name}")
    return {"executor": "katib", "experiment": current,
            "trials": [trial_record(t) for t in trials.get("items", [])]}
