from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from kfops_serving.validation import InvalidInput, to_frame

pytestmark = pytest.mark.unit

COLUMNS = ["a", "b", "c"]


def test_rows_become_a_float_frame_in_signature_order() -> None:
    frame = to_frame([[1, 2, 3], [4, 5, 6]], COLUMNS)
    assert list(frame.columns) == COLUMNS
    assert frame.dtypes.eq(np.float64).all()
    assert frame.to_numpy().tolist() == [[1, 2, 3], [4, 5, 6]]


def test_named_features_are_reordered() -> None:
    assert to_frame([[3, 1, 2]], COLUMNS, names=["c", "a", "b"]).to_numpy().tolist() == [[1, 2, 3]]


def test_a_single_flat_row_and_a_dataframe_are_accepted() -> None:
    assert to_frame([1, 2, 3], COLUMNS).shape == (1, 3)
    assert to_frame(pd.DataFrame([[1, 2, 3]], columns=COLUMNS), COLUMNS).shape == (1, 3)


@pytest.mark.parametrize(("case", "rows", "names", "expected"), [
    ("empty batch", [], None, "the batch is empty"),
    ("too few features", [[1, 2]], None, "each row needs 3 features .* got 2"),
    ("too many features", [[1, 2, 3, 4]], None, "got 4"),
    ("text value", [[1, "x", 3]], None, "feature 'b' of row 0 is text"),
    ("null value", [[1, None, 3]], None, "feature 'b' of row 0 is null"),
    ("boolean value", [[1, 2.0, True]], None, "feature 'c' of row 0 is a boolean"),
    ("NaN", [[1, float("nan"), 3]], None, r"feature 'b' of row 0 is NaN or infinite"),
    ("infinity", [[1, 2, 3], [1, 2, float("inf")]], None, r"feature 'c' of row 1 is NaN or infinite"),
    ("three dimensions", [[[1, 2, 3]]], None, "of row 0 is a list"),
    ("3-D array", np.ones((1, 1, 3)), None, "expected a 2-D batch"),
    ("numeric text", [[1, "2.5", 3]], None, "feature 'b' of row 0 is text"),
    ("boolean beside numbers", [[1.0, True, 3.0]], None, "feature 'b' of row 0 is a boolean"),
    ("integer beyond a double", [[1, 10 ** 400, 3]], None, "is an integer beyond the range of a double"),
    ("ragged rows", [[1, 2, 3], [1, 2]], None, "ragged"),
    ("unknown names", [[1, 2, 3]], ["a", "b", "z"], r"1 of the feature names sent are not the model's"),
])
def test_invalid_batches(case: str, rows: Any, names: list[str] | None, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        to_frame(rows, COLUMNS, names)


def test_batch_size_limit() -> None:
    with pytest.raises(InvalidInput, match="more than the 10 one request may carry"):
        to_frame(np.ones((11, 3)), COLUMNS, max_rows=10)
