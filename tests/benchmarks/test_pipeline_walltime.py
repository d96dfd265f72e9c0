"""How the wall-time benchmark (benchmarks/pipeline_walltime.py) runs `make demo` and sees its first prediction."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.pipeline_walltime import DEPLOY_DONE, demo_env
from kfops.base.errors import Step

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("line", "done"), [
    ("  deploy                 done    7.0 s\n", True),
    ("  deploy                 failed   2.0 s\n", False),
    ("  register-and-promote   done    6.6 s\n", False),
    ("INFO deploy done in 3 s, see the log\n", False),
])
def test_the_deploy_steps_done_line_marks_the_first_prediction(line: str, done: bool) -> None:
    assert bool(DEPLOY_DONE.match(line)) is done


def test_the_cli_prints_the_line_the_benchmark_waits_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from kfops.base.events import Event
    from kfops.cli import pipeline

    printed = io.StringIO()  # not a terminal, as when the benchmark reads the command's output through a pipe
    monkeypatch.setattr(pipeline, "console", Console(file=printed, width=120))

    def run(on_event):  # type: ignore[no-untyped-def]
        on_event(Event(kind="step-started", step=Step.DEPLOY))
        on_event(Event(kind="step-finished", step=Step.DEPLOY))

    pipeline._with_progress(1, run)
    assert [line for line in printed.getvalue().splitlines() if DEPLOY_DONE.match(line)]


def test_a_demo_runs_on_its_own_state_dir_cache_and_ports(tmp_path: Path) -> None:
    env = demo_env(tmp_path / "state", tmp_path / "cache", {"s3": 1, "mlflow": 2, "mlserver": 3, "seldon": 4})
    assert env["KFOPS_STATE_DIR"] == str(tmp_path / "state")
    assert env["KFOPS_CACHE_DIR"] == str(tmp_path / "cache")
    assert (env["KFOPS_S3_PORT"], env["KFOPS_MLFLOW_PORT"], env["KFOPS_MLSERVER_PORT"], env["KFOPS_SELDON_PORT"]) == (
        "1", "2", "3", "4")
    assert env["PYTHONUNBUFFERED"] == "1"
