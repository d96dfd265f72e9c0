"""The run summary as ``kfops pipeline run`` prints it: every URL and path whole, on one line, to be copied."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from components.summary import RunSummary, ServingOutcome, TrainingOutcome, TuningOutcome
from kfops.cli.pipeline import print_summary

pytestmark = pytest.mark.unit

#: A state dir as deep as real ones get (a home directory, a project checkout, a worktree...).
STATE_DIR = Path("/home/someone/projects/machine-learning/kubeflow-mlops-platform/worktrees/"
                 "a-feature-branch-with-a-long-name/.kfops")


def _summary(run: Path) -> RunSummary:
    tuning = TuningOutcome(experiment="kfops-iris-abc", executor="local", outcome="Succeeded",
                           reason="ExperimentMaxTrialsReached", trials=3, succeeded=3, failed=0, killed=0,
                           best_trial="t-1", best_params={"n_estimators": "34", "max_depth": "4"},
                           objective_metric="accuracy", objective=0.9565)
    training = TrainingOutcome(model="kfops-iris-with-a-long-registered-model-name", version="12", run_id="r",
                               source="s3://mlflow/1/abc/artifacts/model", dataset_uri="s3://datasets/iris/x.parquet",
                               params={}, test_metrics={"accuracy": 1.0, "f1": 1.0, "log_loss": 0.027})
    name = training.model
    serving = ServingOutcome(model=name, version="12", target="local", endpoints={
        "v2": f"http://127.0.0.1:35981/v2/models/{name}/infer", "v1": "http://127.0.0.1:48271/api/v1.0/predictions",
        "v2-grpc": "grpc://127.0.0.1:34469"})
    decision = {"promoted": True, "champion_version": "12", "champion_uri": f"models:/{name}@champion",
                "reason": "no champion yet"}
    return RunSummary(target="local", location=str(run), seconds=32.0, tuning=tuning, training=training,
                      promotion=decision, serving=serving, log=str(run / "pipeline.log"),
                      reports={"tuning": str(run / "reports" / "tuning.html"),
                               "promotion": str(run / "reports" / "promotion.html")})


@pytest.mark.parametrize("width", [60, 80, 120])
def test_every_url_and_path_of_the_summary_is_printed_whole_on_one_line(width: int) -> None:
    run = STATE_DIR / "runs" / "20260611-101500-iris"
    summary = _summary(run)
    out = io.StringIO()
    print_summary(summary, mlflow_url="http://127.0.0.1:33841", out=Console(file=out, width=width))
    lines = out.getvalue().splitlines()
    wanted = [*summary.serving.endpoints.values(), summary.location, summary.log, *summary.reports.values(),
              f"http://127.0.0.1:33841/#/models/{summary.training.model}", summary.champion_uri]
    for url in wanted:
        whole = re.compile(rf"(^|\s){re.escape(url)}(\s|$)")
        assert any(whole.search(line) for line in lines), f"{url} is not whole on a line:\n" + "\n".join(lines)
    # The facts are still there.
    text = out.getvalue()
    assert "3/3 trials succeeded" in text
    assert "promoted to champion" in text
