"""The deploy step's smoke test compares what an endpoint answered with the model's own predictions."""

from __future__ import annotations

import numpy as np
import pytest

from infra.local.serving import same_predictions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("got", "expected", "same"), [
    ([5.1, 6.0], np.array([5.1, 6.0]), True),
    ([5.1, 6.0 + 1e-12], np.array([5.1, 6.0]), True),
    ([5.1, 6.5], np.array([5.1, 6.0]), False),
    ([5.1], np.array([5.1, 6.0]), False),
    # A classifier answers its class labels: equal, label for label.
    (["setosa", "virginica"], np.array(["setosa", "virginica"], dtype=object), True),
    (["setosa", "versicolor"], np.array(["setosa", "virginica"], dtype=object), False),
    # Labels where numbers were expected (or the reverse) are a wrong answer, not a crash of the deploy step.
    (["setosa", "virginica"], np.array([0.0, 2.0]), False),
    ([0.0, 2.0], np.array(["setosa", "virginica"], dtype=object), False),
    (None, np.array([1.0]), False),
])
def test_an_answer_is_the_models_own_prediction(got: object, expected: np.ndarray, same: bool) -> None:
    assert same_predictions(got, expected) is same
