"""Run the Experiment on a cluster: create it through the Kubernetes API, wait for it, collect its trials.

This is the ``katib`` executor. It needs a Katib installation and RBAC to create Experiments and read Trials in
the namespace (the Pulumi program's Workspace grants exactly that to the pipeline's service account).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from infra.cluster.kube import custom_objects_api
from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.upstream import katib

GROUP, VERSION = "kubeflow.org", "v1beta1"


def trial_record(trial: dict[str, Any]) -> dict[str, Any]:
    """A Katib ``Trial`` object as a trial record of the tuning result (see :mod:`.results`)."""
    status = trial.get("status") or {}
    final: dict[str, Any] = next((c for c in reversed(status.get("conditions") or []) if c.get("status") == "True"), {})
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


#: Trial conditions after which a trial does not change any more.
FINAL_CONDITIONS = ("Succeeded", "Failed", "Killed", "MetricsUnavailable", "EarlyStopped")
#: Label Katib puts on an Experiment's Trials.
EXPERIMENT_LABEL = katib.EXPERIMENT_LABEL


def list_trials(api: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    """The trial records of Experiment ``namespace/name``."""
    trials = api.list_namespaced_custom_object(GROUP, VERSION, namespace, "trials",
                                               label_selector=f"{EXPERIMENT_LABEL}={name}")
    return [trial_record(t) for t in trials.get("items", [])]


def read_result(api: Any, namespace: str, name: str) -> dict[str, Any]:
    """The tuning result of a finished Experiment (see :mod:`components.katib.results`)."""
    experiment = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)
    return {"executor": "katib", "experiment": experiment, "trials": list_trials(api, namespace, name)}


#: Annotation with the digest of the spec kfops created an Experiment with (Katib's defaulter changes the spec itself).
SPEC_DIGEST = "kfops.io/spec-sha256"


def with_spec_digest(experiment: dict[str, Any]) -> dict[str, Any]:
    """``experiment`` annotated with the digest of its spec."""
    digest = hashlib.sha256(json.dumps(experiment["spec"], sort_keys=True).encode()).hexdigest()
    metadata = experiment["metadata"]
    return {**experiment, "metadata": {**metadata, "annotations": {**(metadata.get("annotations") or {}),
                                                                   SPEC_DIGEST: digest}}}


def _is_ours(api: Any, namespace: str, name: str, signed: dict[str, Any]) -> bool:
    existing = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)
    annotations = existing.get("metadata", {}).get("annotations") or {}
    return bool(annotations.get(SPEC_DIGEST) == signed["metadata"]["annotations"][SPEC_DIGEST])


@in_step(Step.TUNE)
def run_on_cluster(experiment: dict[str, Any], *, timeout: float = 3600, poll: float = 10,
                   on_trial: Callable[[dict[str, Any]], None] | None = None, api: Any = None) -> dict[str, Any]:
    """Create ``experiment``, wait until Katib finishes it, and return the tuning result.

    Args:
        experiment: The Experiment from :func:`components.katib.experiment.build_experiment`.
        timeout: Seconds to wait before giving up (the Experiment is left in place for inspection).
        poll: Seconds between status reads.
        on_trial: Told about each trial once it reached a final condition, with its record.
        api: A ``kubernetes.client.CustomObjectsApi``; created from the in-cluster or local config when omitted.

    Raises:
        KfopsError: The API refuses the Experiment or the experiment does not finish within ``timeout``.
    """
    from kubernetes.client.exceptions import ApiException

    api = api or custom_objects_api()
    name = experiment["metadata"]["name"]
    namespace = experiment["metadata"]["namespace"]
    signed = with_spec_digest(experiment)
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", signed)
    except ApiException as error:
        if error.status != 409 or not _is_ours(api, namespace, name, signed):
            fix = ("delete it (`kubectl -n {namespace} delete experiment {name}`) or run with another run id"
                   if error.status == 409 else "check the Katib installation and the pipeline service account's RBAC")
            raise KfopsError(f"Katib refused Experiment {namespace}/{name}: {error.status} {error.reason} "
                             f"{(error.body or '')[:500]}", fix.format(namespace=namespace, name=name)) from error
        # The same step again (Argo retries a step whose pod was evicted, KFP retries a run): follow the Experiment
        # the first attempt created instead of failing on its name.
    deadline = time.monotonic() + timeout
    reported: set[str] = set()
    while True:
        current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)
        trials = list_trials(api, namespace, name)
        for trial in trials:
            if trial["condition"] in FINAL_CONDITIONS and trial["name"] not in reported:
                reported.add(trial["name"])
                if on_trial is not None:
                    on_trial(trial)
        if finished(current):
            return {"executor": "katib", "experiment": current, "trials": trials}
        if time.monotonic() > deadline:
            raise KfopsError(f"Experiment {namespace}/{name} did not finish within {timeout:.0f} s",
                             f"inspect it with `kubectl -n {namespace} describe experiment {name}`; raise the "
                             "timeout or lower maxTrialCount")
        time.sleep(poll)
