"""Where the workflow's Katib Experiment and SeldonDeployments are executed: chosen here, and only here.

A target is the cluster (Katib runs the Experiment, Seldon Core serves the SeldonDeployments) or this machine (the
local executor and the local runtimes run the same specs). The steps name the target with a pipeline parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.deploy import Deployed, ServingSettings
from kfops.base.errors import KfopsError

#: Who executes the Katib Experiment: Katib on the cluster, or the local executor.
TUNING_EXECUTORS = ("katib", "local")
#: Who executes the SeldonDeployments: Seldon Core on the cluster, or the local runtimes.
DEPLOY_TARGETS = ("seldon", "local")


def run_experiment(executor: str, experiment: dict[str, Any], *, timeout: float, workdir: Path,
                   on_trial: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """Run ``experiment`` with ``executor`` and return the tuning result (see :mod:`components.katib.results`).

    Raises:
        KfopsError: Unknown executor, or the executor failed to run the experiment.
    """
    if executor == "katib":
        from infra.cluster.katib import run_on_cluster

        return run_on_cluster(experiment, timeout=timeout)
    if executor == "local":
        from infra.local.katib.executor import run_local_experiment

        return run_local_experiment(experiment, workdir, on_event=on_trial, timeout=timeout)
    raise KfopsError("tune", f"unknown tuning executor {executor!r}", f"choose one of: {', '.join(TUNING_EXECUTORS)}")


def experiment_namespace(executor: str) -> str:
    """Namespace the Experiment is created in: the step pod's own on a cluster."""
    if executor == "katib":
        from infra.cluster.katib import current_namespace

        return current_namespace()
    return "local"


def deploy(target: str, champion_uri: str, *, protocols: tuple[str, ...], settings: ServingSettings) -> Deployed:
    """Serve the champion on ``target``.

    Raises:
        KfopsError: Unknown target, incompatible model, or a roll-out that failed (the previous model keeps serving).
    """
    from kfops.base.tracking import require_tracking_server

    if target not in DEPLOY_TARGETS:
        raise KfopsError("deploy", f"unknown deploy target {target!r}", f"choose one of: {', '.join(DEPLOY_TARGETS)}")
    require_tracking_server("deploy")
    if target == "seldon":
        from infra.cluster.seldon import deploy_on_cluster

        return deploy_on_cluster(champion_uri, protocols=protocols, settings=settings)
    from infra.local.serving import deploy_locally

    return deploy_locally(champion_uri, protocols=protocols, settings=settings)
