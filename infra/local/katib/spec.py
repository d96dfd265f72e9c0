"""The parts of a Katib ``Experiment`` the local executor runs, read and validated as Katib's webhook would."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.recipes import SearchParameter

#: A trial command's reference to a trial parameter.
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")


@dataclass(frozen=True)
class ParsedSpec:
    """What the local executor needs from an Experiment, validated."""

    name: str
    namespace: str
    goal: str
    goal_value: float | None
    objective_metric: str
    metrics: tuple[str, ...]
    algorithm: str
    settings: dict[str, str]
    parameters: tuple[SearchParameter, ...]
    max_trials: int | None
    parallel: int
    max_failed: int | None
    command: tuple[str, ...]
    references: dict[str, str]
    env: dict[str, str]
    timeout: float | None


def _bad_spec(what: str, fix: str = "fix the Experiment spec") -> KfopsError:
    return KfopsError(f"invalid Experiment: {what}", fix)


def _number(value: Any, where: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise _bad_spec(f"{where} is not a number: {value!r}") from error


def _parameter(raw: dict[str, Any]) -> SearchParameter:
    name = raw.get("name") or "?"
    kind = raw.get("parameterType")
    space = raw.get("feasibleSpace") or {}
    if kind in ("categorical", "discrete"):
        values = tuple(str(v) for v in space.get("list") or ())
        if not values:
            raise _bad_spec(f"parameter {name!r} ({kind}) has an empty feasibleSpace.list")
        return SearchParameter(name=name, type=kind, values=values)
    if kind not in ("double", "int"):
        raise _bad_spec(f"parameter {name!r} has unknown parameterType {kind!r}",
                        "use double, int, categorical or discrete")
    low = _number(space.get("min"), f"parameter {name!r} min")
    high = _number(space.get("max"), f"parameter {name!r} max")
    if low is None or high is None or low >= high:
        raise _bad_spec(f"parameter {name!r} needs min < max (got min={space.get('min')!r}, "
                        f"max={space.get('max')!r})")
    distribution = space.get("distribution") or "uniform"
    if distribution not in ("uniform", "logUniform"):
        raise _bad_spec(f"parameter {name!r}: distribution {distribution!r} is not supported locally",
                        "use uniform or logUniform")
    log = distribution == "logUniform"
    if log and low <= 0:
        raise _bad_spec(f"parameter {name!r}: a logUniform range must be positive")
    return SearchParameter(name=name, type=kind, min=low, max=high,
                         step=_number(space.get("step"), f"parameter {name!r} step"), log=log)


@in_step(Step.TUNE)
def parse_spec(experiment: dict[str, Any]) -> ParsedSpec:
    """Read and validate the parts of an Experiment the local executor runs.

    Raises:
        KfopsError: A missing or invalid field, or a feature this executor cannot run (naming it).
    """
    metadata = experiment.get("metadata") or {}
    spec = experiment.get("spec") or {}
    objective = spec.get("objective") or {}
    goal = objective.get("type")
    if goal not in ("minimize", "maximize"):
        raise _bad_spec(f"objective.type must be minimize or maximize, got {goal!r}")
    metric = objective.get("objectiveMetricName")
    if not metric:
        raise _bad_spec("objective.objectiveMetricName is missing")
    collector = ((spec.get("metricsCollectorSpec") or {}).get("collector") or {}).get("kind", "StdOut")
    if collector != "StdOut":
        raise _bad_spec(f"metrics collector {collector!r} is not supported by the local executor",
                        "use the StdOut collector (print name=value lines)")
    algorithm = (spec.get("algorithm") or {}).get("algorithmName")
    if not algorithm:
        raise _bad_spec("algorithm.algorithmName is missing")
    settings = {s["name"]: str(s.get("value", "")) for s in (spec.get("algorithm") or {}).get("algorithmSettings")
                or []}
    parameters = tuple(_parameter(p) for p in spec.get("parameters") or [])
    if not parameters:
        raise _bad_spec("spec.parameters is empty")
    max_trials = spec.get("maxTrialCount")
    parallel = spec.get("parallelTrialCount", 3)
    max_failed = spec.get("maxFailedTrialCount")
    # No maxTrialCount: Katib runs until the goal, the failure limit or the end of the suggestions (a grid's).
    if max_trials is not None and (not isinstance(max_trials, int) or max_trials < 1):
        raise _bad_spec(f"maxTrialCount must be a positive integer, got {max_trials!r}")
    if not isinstance(parallel, int) or parallel < 1:
        raise _bad_spec(f"parallelTrialCount must be a positive integer, got {parallel!r}")
    if max_failed is not None and (not isinstance(max_failed, int) or max_failed < 0):
        raise _bad_spec(f"maxFailedTrialCount must be a non-negative integer, got {max_failed!r}")

    template = spec.get("trialTemplate") or {}
    references = {p["name"]: p.get("reference", p["name"]) for p in template.get("trialParameters") or []}
    known = {p.name for p in parameters}
    for trial_parameter, reference in references.items():
        if reference not in known:
            raise _bad_spec(f"trial parameter {trial_parameter!r} references unknown parameter {reference!r}")
    job = template.get("trialSpec") or {}
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    primary = template.get("primaryContainerName")
    containers = [c for c in pod.get("containers") or [] if not primary or c.get("name") == primary]
    if not containers:
        raise _bad_spec(f"trialSpec has no container named {primary!r}")
    container = containers[0]
    command = tuple(str(part) for part in (container.get("command") or []) + (container.get("args") or []))
    if not command:
        raise _bad_spec("the trial container has no command")
    for name in {m.group(1) for part in command for m in PLACEHOLDER.finditer(part)} - set(references):
        raise _bad_spec(f"the trial command uses ${{trialParameters.{name}}} but trialParameters has no {name!r}")
    env = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
    return ParsedSpec(
        name=metadata.get("name") or "experiment", namespace=metadata.get("namespace") or "default",
        goal=goal, goal_value=_number(objective.get("goal"), "objective.goal"), objective_metric=metric,
        metrics=(metric, *(objective.get("additionalMetricNames") or [])),
        algorithm=algorithm, settings=settings, parameters=parameters,
        max_trials=max_trials, parallel=parallel, max_failed=max_failed,
        command=command, references=references, env=env,
        timeout=_number((job.get("spec") or {}).get("activeDeadlineSeconds"), "activeDeadlineSeconds"),
    )
