"""Run the workflow on this machine with KFP's SubprocessRunner, against the local platform.

Every step runs in a subprocess of this environment (no venv per step: the project is already installed), with the
platform's S3 and MLflow settings in its environment. The runner's output is written to a log file and parsed as it
streams, to report progress (step started/finished, each tuning trial) and, on failure, the step's one-line error.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfops.base.errors import KfopsError

STEP = "pipeline run"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '([^']+)'")
_TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
_TRIAL = re.compile(r"^\s*kfops-trial: (\{.*\})\s*$")
_STEP_ERROR = re.compile(r"KfopsError: \[([^\]]+)\] (.*?)\. Fix: (.*)$")

#: Steps of the workflow in order, for progress display.
STEPS = ("ingest", "clean", "store", "tune", "best-params", "train", "register-and-promote", "deploy")


@dataclass(frozen=True)
class Progress:
    """One progress event: ``kind`` is ``step-started``, ``step-finished`` or ``trial``."""

    kind: str
    step: str = ""
    status: str = ""
    trial: dict[str, Any] = field(default_factory=dict)


@dataclass
class LocalRun:
    """What a local run produced."""

    run_dir: Path
    log: Path
    seconds: float
    tuning: dict[str, Any]
    training: dict[str, Any]
    decision: dict[str, Any]
    serving: dict[str, Any]


class _LogStream(io.TextIOBase):
    """A stdout replacement: appends everything to the run log and reports recognised lines."""

    def __init__(self, log: io.TextIOBase, on_progress: Callable[[Progress], None]) -> None:
        self.log = log
        self.on_progress = on_progress
        self.partial = ""
        self.step_errors: list[tuple[str, str, str]] = []

    def write(self, text: str) -> int:
        self.log.write(text)
        self.partial += text
        *lines, self.partial = self.partial.split("\n")
        for line in lines:
            self._line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def _line(self, line: str) -> None:
        if match := _TASK_START.search(line):
            self.on_progress(Progress("step-started", step=match.group(1)))
        elif match := _TASK_END.search(line):
            self.on_progress(Progress("step-finished", step=match.group(1), status=match.group(2)))
        elif match := _TRIAL.search(line):
            with contextlib.suppress(ValueError):
                self.on_progress(Progress("trial", trial=json.loads(match.group(1))))
        elif match := _STEP_ERROR.search(line):
            self.step_errors.append((match.group(1), match.group(2), match.group(3)))


def run_locally(env: dict[str, str], run_dir: Path, *, recipe: str, max_trials: int, parallel_trials: int,
                max_failed_trials: int = 3, algorithm: str = "", dataset_url: str = "", offline: bool = True,
                model_name: str = "", mlflow_experiment: str = "kfops", serving_protocol: str = "both",
                on_progress: Callable[[Progress], None] = lambda _event: None) -> LocalRun:
    """Run the whole workflow locally.

    Args:
        env: The platform's environment (``LocalPlatform.env()``); exported to every step.
        run_dir: Directory for this run's artifacts and log.
        recipe: Recipe name.
        max_trials: Katib maxTrialCount.
        parallel_trials: Katib parallelTrialCount.
        max_failed_trials: Katib maxFailedTrialCount.
        algorithm: Katib algorithm; empty for the recipe's.
        dataset_url: Dataset URL; empty for the recipe's (its bundled copy when ``offline``).
        offline: Prefer the recipe's bundled dataset.
        model_name: Registered model name; empty for kfops-<recipe>.
        mlflow_experiment: MLflow experiment name.
        serving_protocol: Protocols to serve the champion on locally (v2, v1 or both).
        on_progress: Receives step and trial events.

    Raises:
        KfopsError: A step failed (its own message when it raised one), naming the run log.
    """
    import os

    from kfp import local

    from components.deploy import parse_protocols
    from components.katib.experiment import build_experiment
    from kfops.base.recipes import get_recipe
    from pipelines.workflow import kfops_pipeline

    # Fail before ingesting anything if the settings cannot work (the steps would refuse them later).
    parse_protocols(serving_protocol)
    build_experiment(get_recipe(recipe, STEP), name="preflight", namespace="local", dataset_uri="s3://bucket/key",
                     max_trials=max_trials, parallel_trials=parallel_trials, max_failed_trials=max_failed_trials,
                     algorithm=algorithm or None)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "pipeline.log"
    os.environ.update(env)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "artifacts"),
               raise_on_error=True)
    began = time.monotonic()
    with log_path.open("w") as log:
        stream = _LogStream(log, on_progress)
        try:
            with contextlib.redirect_stdout(stream), warnings.catch_warnings():
                # The project image's name does not contain "python"; KFP warns about that for every step.
                warnings.filterwarnings("ignore", message=".*non-Python base image.*")
                # Resource requests are for the cluster; the local runner says so once per step.
                warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
                task = kfops_pipeline(recipe=recipe, dataset_url=dataset_url, offline=offline,
                                      max_trials=max_trials, parallel_trials=parallel_trials,
                                      max_failed_trials=max_failed_trials, algorithm=algorithm,
                                      tuning_executor="local", model_name=model_name,
                                      mlflow_experiment=mlflow_experiment, serving_protocol=serving_protocol,
                                      deploy_target="local")
        except RuntimeError as error:
            stream.flush()
            if stream.step_errors:
                step, cause, fix = stream.step_errors[-1]
                raise KfopsError(step, cause, f"{fix} (full log: {log_path})") from error
            raise KfopsError(STEP, f"the workflow failed: {error}", f"read {log_path}") from error
    outputs = task.outputs
    return LocalRun(run_dir=run_dir, log=log_path, seconds=time.monotonic() - began,
                    tuning=json.loads(outputs["tuning"]), training=json.loads(outputs["training"]),
                    decision=json.loads(outputs["decision"]), serving=json.loads(outputs["serving"]))
