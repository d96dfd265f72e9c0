from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from kfops_serving.compat import ModelRecord, RuntimeEnvironment, problems

pytestmark = pytest.mark.unit

PINS = ["mlflow-skinny==3.17.2", "scikit-learn==1.9.1", "skops==0.16.0", "numpy==1.26.4"]


def saved_model(tmp_path: Path, serialization: str = "skops", name: str = "model") -> Path:
    import mlflow
    import numpy as np
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = np.random.default_rng(0).random((20, 2))
    model = LinearRegression().fit(x, x.sum(axis=1))
    path = tmp_path / name
    mlflow.sklearn.save_model(model, path, serialization_format=serialization,
                              signature=infer_signature(x, model.predict(x)),
                              pip_requirements=["scikit-learn"])
    return path


def edited(model: Path, tmp_path: Path, change: dict) -> Path:
    """A copy of a real saved model whose MLmodel claims other versions (as a model saved elsewhere would)."""
    copy = tmp_path / "edited"
    shutil.copytree(model, copy)
    document = yaml.safe_load((copy / "MLmodel").read_text())
    for path, value in change.items():
        target = document
        *parents, key = path.split(".")
        for parent in parents:
            target = target[parent]
        target[key] = value
    (copy / "MLmodel").write_text(yaml.safe_dump(document))
    return copy


@pytest.mark.integration  # starts interpreters: seconds each
def test_a_model_trained_here_fits_both_serving_images(tmp_path: Path) -> None:
    record = ModelRecord.read(saved_model(tmp_path))
    assert problems(record, RuntimeEnvironment.from_pins("v1 image", "3.12", PINS)) == []
    assert problems(record, RuntimeEnvironment.current("this environment")) == []


@pytest.mark.parametrize(("case", "change", "python", "expected"), [
    ("saved by a newer MLflow", {"mlflow_version": "3.99.0"}, "3.12",
     r"saved with MLflow 3.99.0, runtime has MLflow 3.17.2"),
    ("saved by MLflow 2 for an MLflow 3 runtime is fine", {"mlflow_version": "2.22.0"}, "3.12", None),
    ("other scikit-learn minor", {"flavors.sklearn.sklearn_version": "1.5.2"}, "3.12",
     r"saved with scikit-learn 1.5.2, runtime has 1.9.1"),
    ("no pyfunc flavor", {"flavors": {"sklearn": {"sklearn_version": "1.9.1"}}}, "3.12",
     "no python_function flavor"),
])
def test_mismatches_are_named(tmp_path: Path, case: str, change: dict, python: str, expected: str | None) -> None:
    record = ModelRecord.read(edited(saved_model(tmp_path), tmp_path, change))
    found = problems(record, RuntimeEnvironment.from_pins("runtime", python, PINS))
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1, found
        assert __import__("re").search(expected, found[0]), found


def test_a_pickle_does_not_cross_python_versions(tmp_path: Path) -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    other = f"{sys.version_info.major}.{sys.version_info.minor + 1}"
    record = ModelRecord.read(saved_model(tmp_path, serialization="cloudpickle"))
    found = problems(record, RuntimeEnvironment.from_pins("other python", other, PINS))
    assert any(f"cloudpickle from Python {here}" in p and f"runs Python {other}" in p for p in found), found
    assert problems(record, RuntimeEnvironment.from_pins("same python", here, PINS)) == []


def test_missing_libraries(tmp_path: Path) -> None:
    record = ModelRecord.read(saved_model(tmp_path))
    found = problems(record, RuntimeEnvironment.from_pins("bare", "3.11", ["numpy==2.0.0"]))
    assert any("has no MLflow" in p for p in found)
    assert any("needs scikit-learn" in p for p in found)
