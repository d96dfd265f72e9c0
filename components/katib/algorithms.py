"""Katib's tuning algorithms as the Experiment spec names them: which settings each accepts, and what it can search.

The table is Katib's own at the pinned tag (:data:`kfops.base.upstream.katib.ALGORITHMS`): the suggestion service
behind each algorithm, the settings it accepts with the rule it checks, and how it treats ``logUniform``. Both
executors read it: the Experiment builder refuses what Katib's webhook or suggestion service would refuse (a refused
setting fails the Experiment on a cluster, minutes into a run), and the local executor's suggesters take their
settings from the same table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kfops.base.errors import KfopsError
from kfops.base.recipes import SearchParameter
from kfops.base.upstream import katib
from kfops.base.values import parse_named_values

#: Katib algorithm name -> the ``algorithmSettings`` it accepts, with their types.
ALGORITHMS: dict[str, dict[str, Any]] = {name: {setting: rule.type for setting, rule in algorithm.settings.items()}
                                         for name, algorithm in katib.ALGORITHMS.items()}


def typed_settings(algorithm: str, settings: dict[str, str]) -> dict[str, Any]:
    """An algorithm's ``algorithmSettings`` (strings) converted to the types the table names.

    Raises:
        KfopsError: An unknown setting, a value of the wrong type, or one outside the rule Katib checks.
    """
    typed = parse_named_values(settings, ALGORITHMS[algorithm], owner=f"algorithm {algorithm!r}", kind="setting")
    accepted = katib.ALGORITHMS[algorithm].settings
    for name, value in typed.items():
        if not accepted[name].valid(str(value)):
            raise KfopsError(f"setting {name}={value!r} of algorithm {algorithm!r} must be {accepted[name].rule}",
                             f"change the value (Katib's {katib.ALGORITHMS[algorithm].service} would refuse it)")
    return typed


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


def grid_size(parameters: Sequence[SearchParameter]) -> int:
    """How many combinations grid search has (Katib's ``convert_to_combinations``)."""
    return math.prod(len(grid_values(p)) for p in parameters)


def validate_settings(algorithm: str, settings: dict[str, str], parameters: Sequence[SearchParameter],
                      max_trials: int | None = None) -> None:
    """Check an algorithm's settings and whether it can search ``parameters`` at all, as Katib would.

    Args:
        algorithm: Katib algorithm name.
        settings: Its ``algorithmSettings``.
        parameters: The search space.
        max_trials: ``maxTrialCount``, if set (grid search refuses more trials than combinations).

    Raises:
        KfopsError: Unknown algorithm or setting, a bad value, or a search space the algorithm cannot handle.
    """
    if algorithm not in ALGORITHMS:
        raise KfopsError(f"unknown tuning algorithm {algorithm!r}", f"choose one of: {', '.join(ALGORITHMS)}")
    typed_settings(algorithm, settings)
    if not parameters:
        raise KfopsError("the search space is empty", "give the recipe at least one search parameter")
    facts = katib.ALGORITHMS[algorithm]
    if algorithm == "grid":
        combinations = grid_size(parameters)
        if max_trials is not None and max_trials > combinations:
            raise KfopsError(f"grid search has {combinations} combinations but maxTrialCount is {max_trials}",
                             f"use at most {combinations} trials, or finer steps")
    numeric = [p for p in parameters if p.type in ("double", "int")]
    if len(numeric) < facts.min_numeric or (facts.min_numeric and len(numeric) != len(parameters)):
        raise KfopsError(f"{algorithm} needs {facts.min_numeric} or more numeric (double or int) parameters and no "
                         "categorical ones", "choose tpe or random for this search space")
    if facts.log_uniform == "always":
        for parameter in numeric:
            if parameter.type == "double" and parameter.bounds[0] <= 0:
                raise KfopsError(f"{algorithm} on Katib samples every double log-uniformly ({facts.library}), so "
                                 f"parameter {parameter.name!r} needs a minimum above 0 "
                                 f"(got {parameter.bounds[0]:g})",
                                 "raise the minimum above 0, or choose tpe or random")
