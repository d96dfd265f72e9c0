"""One scoring path for both serving runtimes: validate a batch once, then predict, to the model's own last bit.

A served answer is bit-identical to the MLflow model's own ``predict`` called on exactly the rows of that request
(``model.predict(pd.DataFrame(rows, columns=signature))``), whatever else is in flight. That definition matters for
linear models: scikit-learn computes ``X @ coef_`` with a BLAS matrix-vector product whose kernels round a row
differently depending on how many rows come with it and where it sits among them, so a linear model's answer for a row
depends on its request's other rows. Such a model is scored one request at a time, never coalesced.

MLflow's ``PyFuncModel.predict`` re-enforces the signature on every call (building a second DataFrame), and
scikit-learn checks the input again: for a request :mod:`kfops_serving.validation` already validated, both are pure
overhead (about 3 ms per call). So for scikit-learn models whose inputs are all doubles kfops computes what the
estimator computes without those checks:

* a linear regressor, optionally behind StandardScaler steps: the same element-wise operations and the same BLAS call
  (``X @ coef_ + intercept_``) on an array of the same memory layout as the estimator gets from the pyfunc model
  (column-major), hence the same bits;
* tree models: the estimator's own ``predict`` (trees score each row on its own, so their rows may be coalesced);
* any other scikit-learn model: the estimator's own ``predict`` on a column-major DataFrame.

None of these is trusted on its word: at load time each is compared, bit for bit, with the model's own ``predict`` on
probe batches of many sizes, and a model whose fast path differs in one bit is scored through ``PyFuncModel.predict``
itself. Likewise rows are coalesced only for a model whose probe rows score the same alone and together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kfops_serving.validation import InvalidInput, to_array

#: What loading an MLflow scikit-learn model imports, heaviest first: each runtime imports them before it serves
#: (the wrapper's gunicorn master before it forks, MLServer before it starts empty on the local target).
MODEL_LOAD_IMPORTS = ("mlflow.pyfunc", "mlflow.sklearn", "sklearn.linear_model", "sklearn.pipeline", "pandas",
                      "skops.io")

#: Rows of each probe batch a fast path is checked on at load time (odd and even sizes around BLAS block sizes).
PROBE_SIZES = (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257, 1000)

#: scikit-learn estimators whose ``predict`` computes each row on its own (tree ensembles and single trees).
_ROW_BY_ROW = ("GradientBoostingRegressor", "GradientBoostingClassifier", "RandomForestRegressor",
               "RandomForestClassifier", "ExtraTreesRegressor", "ExtraTreesClassifier", "DecisionTreeRegressor",
               "DecisionTreeClassifier")


class Scorer:
    """A loaded MLflow pyfunc model, ready to score request batches exactly as its own ``predict`` would.

    Raises:
        ValueError: The model has no input signature with column names (requests could not be checked).
    """

    def __init__(self, model: Any) -> None:
        schema = model.metadata.get_input_schema()
        if schema is None or not schema.has_input_names():
            raise ValueError("the model has no input signature with column names")
        self.model = model
        self.columns: list[str] = list(schema.input_names())
        self._predict: Callable[[np.ndarray], np.ndarray] = self.own_predict
        #: The classifier's classes in the order of its ``predict_proba`` columns; None for any other model.
        self.classes: list[Any] | None = None
        self._proba: Callable[..., Any] | None = _predict_proba(model)
        if self._proba is not None:
            self.classes = np.asarray(model.get_raw_model().classes_).tolist()
        #: Whether a fast path replaces ``PyFuncModel.predict`` (it gave the same bits on every probe batch).
        self.fast = False
        #: Whether a row's prediction is the same bits whatever rows are scored with it (rows may be coalesced).
        self.row_independent = False
        candidate = _fast_predict(model, schema)
        if candidate is None:
            return
        fast, claims_row_by_row = candidate
        probes = _probe_rows(model, len(self.columns))
        batches = [probes[:size] for size in PROBE_SIZES]
        if all(np.array_equal(fast(batch), self.own_predict(batch)) for batch in batches):
            self._predict, self.fast = fast, True
            self.row_independent = claims_row_by_row and _scores_rows_alone(fast, probes[:64])

    def own_predict(self, values: np.ndarray) -> np.ndarray:
        """The MLflow model's own ``predict`` for ``values`` (float64 rows in the model's column order)."""
        import pandas as pd

        return np.asarray(self.model.predict(pd.DataFrame(values, columns=self.columns))).ravel()

    def probabilities(self, values: np.ndarray) -> np.ndarray:
        """The classifier's own ``predict_proba`` for rows already validated: ``(rows, classes)``, float64.

        What the estimator inside the MLflow model answers for a DataFrame of exactly these rows, with the
        signature's columns (each request alone: never coalesced).

        Raises:
            InvalidInput: The model gives no class probabilities (a regressor).
        """
        if self._proba is None:
            raise InvalidInput("this model gives no class probabilities (it is not a classifier): ask only for its "
                               "predictions")
        import pandas as pd

        return np.asarray(self._proba(pd.DataFrame(values, columns=self.columns)), dtype=np.float64)

    def score(self, rows: Any, names: Sequence[str] | None = None) -> np.ndarray:
        """Validate ``rows`` (see :func:`~kfops_serving.validation.to_array`) and return the model's predictions."""
        return self.predict_validated(to_array(rows, self.columns, names))

    def predict_validated(self, values: np.ndarray) -> np.ndarray:
        """Predictions for rows already accepted by :func:`~kfops_serving.validation.check_numbers`.

        ``values`` is float64, one column per feature, in the model's column order; the answer is what the model's
        own ``predict`` gives for exactly these rows.
        """
        return np.asarray(self._predict(values)).ravel()


def _predict_proba(model: Any) -> Callable[..., Any] | None:
    """The ``predict_proba`` of the scikit-learn classifier an MLflow model wraps, or None."""
    if "sklearn" not in model.metadata.flavors:
        return None
    try:
        estimator = model.get_raw_model()
    except Exception:  # a pyfunc without a raw model: no probabilities
        return None
    from sklearn.base import is_classifier

    if not is_classifier(estimator) or not hasattr(estimator, "predict_proba") or \
            getattr(estimator, "classes_", None) is None:
        return None
    return estimator.predict_proba


def _fast_predict(model: Any, schema: Any) -> tuple[Callable[[np.ndarray], np.ndarray], bool] | None:
    """A cheaper equivalent of an all-double scikit-learn model's predict, and whether it claims row independence."""
    from mlflow.types import DataType

    if "sklearn" not in model.metadata.flavors or any(t != DataType.double for t in schema.input_types()):
        return None
    estimator = model.get_raw_model()
    if not hasattr(estimator, "predict"):
        return None
    linear = _linear(estimator)
    if linear is not None:
        return linear, False
    import pandas as pd
    import sklearn

    columns = list(schema.input_names())
    row_by_row = type(estimator).__name__ in _ROW_BY_ROW and getattr(estimator, "n_jobs", None) in (None, 1)

    def predict(values: np.ndarray) -> np.ndarray:
        # Column-major, as the pyfunc model's own DataFrame hands it to scikit-learn.
        frame = pd.DataFrame(np.asfortranarray(values), columns=columns)
        with sklearn.config_context(assume_finite=True):
            return np.asarray(estimator.predict(frame))

    return predict, row_by_row


def _linear(estimator: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A linear regressor's predict (optionally behind StandardScaler steps of a Pipeline) without its checks, or None.

    The operations are scikit-learn's own (``StandardScaler.transform``: ``X -= mean_; X /= scale_``;
    ``LinearModel._decision_function``: ``X @ coef_ + intercept_``) on a column-major copy, which is the layout the
    estimator receives from the pyfunc model's DataFrame.
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
    weights: Any = coef
    intercept = final.intercept_

    def predict(values: np.ndarray) -> np.ndarray:
        rows = np.array(values, dtype=np.float64, order="F", copy=True)
        for mean, scale in scalers:
            if mean is not None:
                rows -= mean
            if scale is not None:
                rows /= scale
        return np.asarray(rows @ weights + intercept)

    return predict


def _probe_rows(model: Any, width: int) -> np.ndarray:
    """Rows to compare a fast path with the model's own predict: around the training data when it is known."""
    estimator = model.get_raw_model()
    steps = getattr(estimator, "steps", None)
    first = steps[0][1] if steps else estimator
    center = np.asarray(getattr(first, "mean_", np.zeros(width)), dtype=np.float64)
    spread = np.asarray(getattr(first, "scale_", np.ones(width)), dtype=np.float64)
    rng = np.random.default_rng(20_061)
    return center + spread * rng.normal(size=(max(PROBE_SIZES), width))


def _scores_rows_alone(predict: Callable[[np.ndarray], np.ndarray], rows: np.ndarray) -> bool:
    """Whether each of ``rows`` scores the same bits alone as together with the others."""
    together = np.asarray(predict(rows)).ravel()
    return all(np.array_equal(np.asarray(predict(rows[i:i + 1])).ravel(), together[i:i + 1])
               for i in range(rows.shape[0]))


def load(path: str) -> Scorer:
    """Load the MLflow model in the local directory ``path``."""
    import mlflow.pyfunc

    return Scorer(mlflow.pyfunc.load_model(path))
