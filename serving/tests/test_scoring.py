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
    assert scorer.row_independent

    import pandas as pd

    def no_frames(*args: object, **kwargs: object) -> None:
        raise AssertionError("a DataFrame was built for a request the row-by-row path can score as an array")

    monkeypatch.setattr(pd, "DataFrame", no_frames)
    np.testing.assert_allclose(scorer.predict_validated(rows), expected, rtol=1e-12)


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
