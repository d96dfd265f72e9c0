"""Katib's tuning algorithms as the Experiment spec names them: which settings each accepts, and what it can search.

Both executors read this: the Experiment builder refuses what Katib would refuse, and the local executor's suggesters
take their settings from the same table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from kfops.base.errors import KfopsError
from kfops.base.recipes import SearchParameter
from kfops.base.values import parse_named_values

#: Katib algorithm name -> the ``algorithmSettings`` it accepts, with their types.
ALGORITHMS: dict[str, dict[str, Callable[[str], Any]]] = {
    "random": {"random_state": int},
    "grid": {"random_state": int},
    "tpe": {"random_state": int, "n_startup_trials": int, "n_ei_candidates": int, "n_EI_candidates": int,
            "gamma": float, "prior_weight": float},
    "multivariate-tpe": {"random_state": int, "n_startup_trials": int, "n_ei_candidates": int},
    "cmaes": {"random_state": int, "sigma": float, "restart_strategy": str},
    "bayesianoptimization": {"random_state": int, "base_estimator": str, "n_initial_points": int,
                             "acq_func": str, "acq_optimizer": str},
}


def typed_settings(algorithm: str, settings: dict[str, str]) -> dict[str, Any]:
    """An algorithm's ``algorithmSettings`` (strings) converted to the types the table names.

    Raises:
        KfopsError: An unknown setting or a value of the wrong type.
    """
    return parse_named_values(settings, ALGORITHMS[algorithm], owner=f"algorithm {algorithm!r}",
                              kind="setting")


def grid_values(parameter: SearchParameter) -> list[str]:
    """Every value grid search tries for ``parameter``; doubles need a step, as in Katib.

    Raises:
        KfopsError: A double without step.
    """
    if parameter.type in ("categorical", "discrete"):
        return list(parameter.values)
    low, high = parameter.bounds
    if parameter.type == "int":
        step = int(parameter.step or 1)
        return [str(v) for v in range(int(low), int(high) + 1, step)]
    if parameter.step is None:
        raise KfopsError(f"grid search needs a step for double parameter {parameter.name!r}",
                         "give the parameter a step or choose another algorithm")
    count = math.floor((high - low) / parameter.step + 1e-9) + 1
    return [repr(round(low + i * parameter.step, 12)) for i in range(count)]


def validate_settings(algorithm: str, settings: dict[str, str], parameters: Sequence[SearchParameter]) -> None:
    """Check an algorithm's settings and whether it can search ``parameters`` at all.

    Raises:
        KfopsError: Unknown algorithm or setting, a bad value, or a search space the algorithm cannot handle.
    """
    if algorithm not in ALGORITHMS:
        raise KfopsError(f"unknown tuning algorithm {algorithm!r}", f"choose one of: {', '.join(ALGORITHMS)}")
    typed_settings(algorithm, settings)
    if not parameters:
        raise KfopsError("the search space is empty", "give the recipe at least one search parameter")
    if algorithm == "grid":
        for parameter in parameters:
            grid_values(parameter)
    numeric = [p for p in parameters if p.type in ("double", "int")]
    if algorithm == "cmaes" and (len(numeric) < 2 or len(numeric) != len(parameters)):
        raise KfopsError("cmaes needs two or more numeric (double or int) parameters and no categorical ones",
                         "choose tpe or random for this search space")


