"""Tune: the recipe's Katib Experiment for a run; the target chooses who executes it (``pipelines.targets``)."""

from __future__ import annotations

import re
from typing import Any

from components.katib.experiment import build_experiment
from kfops.base.recipes import get_recipe


def experiment_name(recipe: str, run_id: str) -> str:
    """A DNS-label Experiment name unique to the pipeline run."""
    suffix = re.sub(r"[^a-z0-9]", "", run_id.lower())[:8] or "run"
    return f"kfops-{recipe}-{suffix}"


def build_tuning_experiment(recipe_name: str, dataset_uri: str, *, max_trials: int, parallel_trials: int,
                            max_failed_trials: int, algorithm: str = "", run_id: str = "local",
                            namespace: str = "local") -> dict[str, Any]:
    """The recipe's Katib Experiment for one pipeline run (the spec every executor runs).

    Args:
        recipe_name: Which recipe's search space and objective to use.
        dataset_uri: ``s3://`` URI of the cleaned dataset.
        max_trials: ``maxTrialCount``.
        parallel_trials: ``parallelTrialCount``; more than ``max_trials`` runs them all at once (Katib would refuse
            the Experiment, and ``--max-trials 2`` with the default parallelism should simply work).
        max_failed_trials: ``maxFailedTrialCount``; more than ``max_trials`` means every trial may fail.
        algorithm: Katib algorithm name; empty for the recipe's default.
        run_id: Pipeline run id, used to name the Experiment.
        namespace: Namespace of the Experiment.

    Raises:
        KfopsError: Invalid search settings.
    """
    recipe = get_recipe(recipe_name)
    return build_experiment(
        recipe, name=experiment_name(recipe.name, run_id), namespace=namespace, dataset_uri=dataset_uri,
        max_trials=max_trials, parallel_trials=min(parallel_trials, max(max_trials, 1)),
        max_failed_trials=min(max_failed_trials, max(max_trials, 1)), algorithm=algorithm or None,
    )
