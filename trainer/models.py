"""Model families and their hyperparameters, parsed from the strings Katib substitutes into the trial command."""

from __future__ import annotations

from typing import Any

from kfops.base.errors import KfopsError
from kfops.base.recipes import MODEL_HYPERPARAMETERS
from kfops.base.values import parse_named_values

#: Types in a saved model of each family that skops refuses to load unless told to trust them. Tree ensembles keep
#: their nodes in ``sklearn.tree._tree.Tree``, whose raw indices a crafted file could point out of bounds; the models
#: here are written by this trainer into the project's own registry, and only this one type is trusted, by name.
SKOPS_TRUSTED_TYPES: dict[str, tuple[str, ...]] = {
    "elasticnet": (),
    "gradient_boosting": ("sklearn.tree._tree.Tree",),
    "random_forest": ("sklearn.tree._tree.Tree",),
}


def parse_hyperparameters(family: str, raw: dict[str, str]) -> dict[str, Any]:
    """Convert ``{"alpha": "0.01"}`` to typed values, rejecting names the family does not have.

    Raises:
        KfopsError: Unknown name or a value of the wrong type.
    """
    return parse_named_values(raw, MODEL_HYPERPARAMETERS[family], owner=family, kind="hyperparameter")


def build_model(family: str, params: dict[str, Any]) -> Any:
    """A fresh, unfitted estimator of ``family`` with ``params`` (deterministic: fixed random_state).

    Raises:
        KfopsError: The estimator rejects a value (e.g. a negative alpha).
    """
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import ElasticNet
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if family == "elasticnet":
        # Scaling makes one alpha mean the same for every feature; the scaler is part of the served model.
        model: Any = Pipeline([("scale", StandardScaler()),
                               ("model", ElasticNet(random_state=0, max_iter=20_000, **params))])
    elif family == "gradient_boosting":
        model = GradientBoostingClassifier(random_state=0, **params)
    elif family == "random_forest":
        model = RandomForestClassifier(random_state=0, n_jobs=1, **params)
    else:
        raise KfopsError(f"unknown model family {family!r}", "fix the recipe")
    return model


def fit(model: Any, x: Any, y: Any) -> Any:
    """Fit ``model``, turning scikit-learn's parameter validation errors into a clear message."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        return model.fit(x, y)
    except (InvalidParameterError, ValueError) as error:
        raise KfopsError(f"training failed: {error}", "check the hyperparameter values") from error
