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
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.local.katib.suggest import DIFFERENCES, Suggester, make_suggester
from infra.local.katib.zygote import THREAD_CAPS
from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.recipes import SearchParameter

_PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")
#: Katib's default StdOut metrics filter.
_METRIC = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")

Event = Callable[[str, "Trial"], None]


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
    for name in {m.group(1) for part in command for m in _PLACEHOLDER.finditer(part)} - set(references):
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


def parse_metrics(text: str, names: tuple[str, ...]) -> dict[str, list[float]]:
    """Every value of each metric in ``names`` printed as ``name=value``, in order (Katib StdOut collector)."""
    observed: dict[str, list[float]] = {}
    for line in text.splitlines():
        for match in _METRIC.finditer(line):
            name, raw = match.group(1), match.group(2)
            if name in names and raw not in ("", "+", "-", "."):
                with contextlib.suppress(ValueError):
                    observed.setdefault(name, []).append(float(raw))
    return observed


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Trial:
    """One trial of the local executor."""

    name: str
    assignments: dict[str, str]
    token: Any
    log: Path
    started: float = field(default_factory=time.monotonic)
    start_time: str = field(default_factory=_now)
    completion_time: str | None = None
    condition: str = "Running"
    reason: str = "TrialRunning"
    message: str = ""
    observed: dict[str, list[float]] = field(default_factory=dict)
    exit_code: int | None = None
    seconds: float | None = None

    def objective(self, metric: str, goal: str) -> float | None:
        """Katib's objective value: the best value reported (min or max by goal), if any."""
        values = [v for v in self.observed.get(metric, []) if math.isfinite(v)]
        if not values:
            return None
        return min(values) if goal == "minimize" else max(values)

    def finish(self, condition: str, reason: str, message: str = "") -> None:
        """Record the end of the trial."""
        self.condition, self.reason, self.message = condition, reason, message
        self.completion_time = _now()
        self.seconds = time.monotonic() - self.started

    def to_dict(self, metrics: tuple[str, ...]) -> dict[str, Any]:
        """The trial record of the result (see :mod:`.results`)."""
        return {
            "name": self.name,
            "condition": self.condition,
            "reason": self.reason,
            "message": self.message,
            "parameterAssignments": [{"name": k, "value": v} for k, v in self.assignments.items()],
            "observation": {"metrics": [_metric_record(name, self.observed.get(name, [])) for name in metrics]},
            "startTime": self.start_time,
            "completionTime": self.completion_time,
            "exitCode": self.exit_code,
            "seconds": round(self.seconds, 4) if self.seconds is not None else None,
            "log": str(self.log),
        }


def _metric_record(name: str, values: list[float]) -> dict[str, str]:
    if not values:
        return {"name": name, "latest": "unavailable", "min": "unavailable", "max": "unavailable"}
    return {"name": name, "latest": repr(values[-1]), "min": repr(min(values)), "max": repr(max(values))}


class SubprocessLauncher:
    """Each trial a fresh process (any command)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], log: Path) -> None:
        """Start a trial process with its output in ``log``."""
        if argv[0] in ("python", "python3"):
            argv = [sys.executable, *argv[1:]]
        with log.open("ab") as handle:
            try:
                self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=handle,
                                                    stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
            except OSError as error:
                handle.write(f"cannot start trial: {error}\n".encode())
                self.procs[name] = subprocess.Popen([sys.executable, "-c", "raise SystemExit(127)"])

    def poll(self, timeout: float) -> list[tuple[str, int]]:
        """Trials that finished within ``timeout`` seconds, with their exit codes."""
        deadline = time.monotonic() + timeout
        while True:
            done = [(name, code) for name, proc in self.procs.items() if (code := proc.poll()) is not None]
            for name, _ in done:
                del self.procs[name]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(0.002)

    def kill(self, name: str) -> None:
        """Kill a trial's whole process group."""
        proc = self.procs.get(name)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def close(self) -> None:
        """Kill and reap whatever is still running."""
        for name in list(self.procs):
            self.kill(name)
            self.procs.pop(name).wait()


class ForkLauncher:
    """Trials of the project's trainer, forked from a warm :mod:`.zygote` process."""

    def __init__(self, env: dict[str, str], preload_argv: list[str]) -> None:
        self.server = subprocess.Popen([sys.executable, "-m", "infra.local.katib.zygote"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, env=env, start_new_session=True)
        self.pids: dict[str, int] = {}
        self.pending = b""
        self.exits: list[tuple[str, int]] = []
        self.seen: set[str] = set()
        self._send({"op": "preload", "argv": preload_argv})
        self._wait_for("ready", timeout=300)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.server.stdin is not None
        try:
            self.server.stdin.write((json.dumps(message) + "\n").encode())
            self.server.stdin.flush()
        except BrokenPipeError as error:
            raise KfopsError("the local trial server exited unexpectedly",
                             "run again; if it repeats, run one trial by hand with `python -m trainer`") from error

    def _read(self, timeout: float) -> list[dict[str, Any]]:
        assert self.server.stdout is not None
        fd = self.server.stdout.fileno()
        if not select.select([fd], [], [], timeout)[0]:
            return []
        data = os.read(fd, 65536)
        if not data:
            raise KfopsError(f"the local trial server exited (code {self.server.wait()})",
                             "run again; if it repeats, run one trial by hand with `python -m trainer`")
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        return [json.loads(line) for line in lines]

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "started":
            self.pids[message["trial"]] = message["pid"]
        elif op == "exit":
            self.pids.pop(message["trial"], None)
            self.exits.append((message["trial"], message["code"]))
        self.seen.add(op)

    def _wait_for(self, op: str, timeout: float) -> None:
        # Every message of a read is dispatched: one read can hold the awaited answer and another trial's exit.
        self.seen.discard(op)
        deadline = time.monotonic() + timeout
        while op not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KfopsError(f"the local trial server did not answer {op!r} within {timeout:.0f} s",
                                 "check that the dataset is reachable and run again")
            for message in self._read(remaining):
                self._dispatch(message)

    def start(self, name: str, argv: list[str], log: Path) -> None:
        """Fork a trial; ``argv`` is the full trial command (``python -m trainer ...``)."""
        self._send({"op": "start", "trial": name, "argv": argv[3:], "log": str(log)})
        self._wait_for("started", timeout=60)

    def poll(self, timeout: float) -> list[tuple[str, int]]:
        """Trials that finished within ``timeout`` seconds, with their exit codes."""
        deadline = time.monotonic() + timeout
        while not self.exits:
            remaining = deadline - time.monotonic()
            for message in self._read(max(remaining, 0)):
                self._dispatch(message)
            if remaining <= 0:
                break
        done, self.exits = self.exits, []
        return done

    def kill(self, name: str) -> None:
        """Kill a forked trial (a session leader, so its whole group)."""
        pid = self.pids.get(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def close(self) -> None:
        """Kill running trials and stop the server."""
        for name in list(self.pids):
            self.kill(name)
        with contextlib.suppress(KfopsError):
            self._send({"op": "quit"})
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()


def _is_trainer(command: tuple[str, ...]) -> bool:
    return len(command) > 3 and command[0] in ("python", "python3") and command[1:3] == ("-m", "trainer")


class LocalExperiment:
    """One Experiment, executed locally.

    Args:
        experiment: The Experiment (as built by :func:`components.katib.experiment.build_experiment`, or any
            Katib Experiment using a StdOut collector and a trial command).
        workdir: Directory for trial logs.
        on_event: Called with ``("started" | "finished", trial)`` for progress display.
        fork: Fork trainer trials from a warm server (``False`` forces one interpreter per trial).
        timeout: Seconds the whole experiment may take (a safety net: Katib itself has no such limit).
    """

    def __init__(self, experiment: dict[str, Any], workdir: Path, on_event: Event | None = None,
                 fork: bool = True, timeout: float | None = None) -> None:
        self.experiment = experiment
        self.spec = parse_spec(experiment)
        self.workdir = workdir
        self.timeout = timeout
        self.on_event = on_event or (lambda _kind, _trial: None)
        self.fork = fork and _is_trainer(self.spec.command)

    def _argv(self, assignments: dict[str, str]) -> list[str]:
        values = {tp: assignments[ref] for tp, ref in self.spec.references.items()}
        return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], part) for part in self.spec.command]

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
        start_time = _now()
        deadline = time.monotonic() + self.timeout if self.timeout else math.inf
        outcome: tuple[str, str, str] | None = None
        with self._launcher() as launcher:
            try:
                while (outcome := self._outcome(trials, running, suggester)) is None:
                    if time.monotonic() > deadline:
                        raise KfopsError(f"experiment {spec.name} did not finish within "
                                               f"{self.timeout:.0f} s ({len(trials)} trials started)",
                                         "raise the tuning timeout or lower maxTrialCount")
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
            "completionTime": _now(),
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
                "observation": {"metrics": [_metric_record(n, best.observed.get(n, [])) for n in spec.metrics]}
                if best else {"metrics": []},
            },
        }
        experiment = {**{k: v for k, v in self.experiment.items() if k != "status"}, "status": status}
        return {"executor": "local", "experiment": experiment, "trials": [t.to_dict(spec.metrics) for t in trials],
                "differsFromKatib": DIFFERENCES.get(spec.algorithm, "")}


@in_step(Step.TUNE)
def run_local_experiment(experiment: dict[str, Any], workdir: Path, on_event: Event | None = None,
                         fork: bool = True, timeout: float | None = None) -> dict[str, Any]:
    """Execute ``experiment`` locally and return the result (see :class:`LocalExperiment`)."""
    return LocalExperiment(experiment, workdir, on_event=on_event, fork=fork, timeout=timeout).run()
