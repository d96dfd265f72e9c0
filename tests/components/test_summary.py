from __future__ import annotations

import pytest

from components.summary import RunSummary, ServingOutcome, TrainingOutcome, TuningOutcome

pytestmark = pytest.mark.unit

TUNING = TuningOutcome(experiment="kfops-winequality-abc", executor="local", outcome="Succeeded",
                       reason="ExperimentMaxTrialsReached", trials=8, succeeded=7, failed=1, killed=0,
                       best_trial="t-003", best_params={"alpha": "0.001"}, objective_metric="rmse", objective=0.66)
TRAINING = TrainingOutcome(model="m", version="3", run_id="r", source="s3://mlflow/x", dataset_uri="s3://d/k",
                           params={"alpha": 0.001}, test_metrics={"rmse": 0.64})
SERVING = ServingOutcome(model="m", version="3", target="local", endpoints={"v2": "http://127.0.0.1:8080/x"})


def test_counts_handed_back_by_kfp_as_floats_are_whole_numbers_again() -> None:
    # KFP's STRUCT parameters are protobuf Struct values: every number comes back as a float.
    as_kfp_returns = {**TUNING.as_dict(), "trials": 8.0, "succeeded": 7.0, "failed": 1.0, "killed": 0.0}
    restored = TuningOutcome.from_dict(as_kfp_returns)
    assert restored == TUNING
    assert isinstance(restored.trials, int)


def test_a_summary_is_built_from_the_pipeline_outputs() -> None:
    decision = {"promoted": True, "champion_version": "3", "champion_uri": "models:/m@champion", "reason": "x"}
    summary = RunSummary.from_outputs({"tuning": TUNING.as_dict(), "training": TRAINING.as_dict(),
                                       "decision": decision, "serving": SERVING.as_dict()},
                                      target="local", location="/runs/1", seconds=1.5)
    assert (summary.tuning, summary.training, summary.serving) == (TUNING, TRAINING, SERVING)
    assert (summary.promoted, summary.champion_version, summary.champion_uri) == (True, "3", "models:/m@champion")
    assert summary.training.uri == "models:/m/3"


def test_a_summary_read_back_from_its_json_form_is_the_same_summary() -> None:
    import json

    decision = {"promoted": False, "champion_version": "2", "champion_uri": "models:/m@champion", "reason": "worse"}
    summary = RunSummary.from_outputs({"tuning": TUNING.as_dict(), "training": TRAINING.as_dict(),
                                       "decision": decision, "serving": SERVING.as_dict()},
                                      target="local", location="/runs/1", seconds=1.5, log="/runs/1/pipeline.log",
                                      reports={"tuning": "/runs/1/reports/tuning.html"})
    assert RunSummary.from_dict(json.loads(json.dumps(summary.as_dict()))) == summary
