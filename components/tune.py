"""Tune: build the recipe's Katib Experiment and run it with the chosen executor."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.katib.experiment import build_experiment
from kfops.errors import KfopsError
from pipelines.recipes import get_recipe

STEP = "tune"
EXECUTORS = ("katib", "local")


def experiment_name(recipe: str, run_id: str) -> str:
    """A DNS-label Experiment name unique to the pipeline run."""
    suffix = re.sub(r"[^a-z0-9]", "", run_id.lower())[:8] or "run"
    return f"kfops-{recipe}-{suffix}"


def tune(recipe_name: str, dataset_uri: str, *, executor: str, max_trials: int, parallel_trials: int,
         max_failed_trials: int, algorithm: str = "", run_id: str = "local", namespace: str = "",
         timeout_minutes: int = 60, workdir: Path | None = None,
         on_trial: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """Run the recipe's hyperparameter search and return the tuning result (see :mod:`components.katib.results`).

    Args:
        recipe_name: Which recipe's search space and objective to use.
        dataset_uri: ``s3://`` URI of the cleaned dataset.
        executor: ``katib`` (create the Experiment on the cluster) or ``local`` (run the same spec here).
        max_trials: ``maxTrialCount``.
        parallel_trials: ``parallelTrialCount``.
        max_failed_trials: ``maxFailedTrialCount``.
        algorithm: Katib algorithm name; empty for the recipe's default.
        run_id: Pipeline run id, used to name the Experiment.
        namespace: Namespace for the Experiment (cluster); the pod's own namespace when empty.
        timeout_minutes: How long the experiment may take (the cluster executor waits this long for Katib).
        workdir: Where the local executor writes trial logs.
        on_trial: Progress callback of the local executor.

    Raises:
        KfopsError: Unknown executor, invalid search settings, or the executor failed to run the experiment.
    """
    if executor not in EXECUTORS:
        raise KfopsError(STEP, f"unknown tuning executor {executor!r}", f"choose one of: {', '.join(EXECUTORS)}")
    recipe = get_recipe(recipe_name, STEP)
    if executor == "katib":
        from components.katib.cluster import current_namespace, run_on_cluster

        namespace = namespace or current_namespace()
    experiment = build_experiment(
        recipe, name=experiment_name(recipe.name, run_id), namespace=namespace or "local", dataset_uri=dataset_uri,
        max_trials=max_trials, parallel_trials=parallel_trials, max_failed_trials=max_failed_trials,
        algorithm=algorithm or None,
    )
    if executor == "katib":
        return run_on_cluster(experiment, timeout=timeout_minutes * 60)
    from components.katib.local import run_local_experiment

    return run_local_experiment(experiment, workdir or Path("tuning"), on_event=on_trial,
                                timeout=timeout_minutes * 60)
