from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kfops_serving.scoring import load

pytestmark = pytest.mark.unit


def saved(tmp_path: Path, estimator: object, trusted: tuple[str, ...] = ()) -> Path:
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.random((40, 3)), columns=["a", "b", "c"])
    estimator.fit(frame, frame.sum(axis=1) + rng.random(40))  # type: ignore[attr-defined]
    path = tmp_path / "model"
    mlflow.sklearn.save_model(estimator, path, serialization_format="skops",
                              signature=infer_signature(frame, estimator.predict(frame)),  # type: ignore[attr-defined]
                              pip_requirements=["scikit-learn"],
                              **({"skops_trusted_types": list(trusted)} if trusted else {}))
    return path


def test_a_linear_model_scores_the_validated_array_without_building_a_dataframe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import ElasticNet
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scorer = load(str(saved(tmp_path, make_pipeline(StandardScaler(), ElasticNet(alpha=0.001)))))
    rows = np.random.default_rng(2).random((5, 3))
    expected = np.asarray(scorer.model.predict(__import__("pandas").DataFrame(rows, columns=scorer.columns)))
    assert scorer.fast
    assert not scorer.row_independent, "a BLAS product rounds a row by its neighbours: never coalesce a linear model"

    import pandas as pd

    def no_frames(*args: object, **kwargs: object) -> None:
        raise AssertionError("a DataFrame was built for a request the row-by-row path can score as an array")

    monkeypatch.setattr(pd, "DataFrame", no_frames)
    np.testing.assert_array_equal(scorer.predict_validated(rows), expected)


def test_a_model_that_checks_feature_names_still_gets_them(tmp_path: Path) -> None:
    import warnings

    import pandas as pd
    from sklearn.tree import DecisionTreeRegressor

    scorer = load(str(saved(tmp_path, DecisionTreeRegressor(max_depth=3, random_state=0),
                                   trusted=("sklearn.tree._tree.Tree",))))
    rows = np.random.default_rng(3).random((4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn warns when a model fitted with names gets a bare array
        scored = scorer.predict_validated(rows)
    np.testing.assert_array_equal(scored, scorer.model.predict(pd.DataFrame(rows, columns=scorer.columns)))


@pytest.mark.integration
def test_the_wrapper_master_preloads_everything_a_worker_needs_to_load_a_model(tmp_path: Path) -> None:
    # A fresh interpreter, as a gunicorn master is: after preload_libraries(), loading a model (each worker's job)
    # imports nothing of MLflow, scikit-learn, skops or pandas any more.
    import subprocess
    import sys

    from sklearn.linear_model import ElasticNet

    model = saved(tmp_path, ElasticNet(alpha=0.01))
    probe = f"""
import sys
from kfops_serving.seldon_server import preload_libraries
preload_libraries()
before = set(sys.modules)
from kfops_serving.scoring import load
load({str(model)!r})
heavy = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("mlflow", "sklearn", "skops", "pandas"))
print(heavy)
"""
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def request_sizes(total: int, seed: int) -> list[int]:
    """Sizes of requests (1 to 40 rows) that add up to ``total`` rows."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(int(min(rng.integers(1, 41), total - sum(sizes))))
    return sizes


@pytest.mark.parametrize("family", ["linear", "linear-no-scaler", "tree"])
def test_every_request_gets_the_bits_the_models_own_predict_gives_its_rows(tmp_path: Path, family: str) -> None:
    # 10,000 rows in requests of 1 to 40 rows: each request's answer must be, to the last bit, what the MLflow model's
    # own predict returns for exactly that request's rows (BLAS rounds a row by the rows that come with it).
    import pandas as pd
    from sklearn.linear_model import ElasticNet, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeRegressor

    estimator, trusted = {
        "linear": (make_pipeline(StandardScaler(), ElasticNet(alpha=0.001)), ()),
        "linear-no-scaler": (Ridge(alpha=0.1), ()),
        "tree": (DecisionTreeRegressor(max_depth=6, random_state=0), ("sklearn.tree._tree.Tree",)),
    }[family]
    scorer = load(str(saved(tmp_path, estimator, trusted=trusted)))
    rows = np.random.default_rng(4).normal(0.5, 2.0, (10_000, 3))
    start, mismatched = 0, 0
    for size in request_sizes(len(rows), seed=5):
        batch = rows[start:start + size]
        start += size
        own = np.asarray(scorer.model.predict(pd.DataFrame(batch.tolist(), columns=scorer.columns)))
        mismatched += int((scorer.predict_validated(batch) != own).sum())
        mismatched += int((scorer.score(batch.tolist()) != own).sum())
    assert mismatched == 0, f"{mismatched} predictions differ from the model's own predict"


def test_a_fast_path_that_differs_by_one_bit_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The previous fast path (one einsum dot product per row) is plausible and off by an ULP on some rows: the
    # load-time comparison must catch it and score through the model's own predict.
    import pandas as pd
    from sklearn.linear_model import Ridge

    from kfops_serving import scoring

    def einsum_path(estimator: object) -> object:
        weights, intercept = estimator.coef_, estimator.intercept_  # type: ignore[attr-defined]
        return lambda values: np.einsum("ij,j->i", np.ascontiguousarray(values), weights) + intercept

    monkeypatch.setattr(scoring, "_linear", einsum_path)
    scorer = load(str(saved(tmp_path, Ridge(alpha=0.1))))
    assert not scorer.fast
    assert not scorer.row_independent
    rows = np.random.default_rng(6).normal(0.5, 2.0, (300, 3))
    np.testing.assert_array_equal(scorer.predict_validated(rows),
                                  scorer.model.predict(pd.DataFrame(rows, columns=scorer.columns)))


def test_tree_models_take_the_fast_path_and_may_be_coalesced(tmp_path: Path) -> None:
    from sklearn.ensemble import GradientBoostingRegressor

    scorer = load(str(saved(tmp_path, GradientBoostingRegressor(n_estimators=20, random_state=0),
                            trusted=("sklearn.tree._tree.Tree", "sklearn._loss.loss.HalfSquaredError",
                                     "sklearn._loss.link.IdentityLink", "sklearn._loss.link.Interval",
                                     "sklearn._loss._loss.CyHalfSquaredError", "sklearn.dummy.DummyRegressor"))))
    assert scorer.fast
    assert scorer.row_independent
