"""Run the workflow on this machine with KFP's SubprocessRunner, against the local platform.

Every step runs in a subprocess of this environment (no venv per step: the project is already installed). The
steps get the platform's S3 and MLflow settings and an events file through their environment, for the duration of
the run only. Progress and a failing step's cause come from that events file (:mod:`kfops.base.events`); the
runner's own output goes to the run's log file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from infra.local import step_client
from kfops.base.disk import disk_space, is_no_space, require_space, size
from kfops.base.errors import KfopsError
from kfops.base.events import EVENTS_ENV, Event, EventReader
from kfops.base.files import private_files
from kfops.base.tracking import write_refusal

#: How often the events file is read while the workflow runs.
_POLL_SECONDS = 0.1


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` (which the step subprocesses inherit) and restore what was there after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Follower(threading.Thread):
    """Hands every event of the file to ``on_event`` while the run goes on, and remembers the last failure."""

    def __init__(self, path: Path, on_event: Callable[[Event], None]) -> None:
        super().__init__(name="kfops-events", daemon=True)
        self.reader = EventReader(path)
        self.on_event = on_event
        self.failure: Event | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(_POLL_SECONDS):
            self.drain()
        self.drain()

    def drain(self) -> None:
        for event in self.reader.read():
            if event.kind == "step-failed":
                self.failure = event
            self.on_event(event)

    def stop(self) -> None:
        self.done.set()
        self.join()


@contextlib.contextmanager
def warm_steps(run_dir: Path) -> Iterator[dict[str, str]]:
    """A step server (:mod:`infra.local.step_server`) for the run, and KFP's local runner pointed at it.

    KFP runs each step as ``<python> -m kfp.dsl.executor_main ...`` inside a shell command; that interpreter is
    replaced by the thin client (:mod:`infra.local.step_client`), which has the step forked from the warm server.
    Until the server has finished its imports, the client starts the interpreter itself. Yields the variables the
    steps need to find the server.
    """
    from kfp.local import subprocess_task_handler

    socket_path = run_dir / "steps.sock"
    server = subprocess.Popen([sys.executable, "-m", "infra.local.step_server", str(socket_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
    original = subprocess_task_handler.run_local_subprocess
    cold = f"{sys.executable} -m kfp.dsl.executor_main"
    warm = f"{sys.executable} -I -S {Path(step_client.__file__)} -m kfp.dsl.executor_main"

    def through_the_server(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        return original([part.replace(cold, warm) for part in full_command], env_vars)

    subprocess_task_handler.run_local_subprocess = through_the_server
    try:
        yield {step_client.SERVER_ENV: str(socket_path)}
    finally:
        subprocess_task_handler.run_local_subprocess = original
        assert server.stdin is not None
        server.stdin.close()  # the server finishes the steps it runs, then exits
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, 9)
            server.wait()
        socket_path.unlink(missing_ok=True)


def run_pipeline(pipeline: Callable[..., Any], arguments: dict[str, Any], *, env: Mapping[str, str], run_dir: Path,
                 on_event: Callable[[Event], None] = lambda _event: None) -> tuple[dict[str, Any], Path]:
    """Run ``pipeline`` with the KFP local runner.

    Args:
        pipeline: The ``@dsl.pipeline`` function.
        arguments: Its parameters.
        env: The platform's environment (S3, MLflow, the state dir) for the steps.
        run_dir: Directory for this run's artifacts, log and events.
        on_event: Receives every step and trial event as it happens.

    Returns:
        The pipeline's outputs by name, and the run's log file.

    Raises:
        KfopsError: A step failed (with its own cause and fix when it gave one), naming the run log.
    """
    from kfp import local

    from infra.local.platform import RUN_NEEDS_BYTES

    require_space(run_dir, RUN_NEEDS_BYTES, "a run")
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_path = run_dir / "pipeline.log"
    events = run_dir / "events.jsonl"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "artifacts"),
               raise_on_error=True)
    follower = _Follower(events, on_event)
    follower.start()
    try:
        # Private files: steps write datasets, models and logs next to the platform's credentials.
        with (private_files(), warm_steps(run_dir) as server, environment({**env, **server, EVENTS_ENV: str(events)}),
              log_path.open("w") as log,
              contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), warnings.catch_warnings()):
            # The project image's name does not contain "python"; KFP warns about that for every step.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            # Resource requests are for the cluster; the local runner says so once per step.
            warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
            task = pipeline(**arguments)
    except RuntimeError as error:
        follower.stop()
        raise failure(follower.failure, str(error), env=env, log_path=log_path) from error
    follower.stop()
    return dict(task.outputs), log_path


def failure(failed: Event | None, error: str, *, env: Mapping[str, str], log_path: Path) -> KfopsError:
    """The one error a failed run ends with.

    A step sees only its own symptom (a trial that could not read its data, a refused connection); the runner can
    see why: the platform was stopped or crashed during the run, or the state dir's disk is full. Then that is what
    the error says first, with the step's own error after it.

    Args:
        failed: The step's own ``step-failed`` event (its cause and fix), if it reported one.
        error: What the runner saw otherwise (a step that died without reporting).
        env: The run's platform environment.
        log_path: The run's log, named in the fix.
    """
    step = failed.step if failed is not None else None
    cause, fix = ((failed.data["cause"], failed.data["fix"]) if failed is not None else
                  (f"the workflow failed: {error}", "read the log"))
    explained = _platform_trouble(env, cause)
    if explained is not None:
        cause, fix = explained
    return KfopsError(cause, f"{fix} (full log: {log_path})", step=step)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _platform_trouble(env: Mapping[str, str], cause: str) -> tuple[str, str] | None:
    """What went wrong with the local platform under the run, if anything: ``(cause, fix)``."""
    from infra.local.platform import (
        PLATFORM_SERVICES,
        RUN_NEEDS_BYTES,
        TITLES,
        UP_NEEDS_BYTES,
        LocalPlatform,
        remembered,
    )
    from infra.local.processes import is_running
    from infra.local.services import mlflow_database
    from infra.local.settings import LocalSettings

    state_dir = env.get("KFOPS_STATE_DIR")
    if not state_dir:
        return None
    platform = LocalPlatform(remembered(LocalSettings(state_dir=Path(state_dir))))
    own = f"; the step's own error: {_clip(cause)}"
    try:
        records = platform.records()
    except KfopsError as error:
        return f"the local platform's process records are damaged ({error.cause}){own}", error.fix
    gone = [name for name in PLATFORM_SERVICES if name not in records or not is_running(records[name])]
    if gone and not any(name in records for name in PLATFORM_SERVICES):
        return (f"the local platform was stopped during the run (`kfops local down`): SeaweedFS and MLflow are not "
                f"running{own}", "start it with `kfops local up` and run the workflow again")
    if gone:
        what = " and ".join(TITLES[name] for name in gone)
        return (f"the local platform's {what} stopped during the run (crashed or killed){own}",
                f"read `kfops local logs {gone[0]}`, start it again with `kfops local up` and run the workflow again")
    space = disk_space(platform.state_dir)
    # SeaweedFS turns its volumes read-only below 1% free: for the object store, that is full.
    if is_no_space(cause) or space.free < max(UP_NEEDS_BYTES, space.total // 100):
        return (f"the disk of the state dir is full: {space.describe()}; a run needs {size(RUN_NEEDS_BYTES)} "
                f"free{own}", f"free at least {size(max(RUN_NEEDS_BYTES - space.free, 1))} on {space.mount} and "
                "run the workflow again (`kfops local up` first if a service stopped)")
    refusal = write_refusal(records["mlflow"].url)
    if refusal:
        database = mlflow_database(platform.state_dir)
        return (f"MLflow cannot write its database {database}: {refusal}{own}",
                f"make {database} and its directory writable (`chmod u+w`; on a read-only mount, remount it "
                "read-write), then `kfops local up` (it restarts MLflow) and run the workflow again")
    return None


#: Pages a local run leaves next to its log: name -> (pipeline task, its HTML output).
REPORTS = {"tuning": ("tune", "report"), "promotion": ("register-and-promote", "comparison")}


def collect_reports(run_dir: Path) -> dict[str, str]:
    """Copy the run's HTML reports out of KFP's artifact tree to ``<run_dir>/reports/<name>.html``; their paths.

    KFP's local runner stores an ``HTML`` output as a file named after the output, with no extension, deep in
    ``artifacts/<pipeline run>/<task>/``; a browser wants ``.html``.
    """
    found = {}
    for name, (task, output) in REPORTS.items():
        candidates = sorted(run_dir.glob(f"artifacts/*/{task}/{output}"), key=lambda path: path.stat().st_mtime)
        if candidates:
            target = run_dir / "reports" / f"{name}.html"
            with private_files():  # a run directory lives in the state dir, next to the credentials
                target.parent.mkdir(exist_ok=True)
                shutil.copyfile(candidates[-1], target)
            found[name] = str(target)
    return found


def new_run_dir(runs: Path, recipe: str) -> Path:
    """Create and return a run's own directory under ``runs``, named after when it started and the recipe.

    A run that starts in the same second as another gets ``-2``, ``-3``...: two runs at once never share a log or
    artifacts.
    """
    runs.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{recipe}"
    for attempt in range(1, 1000):
        candidate = runs / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            candidate.mkdir(mode=0o700)  # atomic: exactly one run creates it
        except FileExistsError:
            continue
        return candidate
    raise KfopsError(f"cannot create a run directory under {runs}: 999 runs started in one second",
                     "start fewer runs at once")
