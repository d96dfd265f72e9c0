"""One scoring path for both serving runtimes: validate a batch once, then predict.

MLflow's ``PyFuncModel.predict`` re-enforces the signature on every call (building a second DataFrame), and
scikit-learn checks the input again; for a request that :func:`kfops_serving.validation.to_frame` already validated,
both are pure overhead (measured: about 35% of MLServer's time per request). For scikit-learn models whose inputs are
all doubles the raw estimator is called directly, with scikit-learn's finiteness check off (already done); any other
model goes through ``PyFuncModel.predict`` unchanged.
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
        self._predict: Callable[[Any], Any] = _fast_predict(model, schema) or model.predict

    def score(self, rows: Any, names: Sequence[str] | None = None) -> np.ndarray:
        """Validate ``rows`` (see :func:`~kfops_serving.validation.to_frame`) and return the model's predictions."""
        return np.asarray(self._predict(to_frame(rows, self.columns, names)))


def _fast_predict(model: Any, schema: Any) -> Callable[[Any], Any] | None:
    from mlflow.types import DataType

    if "sklearn" not in model.metadata.flavors or any(t != DataType.double for t in schema.input_types()):
        return None
    estimator = model.get_raw_model()
    if not hasattr(estimator, "predict"):
        return None
    import sklearn

    def predict(frame: Any) -> Any:
        with sklearn.config_context(assume_finite=True):
            return estimator.predict(frame)

    return predict


def load(path: str) -> Scorer:
    """Load the MLflow model in the local directory ``path``."""
    import mlflow.pyfunc

    return Scorer(mlflow.pyfunc.load_model(path))
