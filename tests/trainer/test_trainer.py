from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local.katib.trials import parse_metrics
from kfops.base.errors import KfopsError
from kfops.base.recipes import RECIPES, WINE_QUALITY
from tests.datasets import cleaned_wine, write_iris_csv
from trainer.data import load_frame, split
from trainer.models import build_model, parse_hyperparameters
from trainer.train import run_trial

pytestmark = pytest.mark.unit


def test_trial_reports_validation_metrics(tmp_path: Path) -> None:
    scores = run_trial(WINE_QUALITY, str(cleaned_wine(tmp_path)), {"alpha": "0.001", "l1_ratio": "0.5"})
    assert set(scores) == {"rmse", "mae", "r2"}
    assert 0.5 < scores["rmse"] < 0.8


def test_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    frame = load_frame(str(cleaned_wine(tmp_path)))
    first, second = split(frame, "quality", "regression"), split(frame, "quality", "regression")
    assert first.x_test.index.equals(second.x_test.index)
    indices = [set(part.index) for part in (first.x_train, first.x_valid, first.x_test)]
    assert sum(map(len, indices)) == len(frame)
    assert not (indices[0] & indices[1])
    assert not (indices[0] & indices[2])
    assert not (indices[1] & indices[2])


@pytest.mark.integration  # starts interpreters: seconds each
def test_cli_prints_katib_metric_lines(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "trainer", "--recipe", "winequality", "--data",
                             str(cleaned_wine(tmp_path)), "--alpha=0.01", "--l1_ratio=0.2"],
                            capture_output=True, text=True, check=True)
    assert set(parse_metrics(result.stdout, ("rmse", "mae", "r2"))) == {"rmse", "mae", "r2"}


def test_classification_recipe_trains(tmp_path: Path) -> None:
    from components.clean import clean_file

    dataset = tmp_path / "iris.parquet"
    clean_file(write_iris_csv(tmp_path / "iris.data"), RECIPES["iris"], dataset)
    scores = run_trial(RECIPES["iris"], str(dataset), {"n_estimators": "20", "max_depth": "3"})
    assert scores["accuracy"] > 0.8
    assert set(scores) == {"accuracy", "f1", "log_loss"}


@pytest.mark.parametrize(("case", "family", "raw", "expected"), [
    ("unknown name", "elasticnet", {"gamma": "1"}, "elasticnet has no hyperparameter 'gamma'"),
    ("not a number", "elasticnet", {"alpha": "big"}, "alpha='big' is not a valid float"),
    ("fractional int", "random_forest", {"n_estimators": "2.5"}, "n_estimators='2.5' is not a valid int"),
])
def test_bad_hyperparameters(case: str, family: str, raw: dict[str, str], expected: str) -> None:
    with pytest.raises(KfopsError, match=expected):
        parse_hyperparameters(family, raw)


def test_integer_hyperparameter_from_a_float_string() -> None:
    assert parse_hyperparameters("gradient_boosting", {"max_depth": "4.0"}) == {"max_depth": 4}


def test_out_of_range_value_is_reported_by_the_trainer(tmp_path: Path) -> None:
    with pytest.raises(KfopsError, match=r"training failed: .*alpha"):
        run_trial(WINE_QUALITY, str(cleaned_wine(tmp_path)), {"alpha": "-1"})


@pytest.mark.integration  # starts interpreters: seconds each
def test_cli_usage_errors(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "trainer", "--recipe", "winequality", "--data", "x", "alpha"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "hyperparameters are passed as --name=value" in result.stderr


@pytest.mark.parametrize(("family", "params"), [
    ("elasticnet", {"alpha": 0.01, "l1_ratio": 0.2}),
    ("gradient_boosting", {"n_estimators": 5, "max_depth": 2}),
    ("random_forest", {"n_estimators": 5, "max_depth": 3}),
])
def test_every_model_family_fits_with_its_hyperparameters(family: str, params: dict, tmp_path: Path) -> None:
    import numpy as np

    frame = load_frame(str(cleaned_wine(tmp_path)))
    x, y = frame.drop(columns=["quality"]), frame["quality"]
    if family != "elasticnet":
        y = (y >= 6).astype(int)  # the classifiers get a two-class target
    model = build_model(family, params).fit(x, y)
    set_on_the_estimator = {k: v for k, v in model.get_params().items() if k.split("__")[-1] in params}
    assert {k.split("__")[-1]: v for k, v in set_on_the_estimator.items()} == params
    predictions = model.predict(x.head(20))
    assert predictions.shape == (20,)
    assert np.isfinite(predictions).all()


@pytest.mark.integration  # starts interpreters: seconds each
def test_a_trial_whose_metrics_are_not_numbers_fails_instead_of_reporting_them(tmp_path: Path) -> None:
    import pandas as pd

    from kfops.base.upstream import katib

    # Katib's collector reads "rmse=inf" or "rmse=nan" as an empty value: the trial would "succeed" with none.
    assert [match[1] for match in re.findall(katib.STDOUT_FILTER.value, "rmse=nan")] == [""]
    frame = pd.read_parquet(cleaned_wine(tmp_path))
    frame["quality"] = frame["quality"] * 1e300  # squared errors overflow: rmse is inf
    data = tmp_path / "overflow.parquet"
    frame.to_parquet(data)
    result = subprocess.run([sys.executable, "-m", "trainer", "--recipe", "winequality", "--data", str(data),
                             "--alpha=0.01", "--l1_ratio=0.2"], capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stdout
    assert "not finite" in result.stderr
    assert "rmse=inf" in result.stderr
    assert parse_metrics(result.stdout, ("rmse", "mae", "r2")) == {}
