"""Execute a Katib ``Experiment`` spec on one machine, with Katib's semantics.

Trials are processes, ``parallelTrialCount`` at a time. Each trial runs the trial template's primary container
command with ``${trialParameters.x}`` substituted; its metrics are parsed from stdout with the StdOut collector's
``name=value`` filter. The experiment succeeds when the objective goal is reached, when ``maxTrialCount`` trials
completed, or when the algorithm has nothing left to suggest; it fails once more than ``maxFailedTrialCount``
trials failed. The result has the shape of Katib's own status (see :mod:`components.katib.results`).

Trials of the project's trainer (``python -m trainer ...``) are forked from a warm server (:mod:`.zygote`) instead
of starting a new interpreter each time, which turns seconds of per-trial overhead into milliseconds.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infra.local.katib.launchers import ForkLauncher, SubprocessLauncher, is_trainer_command
from infra.local.katib.spec import PLACEHOLDER, ParsedSpec, parse_spec
from infra.local.katib.suggest import DIFFERENCES, Suggester, make_suggester
from infra.local.katib.trials import Trial, TrialObserver, metric_record, now, parse_metrics
from infra.local.katib.zygote import THREAD_CAPS
from kfops.base.errors import KfopsError, Step, in_step

#: ``activeDeadlineSeconds`` assumed for trials whose template sets none (the workflow's own Experiments set 1800).
DEFAULT_TRIAL_SECONDS = 1800.0
#: On top of its trials' deadlines the executor may take this share longer, plus a fixed few seconds (launching
#: trials, collecting their exits, asking the algorithm): measured at 0.04 s per trial.
_SLACK_SHARE, _SLACK_SECONDS = 0.1, 5.0


def default_timeout(spec: ParsedSpec, grid_points: int | None = None) -> float | None:
    """The longest a correct run of ``spec`` can take.

    Its trials, ``parallelTrialCount`` at a time, each killed at its ``activeDeadlineSeconds``, plus the executor's
    slack.

    Args:
        spec: The parsed Experiment.
        grid_points: How many points a grid search has (its trial count when the spec sets no maxTrialCount).

    Returns:
        Seconds, or ``None`` when nothing bounds the trial count (no maxTrialCount, not a grid: Katib then runs until
        the goal or the failure limit).
    """
    trials = spec.max_trials if spec.max_trials is not None else grid_points
    if trials is None:
        return None
    rounds = math.ceil(trials / spec.parallel)
    return rounds * (spec.timeout or DEFAULT_TRIAL_SECONDS) * (1 + _SLACK_SHARE) + _SLACK_SECONDS


class LocalExperiment:
    """One Experiment, executed locally.

    Args:
        experiment: The Experiment (as built by :func:`components.katib.experiment.build_experiment`, or any
            Katib Experiment using a StdOut collector and a trial command).
        workdir: Directory for trial logs.
        on_event: Called with ``("started" | "finished", trial)`` for progress display.
        fork: Fork trainer trials from a warm server (``False`` forces one interpreter per trial).
        timeout: Seconds the whole experiment may take (a safety net: Katib itself has no such limit). By default
            the most its spec allows (:func:`default_timeout`), so a run that cannot end fails instead of hanging.
    """

    def __init__(self, experiment: dict[str, Any], workdir: Path, on_event: TrialObserver | None = None,
                 fork: bool = True, timeout: float | None = None) -> None:
        self.experiment = experiment
        self.spec = parse_spec(experiment)
        self.workdir = workdir
        self.timeout = timeout
        self.on_event = on_event or (lambda _kind, _trial: None)
        self.fork = fork and is_trainer_command(self.spec.command)

    def _argv(self, assignments: dict[str, str]) -> list[str]:
        values = {tp: assignments[ref] for tp, ref in self.spec.references.items()}
        return [PLACEHOLDER.sub(lambda m: values[m.group(1)], part) for part in self.spec.command]

    @contextlib.contextmanager
    def _launcher(self) -> Iterator[SubprocessLauncher | ForkLauncher]:
        # One thread per trial: trials already run in parallel, and oversubscribed BLAS/OpenMP pools only slow
        # them down (forked trials need it besides, see the zygote).
        env = {**os.environ, **THREAD_CAPS, **self.spec.env}
        if self.fork:
            sample = {p.name: str(p.min if p.min is not None else p.values[0]) for p in self.spec.parameters}
            launcher: SubprocessLauncher | ForkLauncher = ForkLauncher(env, list(self._argv(sample))[3:])
        else:
            launcher = SubprocessLauncher(env)
        try:
            yield launcher
        finally:
            launcher.close()

    def run(self) -> dict[str, Any]:
        """Run trials until the experiment completes; return the result (see :mod:`.results`).

        Raises:
            KfopsError: The spec cannot run here (unknown algorithm or setting, unsupported collector...).
        """
        spec = self.spec
        suggester = make_suggester(spec.algorithm, spec.settings, spec.parameters, spec.goal)
        (self.workdir / "trials").mkdir(parents=True, exist_ok=True)
        trials: list[Trial] = []
        running: dict[str, Trial] = {}
        start_time = now()
        outcome: tuple[str, str, str] | None = None
        limit = self.timeout or default_timeout(spec, getattr(suggester, "size", None))
        if self.timeout:
            why, fix = "the tuning timeout", "raise the tuning timeout or lower maxTrialCount"
        else:
            why = (f"the most its spec allows ({spec.max_trials or getattr(suggester, 'size', '?')} trials, "
                   f"{spec.parallel} at a time, each at most {spec.timeout or DEFAULT_TRIAL_SECONDS:.0f} s)")
            fix = (f"a correct run cannot take longer: the executor did not see the experiment end; read the trial "
                   f"logs in {self.workdir / 'trials'} and report it")
        with self._launcher() as launcher:
            # From here: starting the trial server has its own limit.
            deadline = time.monotonic() + limit if limit else math.inf
            try:
                while (outcome := self._outcome(trials, running, suggester)) is None:
                    if time.monotonic() > deadline:
                        raise KfopsError(f"experiment {spec.name} did not finish within {limit:.0f} s, {why} "
                                         f"({len(trials)} trials started)", fix)
                    left = math.inf if spec.max_trials is None else spec.max_trials - len(trials)
                    slots = int(min(spec.parallel - len(running), left))
                    for token, assignments in suggester.ask(slots) if slots > 0 else []:
                        name = f"{spec.name}-{len(trials) + 1:03d}"
                        trial = Trial(name=name, assignments=assignments, token=token,
                                      log=self.workdir / "trials" / f"{name}.log")
                        launcher.start(name, self._argv(assignments), trial.log)
                        trials.append(trial)
                        running[name] = trial
                        self.on_event("started", trial)
                    for name, code in launcher.poll(timeout=0.05):
                        self._complete(running.pop(name), code, suggester)
                    for trial in [t for t in running.values() if spec.timeout and
                                  time.monotonic() - t.started > spec.timeout]:
                        launcher.kill(trial.name)
                        launcher.poll(timeout=1)
                        running.pop(trial.name).finish("Failed", "DeadlineExceeded",
                                                       f"killed after activeDeadlineSeconds={spec.timeout:.0f}")
                        suggester.tell(trial.token, None)
                        self.on_event("finished", trial)
            finally:
                for trial in running.values():
                    launcher.kill(trial.name)
                    trial.finish("Killed", "TrialKilled", "the experiment completed before this trial did")
                    self.on_event("finished", trial)
        return self._result(trials, start_time, outcome)

    def _complete(self, trial: Trial, code: int, suggester: Suggester) -> None:
        spec = self.spec
        trial.exit_code = code
        output = trial.log.read_text(errors="replace") if trial.log.exists() else ""
        trial.observed = parse_metrics(output, spec.metrics)
        value = trial.objective(spec.objective_metric, spec.goal)
        if code != 0:
            last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "no output")
            trial.finish("Failed", "TrialFailed", f"exit code {code}: {last[:300]}")
        elif value is None:
            trial.finish("Failed", "MetricsUnavailable",
                         f"exited 0 without printing {spec.objective_metric}=<value>")
        else:
            trial.finish("Succeeded", "TrialSucceeded")
        suggester.tell(trial.token, value if trial.condition == "Succeeded" else None)
        self.on_event("finished", trial)

    def _outcome(self, trials: list[Trial], running: dict[str, Trial],
                 suggester: Suggester) -> tuple[str, str, str] | None:
        spec = self.spec
        done = [t for t in trials if t.condition != "Running"]
        failed = sum(t.condition == "Failed" for t in done)
        best = self._best(trials)
        if best is not None and spec.goal_value is not None:
            value = best.objective(spec.objective_metric, spec.goal)
            assert value is not None
            if (value <= spec.goal_value) if spec.goal == "minimize" else (value >= spec.goal_value):
                return "Succeeded", "ExperimentGoalReached", "Experiment has succeeded because Objective goal " \
                                                             "has reached"
        if spec.max_failed is not None and failed > spec.max_failed:
            return "Failed", "ExperimentFailed", (f"Experiment has failed because max failed count has reached: "
                                                  f"{failed} failed trials > maxFailedTrialCount {spec.max_failed}")
        if spec.max_trials is not None and len(done) >= spec.max_trials:
            return "Succeeded", "ExperimentMaxTrialsReached", "Experiment has succeeded because max trial count " \
                                                              "has reached"
        if suggester.exhausted and not running:
            return "Succeeded", "ExperimentSuggestionEndReached", "Experiment has succeeded because suggestion " \
                                                                  "service has reached the end"
        return None

    def _best(self, trials: list[Trial]) -> Trial | None:
        spec = self.spec
        scored = [(value, t) for t in trials if t.condition == "Succeeded"
                  if (value := t.objective(spec.objective_metric, spec.goal)) is not None]
        if not scored:
            return None
        pick = min if spec.goal == "minimize" else max
        return pick(scored, key=lambda pair: pair[0])[1]

    def _result(self, trials: list[Trial], start_time: str, outcome: tuple[str, str, str] | None) -> dict[str, Any]:
        spec = self.spec
        kind, reason, message = outcome or ("Failed", "ExperimentFailed", "interrupted")
        by_condition = {c: [t.name for t in trials if t.condition == c] for c in ("Succeeded", "Failed", "Killed")}
        best = self._best(trials)
        status: dict[str, Any] = {
            "startTime": start_time,
            "completionTime": now(),
            "conditions": [
                {"type": "Created", "status": "True", "reason": "ExperimentCreated",
                 "message": "Experiment is created"},
                {"type": "Running", "status": "False", "reason": "ExperimentRunning", "message": ""},
                {"type": kind, "status": "True", "reason": reason, "message": message},
            ],
            "trials": len(trials),
            "trialsSucceeded": len(by_condition["Succeeded"]),
            "trialsFailed": len(by_condition["Failed"]),
            "trialsKilled": len(by_condition["Killed"]),
            "trialsRunning": 0,
            "trialsPending": 0,
            "succeededTrialList": by_condition["Succeeded"],
            "failedTrialList": by_condition["Failed"],
            "killedTrialList": by_condition["Killed"],
            "currentOptimalTrial": {
                "bestTrialName": best.name if best else "",
                "parameterAssignments": [{"name": k, "value": v} for k, v in best.assignments.items()] if best
                else [],
                "observation": {"metrics": [metric_record(n, best.observed.get(n, [])) for n in spec.metrics]}
                if best else {"metrics": []},
            },
        }
        experiment = {**{k: v for k, v in self.experiment.items() if k != "status"}, "status": status}
        return {"executor": "local", "experiment": experiment, "trials": [t.to_dict(spec.metrics) for t in trials],
                "differsFromKatib": DIFFERENCES.get(spec.algorithm, "")}


@in_step(Step.TUNE)
def run_local_experiment(experiment: dict[str, Any], workdir: Path, on_event: TrialObserver | None = None,
                         fork: bool = True, timeout: float | None = None) -> dict[str, Any]:
    """Execute ``experiment`` locally and return the result (see :class:`LocalExperiment`)."""
    return LocalExperiment(experiment, workdir, on_event=on_event, fork=fork, timeout=timeout).run()
