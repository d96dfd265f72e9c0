"""The churn recipe through the whole workflow, from a file with the real KDD Cup 2009 churn schema.

The real file (OpenML's KDDCup09_churn.arff, the recipe's default URL) needs internet; this test writes a 2,000-row
file with its schema and quirks (230 variables, 38 nominal ones with thousands of declared values, ``?`` almost
everywhere, 18 variables entirely missing, label ``CHURN {-1,1}``) and serves it over a local HTTP server. The real
reader, cleaner, tuning, training, registry and serving then run on it. Local target only, on a platform of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from components.summary import RunSummary
from infra.local.platform import LocalPlatform
from kfops.base.recipes import CHURN
from pipelines.run import RunOptions, run_local
from tests.conftest import http_directory, started_platform
from tests.datasets import KDD_COMPLETE_NUMERIC, write_kdd_churn_arff

pytestmark = pytest.mark.e2e

ROWS = 2000
TRIALS = 3
MODEL = "e2e-churn"


@pytest.fixture(scope="module")
def platform(target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    if target != "local":
        pytest.skip("serves the dataset from this machine: local target only")
    yield from started_platform(tmp_path_factory, seldon_workers=1)


@pytest.fixture(scope="module")
def churn_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("openml")
    write_kdd_churn_arff(root / "KDDCup09_churn.arff", rows=ROWS)
    with http_directory(root) as base:
        yield f"{base}/KDDCup09_churn.arff"


@pytest.fixture(scope="module")
def outcome(platform: LocalPlatform, churn_url: str, tmp_path_factory: pytest.TempPathFactory) -> RunSummary:
    return run_local(RunOptions(recipe="churn", dataset_url=churn_url, max_trials=TRIALS, parallel_trials=2,
                                max_failed_trials=1, model_name=MODEL, serving_protocol="both"),
                     env=platform.env(), run_dir=tmp_path_factory.mktemp("churn-run"))


def test_the_file_was_ingested_from_the_url_given(outcome: RunSummary, churn_url: str) -> None:
    log = Path(outcome.log).read_text()
    assert f"ingested {churn_url}:" in log
    assert "openml.org" not in log
    # Every variable with a missing value or a nominal one is dropped by the recipe, with its reason.
    assert f"cleaned: {ROWS} rows x {len(KDD_COMPLETE_NUMERIC) + 1} columns (227 columns and 0 rows dropped)" in log


def test_the_cleaned_table_is_the_complete_numeric_variables_and_the_mapped_label(outcome: RunSummary) -> None:
    from trainer.data import load_frame

    frame = load_frame(outcome.training.dataset_uri)
    assert list(frame.columns) == [*(f"Var{n}" for n in KDD_COMPLETE_NUMERIC), "CHURN"]
    assert len(frame) == ROWS
    assert set(frame["CHURN"]) == {0, 1}


def test_a_classifier_was_tuned_registered_and_promoted_on_accuracy(outcome: RunSummary) -> None:
    # No claim about the model's quality: with about 7% churners, a few trials and three usable variables (as in the
    # real file), a tuned model's accuracy is often below always answering "no churn" (0.917 against 0.933 seen).
    import mlflow

    assert outcome.tuning.trials == TRIALS
    assert outcome.tuning.succeeded == TRIALS
    assert outcome.tuning.objective_metric == "accuracy"
    assert set(outcome.tuning.best_params) == {"n_estimators", "max_depth", "learning_rate"}
    assert set(outcome.training.test_metrics) == {"accuracy", "f1", "log_loss"}
    assert outcome.promoted
    assert outcome.promotion["metric"] == "accuracy"
    info = mlflow.models.get_model_info(outcome.champion_uri)
    assert info.signature is not None
    assert info.signature.inputs.input_names() == [f"Var{n}" for n in KDD_COMPLETE_NUMERIC]


def test_both_protocols_answer_the_champions_own_classes(outcome: RunSummary) -> None:
    import mlflow.pyfunc
    import requests

    from kfops_serving.protocols import open_inference_v2, seldon_v1
    from trainer.data import load_frame, split

    parts = split(load_frame(outcome.training.dataset_uri), CHURN.target_column, CHURN.task)
    expected = mlflow.pyfunc.load_model(outcome.champion_uri).predict(parts.x_test).tolist()
    assert set(expected) <= {0, 1}
    rows = parts.x_test.to_numpy().tolist()
    headers = {"Content-Type": "application/json"}
    v1 = requests.post(outcome.serving.endpoints["v1"], data=seldon_v1(rows), headers=headers, timeout=60)
    v2 = requests.post(outcome.serving.endpoints["v2"], data=open_inference_v2(rows), headers=headers, timeout=60)
    assert v1.status_code == 200, v1.text
    assert v2.status_code == 200, v2.text
    assert v1.json()["data"]["ndarray"] == expected
    assert v2.json()["outputs"][0]["data"] == expected
