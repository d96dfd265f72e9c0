"""One workflow step at a time, as the KFP local runner runs it, from the outputs of a run that already happened.

A fault test needs a step to start, stop at a failpoint, and go on (or die) once the fault is in place: running the
whole workflow up to the step every time would cost a run per fault. Each step runs in a process of its own (its
own session, environment, log and events file, as under KFP's SubprocessRunner), forked from a server that
imported the steps' libraries once (``multiprocessing``'s forkserver), so a step starts in milliseconds, with no
connection or thread of another step's. Its failure goes through the runner's own explanation
(:func:`infra.local.runner.failure`), so the message is the one ``kfops pipeline run`` prints.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfops.base.errors import KfopsError
from kfops.base.events import EVENTS_ENV, Event, EventReader
from kfops.base.failpoints import FAILPOINTS_ENV

#: Modules the fork server imports once: what the steps import (pandas, scikit-learn, MLflow, boto3, KFP's DSL).
PRELOAD = ["pipelines.tasks", "components.promote", "components.store", "components.tune", "infra.local.target",
           "infra.local.katib.executor", "trainer.train", "mlflow", "mlflow.sklearn", "boto3", "sklearn.linear_model",
           "pandas", "pyarrow.parquet"]
#: Forking is safe only while no BLAS/OpenMP thread pool exists (as for the local Katib executor's trials).
THREAD_CAPS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class Artifact:
    """A KFP artifact as a step sees it: a path and metadata."""

    path: str
    metadata: dict[str, Any] = field(default_factory=dict)


class Metrics:
    """KFP ``Metrics`` as a step sees them."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def log_metric(self, metric: str, value: float) -> None:
        """Record one scalar."""
        self.values[metric] = value


def _child(step: str, arguments: dict[str, Any], env: dict[str, str], workdir: str) -> None:
    """In the forked process: become a session leader with the step's environment and log, run the step, exit."""
    os.setsid()
    log = os.open(Path(workdir) / "step.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.clear()
    os.environ.update(env)
    code = 1
    try:
        import pipelines.tasks as tasks

        built = {name: Artifact(**value["artifact"]) if isinstance(value, dict) and "artifact" in value
                 else Metrics() if value == "metrics" else value for name, value in arguments.items()}
        result = getattr(tasks, step.replace("-", "_"))(**built)
        Path(workdir, "result.json").write_text(json.dumps(result, default=str))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@dataclass
class StepRun:
    """A step's process, the events it wrote and how it ended."""

    step: str
    process: Any
    events: Path
    workdir: Path
    env: Mapping[str, str]
    seen: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reader = EventReader(self.events)

    def wait_for_failpoint(self, name: str, patience: float = 120) -> int:
        """Wait until the step stops at failpoint ``name``; its pid. ``patience`` only bounds a run that hangs."""
        deadline = time.monotonic() + patience
        while True:
            self.seen += self._reader.read()
            stopped = [event for event in self.seen if event.kind == "failpoint" and event.data["name"] == name]
            if stopped:
                return int(stopped[0].data["pid"])
            assert self.process.is_alive(), f"{self.step} ended (code {self.process.exitcode}) before {name}: " \
                                            f"{self.log()[-2000:]}"
            assert time.monotonic() < deadline, f"{self.step} never reached {name}"
            time.sleep(0.02)

    def resume(self, pid: int) -> None:
        """Let a process stopped at a failpoint go on."""
        os.kill(pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the step's whole session (the step and what it started in it; services have their own)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.join(60)

    def outcome(self, patience: float = 300) -> KfopsError | None:
        """Wait for the step to end; ``None`` if it succeeded, else the error a run would end with."""
        from infra.local.runner import failure

        self.process.join(patience)
        assert self.process.exitcode is not None, f"{self.step} still runs after {patience} s"
        self.seen += self._reader.read()
        if self.process.exitcode == 0:
            return None
        failed = next((event for event in reversed(self.seen) if event.kind == "step-failed"), None)
        return failure(failed, f"task {self.step!r} exited with code {self.process.exitcode}", env=self.env,
                       log_path=self.workdir / "step.log")

    def log(self) -> str:
        """The step's output."""
        path = self.workdir / "step.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def result(self) -> Any:
        """What a step that succeeded returned."""
        return json.loads((self.workdir / "result.json").read_text())


class StepRunner:
    """Starts steps from a fork server (see the module docstring).

    Args:
        workdir: Where each step run gets a directory (events, log, result, artifacts).
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.runs = 0
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(PRELOAD)
        saved = {name: os.environ.get(name) for name in THREAD_CAPS}
        os.environ.update(THREAD_CAPS)  # the server inherits the environment it starts with
        try:
            from multiprocessing import forkserver

            forkserver.ensure_running()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def artifact(self, name: str) -> dict[str, Any]:
        """A new output artifact for the next step run (passed to :meth:`start` as an argument)."""
        return {"artifact": {"path": str(self.workdir / f"artifact-{self.runs}-{name}"), "metadata": {}}}

    def start(self, step: str, arguments: dict[str, Any], env: Mapping[str, str],
              failpoints: tuple[str, ...] = ()) -> StepRun:
        """Start ``step`` (a :mod:`pipelines.tasks` function, by its KFP task name) with the platform's ``env``.

        Arguments that are artifacts are given as ``{"artifact": {"path": ..., "metadata": {...}}}``, KFP
        ``Metrics`` as ``"metrics"``.
        """
        self.runs += 1
        workdir = self.workdir / f"{self.runs:02d}-{step}"
        workdir.mkdir(mode=0o700, parents=True)
        events = workdir / "events.jsonl"
        step_env = {**os.environ, **env, EVENTS_ENV: str(events), FAILPOINTS_ENV: ",".join(failpoints), **THREAD_CAPS}
        process = self.context.Process(target=_child, args=(step, arguments, step_env, str(workdir)),
                                       name=f"step-{step}")
        process.start()
        return StepRun(step, process, events, workdir, step_env)

    def run(self, step: str, arguments: dict[str, Any], env: Mapping[str, str],
            at_start: Callable[[], None] = lambda: None) -> tuple[StepRun, KfopsError | None]:
        """Run ``step``, calling ``at_start`` while it is stopped right after it started; how it ended."""
        run = self.start(step, arguments, env, failpoints=(f"{step}:started",))
        pid = run.wait_for_failpoint(f"{step}:started")
        try:
            at_start()
        finally:
            run.resume(pid)
        return run, run.outcome()
