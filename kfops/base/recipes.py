"""Recipes: everything dataset-specific about one run of the workflow, as typed, validated data.

A recipe says where the data comes from and how to read it, how to clean it, which model family to train, which
hyperparameters to search and what "better" means. The pipeline, the components, the trainer and the Katib
Experiment builder all read the same recipe by name, so adding a dataset is adding a recipe, not forking code.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kfops.base.errors import KfopsError
from kfops.base.paths import BUNDLED_DATA

ModelFamily = Literal["elasticnet", "gradient_boosting", "random_forest"]
#: Hyperparameters each model family accepts, with the type the trainer parses them as.
MODEL_HYPERPARAMETERS: dict[str, dict[str, type]] = {
    "elasticnet": {"alpha": float, "l1_ratio": float},
    "gradient_boosting": {"n_estimators": int, "max_depth": int, "learning_rate": float, "subsample": float},
    "random_forest": {"n_estimators": int, "max_depth": int, "min_samples_leaf": int, "max_features": float},
}
#: Metrics the trainer reports per task, and whether larger is better.
TASK_METRICS: dict[str, dict[str, Literal["minimize", "maximize"]]] = {
    "regression": {"rmse": "minimize", "mae": "minimize", "r2": "maximize"},
    "classification": {"accuracy": "maximize", "f1": "maximize", "log_loss": "minimize"},
}


def normalize_name(name: str) -> str:
    """``"Free sulfur dioxide"`` -> ``"free_sulfur_dioxide"``."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


class SearchParameter(BaseModel):
    """One hyperparameter of the search space, in Katib's terms (``parameterType`` + ``feasibleSpace``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: Literal["double", "int", "categorical", "discrete"]
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: tuple[str, ...] = ()
    log: bool = False
    """Sample on a log scale (Katib ``distribution: logUniform``)."""

    @property
    def bounds(self) -> tuple[float, float]:
        """``(min, max)`` of a numeric (double or int) parameter.

        Raises:
            ValueError: A categorical or discrete parameter has no bounds.
        """
        if self.min is None or self.max is None:
            raise ValueError(f"search parameter {self.name!r} ({self.type}) has no min and max")
        return self.min, self.max

    @model_validator(mode="after")
    def _check_space(self) -> SearchParameter:
        where = f"search parameter {self.name!r}"
        if self.type in ("double", "int"):
            if self.min is None or self.max is None:
                raise ValueError(f"{where}: {self.type} needs min and max")
            if self.min >= self.max:
                raise ValueError(f"{where}: min ({self.min}) must be smaller than max ({self.max})")
            if self.log and self.min <= 0:
                raise ValueError(f"{where}: a log-scale range must be positive, got min={self.min}")
            if self.step is not None and self.step <= 0:
                raise ValueError(f"{where}: step must be positive, got {self.step}")
        elif not self.values:
            raise ValueError(f"{where}: {self.type} needs a non-empty list of values")
        return self


class Recipe(BaseModel):
    """A dataset, how to clean it, and how to tune, train and judge a model on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")
    description: str
    url: str
    """Default dataset URL (http, https, s3 or file)."""
    offline_url: str | None = None
    """A bundled copy of the same file, used when the run is told to stay offline (the demo)."""
    format: Literal["csv", "arff"]
    delimiter: str = ","
    header: bool = True
    column_names: tuple[str, ...] = ()
    """Names for a header-less CSV."""
    normalize_columns: bool = False
    """Lower-case column names and replace spaces and punctuation with underscores."""
    target: str
    task: Literal["regression", "classification"]
    target_mapping: dict[str, int] = Field(default_factory=dict)
    """Maps raw target labels to integers (e.g. churn ``-1``/``1`` to 0/1); unmapped labels are an error."""
    class_labels: tuple[str, ...] = ()
    """The label of each class index of ``target_mapping``: what the model is trained on and answers (iris: the
    species names). Empty: the index itself."""
    drop_columns_with_missing: bool = False
    numeric_only: bool = False
    """Drop non-numeric feature columns (after the target was mapped)."""
    min_rows: int = Field(50, ge=10)
    model: ModelFamily
    search_space: tuple[SearchParameter, ...]
    objective_metric: str
    objective_goal: float | None = None
    """Stop tuning early once a trial reaches this value of the objective metric."""
    algorithm: str = "tpe"

    @model_validator(mode="after")
    def _check_consistency(self) -> Recipe:
        allowed = MODEL_HYPERPARAMETERS[self.model]
        for parameter in self.search_space:
            if parameter.name not in allowed:
                raise ValueError(f"recipe {self.name!r}: {self.model} has no hyperparameter {parameter.name!r} "
                                 f"(known: {', '.join(allowed)})")
        if self.objective_metric not in TASK_METRICS[self.task]:
            raise ValueError(f"recipe {self.name!r}: metric {self.objective_metric!r} is not reported for "
                             f"{self.task} (choose from {', '.join(TASK_METRICS[self.task])})")
        if not self.header and not self.column_names:
            raise ValueError(f"recipe {self.name!r}: a header-less CSV needs column_names")
        if self.class_labels and self.task != "classification":
            raise ValueError(f"recipe {self.name!r}: class_labels are for classification, not {self.task}")
        if self.class_labels:
            for index in sorted(set(self.target_mapping.values())):
                if not 0 <= index < len(self.class_labels):
                    raise ValueError(f"recipe {self.name!r}: target_mapping gives class {index}, but class_labels "
                                     f"names {len(self.class_labels)} classes ({', '.join(self.class_labels)})")
        return self

    @property
    def goal(self) -> Literal["minimize", "maximize"]:
        """Whether the objective metric is minimized or maximized."""
        return TASK_METRICS[self.task][self.objective_metric]

    @property
    def target_column(self) -> str:
        """Name of the target column in the cleaned dataset."""
        return normalize_name(self.target) if self.normalize_columns else self.target

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric the trainer reports for this recipe's task (objective first)."""
        others = [name for name in TASK_METRICS[self.task] if name != self.objective_metric]
        return (self.objective_metric, *others)

    def dataset_url(self, offline: bool = False) -> str:
        """The URL to ingest: the bundled copy when ``offline`` and one exists, else the real source."""
        return self.offline_url if offline and self.offline_url else self.url

    def better(self, candidate: float, incumbent: float) -> bool:
        """Whether ``candidate`` strictly beats ``incumbent`` on the objective metric."""
        return candidate < incumbent if self.goal == "minimize" else candidate > incumbent


WINE_QUALITY = Recipe(
    name="winequality",
    description="Red wine quality (UCI): ElasticNet regression of the 3-8 quality score on 11 lab measurements.",
    url="https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality/winequality-red.csv",
    offline_url=(BUNDLED_DATA / "winequality-red.csv").as_uri(),
    format="csv",
    delimiter=";",
    normalize_columns=True,
    target="quality",
    task="regression",
    min_rows=100,
    model="elasticnet",
    search_space=(
        SearchParameter(name="alpha", type="double", min=1e-4, max=1.0, log=True),
        SearchParameter(name="l1_ratio", type="double", min=0.0, max=1.0),
    ),
    objective_metric="rmse",
)

CHURN = Recipe(
    name="churn",
    description="KDD Cup 2009 customer churn (OpenML 1112): gradient boosting on the numeric, complete columns.",
    url="https://www.openml.org/data/download/53995/KDDCup09_churn.arff",
    format="arff",
    target="CHURN",
    task="classification",
    target_mapping={"-1": 0, "1": 1},
    drop_columns_with_missing=True,
    numeric_only=True,
    min_rows=100,
    model="gradient_boosting",
    search_space=(
        SearchParameter(name="n_estimators", type="int", min=20, max=200),
        SearchParameter(name="max_depth", type="int", min=2, max=6),
        SearchParameter(name="learning_rate", type="double", min=0.01, max=0.3, log=True),
    ),
    objective_metric="accuracy",
)

IRIS = Recipe(
    name="iris",
    description="Iris: random forest classification of three species from four measurements; answers the species.",
    url="https://archive.ics.uci.edu/ml/machine-learning-databases/iris/iris.data",
    # The copy scikit-learn ships (in its own layout: a first row "150,4,setosa,versicolor,virginica", then class
    # indices), which the clean step reads as well as UCI's header-less iris.data.
    offline_url="package://sklearn.datasets/data/iris.csv",
    format="csv",
    header=False,
    column_names=("sepal_length", "sepal_width", "petal_length", "petal_width", "species"),
    target="species",
    task="classification",
    # UCI spells the species "Iris-setosa", scikit-learn "setosa": the same classes, answered by their species name.
    target_mapping={"Iris-setosa": 0, "Iris-versicolor": 1, "Iris-virginica": 2,
                    "setosa": 0, "versicolor": 1, "virginica": 2},
    class_labels=("setosa", "versicolor", "virginica"),
    min_rows=30,
    model="random_forest",
    search_space=(
        SearchParameter(name="n_estimators", type="int", min=10, max=200),
        SearchParameter(name="max_depth", type="int", min=2, max=8),
    ),
    objective_metric="accuracy",
    objective_goal=0.99,
)

RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (WINE_QUALITY, CHURN, IRIS)}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        KfopsError: No such recipe; the message lists the known ones.
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise KfopsError(f"unknown recipe {name!r}", f"choose one of: {', '.join(sorted(RECIPES))}") from None
