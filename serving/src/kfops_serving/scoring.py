"""One scoring path for both serving runtimes: validate a batch once, then predict.

MLflow's ``PyFuncModel.predict`` re-enforces the signature on every call (building a second DataFrame), and
scikit-learn checks the input again; for a request that :func:`kfops_serving.validation.to_frame` already validated,
both are pure overhead (measured: about 35% of MLServer's time per request). For scikit-learn models whose inputs are
all doubles the raw estimator is called directly, with scikit-learn's finiteness check off (already done); any other
model goes through ``PyFuncModel.predict`` unchanged.

A row's prediction must not depend on the rows scored with it, to the last bit: the v2 runtime scores requests that
arrive together in one call. scikit-learn's linear models predict with a BLAS matrix-vector product, whose kernels
round a row differently depending on how many rows come with it; for them each row's dot product is computed on its
own (``einsum``, the same arithmetic whatever the batch). Tree ensembles already predict row by row.
:attr:`Scorer.row_independent` says whether a model's rows may be scored together at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kfops_serving.validation import to_frame


class Scorer:
    """A loaded MLflow pyfunc model, ready to score request batches.

    Raises:
        ValueError: The model has no input signature with column names (requests could not be checked).
    """

    def __init__(self, model: Any) -> None:
        schema = model.metadata.get_input_schema()
        if schema is None or not schema.has_input_names():
            raise ValueError("the model has no input signature with column names")
        self.model = model
        self.columns: list[str] = list(schema.input_names())
        fast = _fast_predict(model, schema)
        self._predict: Callable[[Any], Any] = fast[0] if fast else model.predict
        #: Whether a row's prediction is the same bits whatever rows are scored with it.
        self.row_independent = bool(fast and fast[1])
        # The row-by-row path works on the validated array itself: no DataFrame built only to be taken apart.
        self._takes_array = self.row_independent and fast is not None and fast[2]

    def score(self, rows: Any, names: Sequence[str] | None = None) -> np.ndarray:
        """Validate ``rows`` (see :func:`~kfops_serving.validation.to_frame`) and return the model's predictions."""
        return np.asarray(self._predict(to_frame(rows, self.columns, names)))

    def predict_validated(self, values: np.ndarray) -> np.ndarray:
        """Predictions for rows already accepted by :func:`~kfops_serving.validation.check_numbers`.

        ``values`` is float64, one column per feature, in the model's column order.
        """
        if self._takes_array:
            return np.asarray(self._predict(values))
        import pandas as pd

        return np.asarray(self._predict(pd.DataFrame(values, columns=self.columns)))


#: scikit-learn estimators whose ``predict`` computes each row on its own (tree ensembles and single trees).
_ROW_BY_ROW = ("GradientBoostingRegressor", "GradientBoostingClassifier", "RandomForestRegressor",
               "RandomForestClassifier", "ExtraTreesRegressor", "ExtraTreesClassifier", "DecisionTreeRegressor",
               "DecisionTreeClassifier")


def _fast_predict(model: Any, schema: Any) -> tuple[Callable[[Any], Any], bool, bool] | None:
    """The raw estimator's predict for an all-double scikit-learn model, with two flags.

    The flags: whether its rows are scored independently, and whether it takes a bare float64 array in the model's
    column order (else it needs the named columns of a DataFrame).
    """
    from mlflow.types import DataType

    if "sklearn" not in model.metadata.flavors or any(t != DataType.double for t in schema.input_types()):
        return None
    estimator = model.get_raw_model()
    if not hasattr(estimator, "predict"):
        return None
    rows = _row_by_row(estimator)
    if rows is not None:
        return rows, True, True
    import sklearn

    def predict(frame: Any) -> Any:
        with sklearn.config_context(assume_finite=True):
            return estimator.predict(frame)

    return predict, type(estimator).__name__ in _ROW_BY_ROW, False


def _row_by_row(estimator: Any) -> Callable[[Any], Any] | None:
    """``estimator.predict`` computed so that each row gets the same bits whatever rows come with it, or None.

    Covers a linear regressor, optionally behind StandardScaler steps of a Pipeline (element-wise, hence exact).
    """
    from sklearn.base import is_regressor
    from sklearn.linear_model._base import LinearModel
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [step for _, step in estimator.steps] if isinstance(estimator, Pipeline) else [estimator]
    scalers = []
    for step in steps[:-1]:
        if not isinstance(step, StandardScaler):
            return None
        scalers.append((step.mean_ if step.with_mean else None, step.scale_ if step.with_std else None))
    final = steps[-1]
    coef = getattr(final, "coef_", None)
    if not (isinstance(final, LinearModel) and is_regressor(final) and getattr(coef, "ndim", 0) == 1):
        return None
    weights = np.asarray(coef, dtype=np.float64)
    intercept = float(np.asarray(final.intercept_, dtype=np.float64).ravel()[0])

    def predict(frame: Any) -> Any:
        # Row-major, always: a DataFrame's values come out column-major, and einsum's loop (hence its rounding)
        # follows the memory layout.
        rows = np.array(frame, dtype=np.float64, order="C")
        for mean, scale in scalers:  # StandardScaler.transform: subtract, then divide, element by element
            if mean is not None:
                rows -= mean
            if scale is not None:
                rows /= scale
        # X @ coef_ + intercept_, one dot product per row.
        return np.einsum("ij,j->i", rows, weights) + intercept

    return predict


def load(path: str) -> Scorer:
    """Load the MLflow model in the local directory ``path``."""
    import mlflow.pyfunc

    return Scorer(mlflow.pyfunc.load_model(path))
