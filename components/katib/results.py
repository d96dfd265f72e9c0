"""The tuning result both executors produce: the Experiment as Katib reports it, plus one record per trial.

Shape::

    {"executor": "local" | "katib",
     "experiment": {apiVersion, kind, metadata, spec, status},   # status exactly as Katib writes it
     "trials": [{"name", "condition", "reason", "message", "parameterAssignments": [{name, value}],
                 "observation": {"metrics": [{name, latest, min, max}]}, "startTime", "completionTime"}]}

``best_params`` reads only this, so nothing downstream knows which executor ran.
"""

from __future__ import annotations

import math
from typing import Any

from kfops.base.errors import KfopsError

#: Katib's value for a metric a trial never reported.
UNAVAILABLE = "unavailable"


def condition(experiment: dict[str, Any]) -> tuple[str, str, str]:
    """The experiment's final condition as ``(type, reason, message)``.

    For example ``("Succeeded", "ExperimentGoalReached", "...")``.

    Raises:
        KfopsError: The experiment has not finished.
    """
    for entry in experiment.get("status", {}).get("conditions", []):
        if entry.get("type") in ("Succeeded", "Failed") and entry.get("status") == "True":
            return entry["type"], entry.get("reason", ""), entry.get("message", "")
    raise KfopsError(f"experiment {experiment.get('metadata', {}).get('name')!r} has not finished",
                     "wait for the tune step to complete")


def failed_trial_reasons(result: dict[str, Any], limit: int = 3) -> str:
    """Why trials failed, short: each distinct cause once, with how many trials it stopped."""
    failed = [t for t in result.get("trials", []) if t.get("condition") in ("Failed", "MetricsUnavailable")]
    causes: dict[str, int] = {}
    for trial in failed:
        # The trainer's own error is "error: [step] cause. Fix: ...": the cause is what differs between failures.
        text = f"{trial.get('reason', '')}: {trial.get('message', '')}".split(". Fix:")[0].strip(": ")
        text = text if len(text) <= 200 else text[:197] + "..."
        causes[text] = causes.get(text, 0) + 1
    shown = [f"{count} trial{'s' if count > 1 else ''}: {text}" for text, count in list(causes.items())[:limit]]
    more = f" (+{len(causes) - limit} other causes)" if len(causes) > limit else ""
    return "; ".join(shown) + more


def best_trial(result: dict[str, Any], objective_metric: str | None = None) -> tuple[dict[str, str], float]:
    """The optimal trial's parameter assignments and objective value.

    Args:
        result: The tuning result (see module docstring).
        objective_metric: Expected objective metric name; checked against the experiment when given.

    Raises:
        KfopsError: The experiment failed, or finished without any trial reporting the objective metric.
    """
    experiment = result.get("experiment") or {}
    name = experiment.get("metadata", {}).get("name", "?")
    kind, reason, message = condition(experiment)
    if kind == "Failed":
        raise KfopsError(f"tuning experiment {name!r} failed ({reason}: {message}); failed trials: "
                               f"{failed_trial_reasons(result) or 'none recorded'}",
                         "read the trial logs, fix the cause (data, search space, trainer) and run again")
    spec_metric = experiment.get("spec", {}).get("objective", {}).get("objectiveMetricName")
    if objective_metric and spec_metric and spec_metric != objective_metric:
        raise KfopsError(f"experiment {name!r} optimised {spec_metric!r}, expected {objective_metric!r}",
                         "pass the result of the tune step for the same recipe")
    optimal = experiment.get("status", {}).get("currentOptimalTrial") or {}
    assignments = {a["name"]: a["value"] for a in optimal.get("parameterAssignments") or []}
    metrics = {m["name"]: m for m in (optimal.get("observation") or {}).get("metrics") or []}
    metric = metrics.get(spec_metric or objective_metric or "")
    value = _objective_value(metric, experiment.get("spec", {}).get("objective", {}).get("type", "minimize"))
    if not assignments or value is None:
        raise KfopsError(f"experiment {name!r} finished ({reason}) but no trial reported "
                               f"{spec_metric or objective_metric!r}; {failed_trial_reasons(result)}",
                         "check that the trainer prints the objective metric as name=value")
    return assignments, value


def _objective_value(metric: dict[str, str] | None, goal: str) -> float | None:
    if not metric:
        return None
    # Katib's default strategy for the objective: the best value the trial reported, else its latest.
    preferred = metric.get("min" if goal == "minimize" else "max")
    for raw in (preferred, metric.get("latest")):
        try:
            value = float(raw or "")
        except ValueError:
            continue
        if math.isfinite(value):
            return value
    return None


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Counts and the outcome, for logs, KFP metrics and the command line's final report."""
    experiment = result["experiment"]
    status = experiment.get("status", {})
    kind, reason, _ = condition(experiment)
    return {
        "experiment": experiment["metadata"]["name"],
        "executor": result.get("executor"),
        "outcome": kind,
        "reason": reason,
        "trials": status.get("trials", 0),
        "succeeded": status.get("trialsSucceeded", 0),
        "failed": status.get("trialsFailed", 0),
        "killed": status.get("trialsKilled", 0),
        "best_trial": (status.get("currentOptimalTrial") or {}).get("bestTrialName"),
    }
