from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kfops.base.errors import KfopsError
from kfops.base.recipes import CHURN, IRIS, RECIPES, WINE_QUALITY, Recipe, SearchParameter, get_recipe

pytestmark = pytest.mark.unit


def test_bundled_recipes_are_valid_and_named_by_key() -> None:
    assert set(RECIPES) == {"winequality", "churn", "iris"}
    for name, recipe in RECIPES.items():
        assert recipe.name == name
        assert recipe.metrics[0] == recipe.objective_metric


def test_wine_demo_runs_offline_from_the_bundled_copy() -> None:
    assert WINE_QUALITY.dataset_url(offline=True).startswith("file://")
    assert WINE_QUALITY.dataset_url(offline=True).endswith("/data/winequality-red.csv")
    assert WINE_QUALITY.dataset_url().startswith("https://archive.ics.uci.edu/")


def test_iris_runs_offline_from_scikit_learns_copy_and_answers_species_names() -> None:
    assert IRIS.dataset_url(offline=True) == "package://sklearn.datasets/data/iris.csv"
    assert IRIS.dataset_url().startswith("https://archive.ics.uci.edu/")
    assert IRIS.class_labels == ("setosa", "versicolor", "virginica")
    # Both sources' spellings of a species are the same class.
    assert IRIS.target_mapping["Iris-setosa"] == IRIS.target_mapping["setosa"] == 0


def test_churn_downloads_the_real_openml_file_unless_given_a_url() -> None:
    # No copy ships (it is 50,000 rows): offline or not, the default is OpenML; --dataset-url points at a local copy.
    assert CHURN.dataset_url(offline=True) == CHURN.dataset_url() == \
        "https://www.openml.org/data/download/53995/KDDCup09_churn.arff"


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(KfopsError, match="unknown recipe 'wine'") as raised:
        get_recipe("wine")
    assert "churn, iris, winequality" in raised.value.fix


@pytest.mark.parametrize(("case", "fields", "expected"), [
    ("min above max", {"name": "alpha", "type": "double", "min": 1.0, "max": 0.1}, "min .* must be smaller"),
    ("min equals max", {"name": "alpha", "type": "int", "min": 3, "max": 3}, "must be smaller"),
    ("no bounds", {"name": "alpha", "type": "double"}, "needs min and max"),
    ("log of zero", {"name": "alpha", "type": "double", "min": 0, "max": 1, "log": True}, "must be positive"),
    ("negative step", {"name": "alpha", "type": "double", "min": 0, "max": 1, "step": -0.1}, "step must be positive"),
    ("empty categorical", {"name": "kind", "type": "categorical"}, "non-empty list"),
    ("unknown field", {"name": "alpha", "type": "double", "min": 0, "max": 1, "scale": "log"}, "Extra inputs"),
])
def test_invalid_search_space(case: str, fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        SearchParameter(**fields)


@pytest.mark.parametrize(("case", "changes", "expected"), [
    ("hyperparameter of another family", {"search_space": (SearchParameter(name="max_depth", type="int", min=1,
                                                                                max=3),)},
     "elasticnet has no hyperparameter 'max_depth'"),
    ("metric of another task", {"objective_metric": "accuracy"}, "is not reported for regression"),
    ("headerless without names", {"header": False}, "needs column_names"),
    ("class labels for a regression", {"class_labels": ("low", "high")}, "class_labels are for classification"),
])
def test_inconsistent_recipe(case: str, changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        Recipe(**{**WINE_QUALITY.model_dump(), **changes})


def test_class_labels_must_name_every_class_the_mapping_gives() -> None:
    with pytest.raises(ValidationError, match=r"target_mapping gives class 2, but class_labels names 2 classes"):
        Recipe(**{**IRIS.model_dump(), "class_labels": ("setosa", "versicolor")})
