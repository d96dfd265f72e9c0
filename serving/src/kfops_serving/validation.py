"""Input checks shared by both serving runtimes, so a bad request is a 400 with a reason, never a 500 traceback.

Imports only numpy and pandas: it runs inside MLServer (the project environment) and inside the seldon-core wrapper
(its own Python 3.12 environment) alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Largest batch one request may carry; bigger ones are refused rather than risking the server's memory.
MAX_ROWS = 100_000


class InvalidInput(ValueError):
    """A request the model cannot score, with a message meant for the caller."""


def to_frame(rows: Any, columns: Sequence[str], names: Sequence[str] | None = None,
             max_rows: int = MAX_ROWS) -> pd.DataFrame:
    """Validate a batch and return it as a float DataFrame with the model's columns, in the model's order.

    See :func:`to_array` for what is accepted and refused.
    """
    return pd.DataFrame(to_array(rows, columns, names, max_rows), columns=list(columns))


def to_array(rows: Any, columns: Sequence[str], names: Sequence[str] | None = None,
             max_rows: int = MAX_ROWS) -> np.ndarray:
    """Validate a batch and return it as a float64 array ``(rows, features)``, columns in the model's order.

    Args:
        rows: A 2-D batch (list of rows, numpy array or DataFrame); a single flat row is accepted too.
        columns: The model signature's input column names, in order.
        names: Column names the caller sent (Seldon ``names``), if any; they must be the model's columns.
        max_rows: Largest accepted batch.

    Raises:
        InvalidInput: Empty batch, too many rows, wrong number or names of features, non-numeric or
            non-finite (NaN, inf) values.
    """
    if isinstance(rows, pd.DataFrame):
        names = [str(c) for c in rows.columns] if names is None else names
        values = rows.to_numpy()
    else:
        if isinstance(rows, list):
            check_json_rows(rows, columns)
            try:  # numbers only now: straight to float64 (numpy's int64 would overflow on a larger JSON integer)
                values = np.array(rows, dtype=np.float64)
            except ValueError:
                raise InvalidInput("the rows are ragged or nested: send rows of numbers, all of the same "
                                   "length") from None
        else:
            values = np.asarray(rows)
    if values.ndim == 1:
        values = values.reshape(1, -1) if values.size else values.reshape(0, 0)
    if values.ndim != 2:
        raise InvalidInput(f"expected a 2-D batch (rows of {len(columns)} features), got {values.ndim} dimensions")
    if values.shape[0] == 0:
        raise InvalidInput("the batch is empty: send at least one row")
    if values.shape[0] > max_rows:
        raise InvalidInput(f"the batch has {values.shape[0]} rows, more than the {max_rows} one request may carry")
    if values.shape[1] != len(columns):
        raise InvalidInput(f"each row needs {len(columns)} features ({', '.join(columns)}), got {values.shape[1]}")
    if names is not None and len(names) and [str(n) for n in names] != list(columns):
        if sorted(map(str, names)) != sorted(columns):
            unknown = len(set(map(str, names)) - set(columns))
            raise InvalidInput(f"{unknown} of the feature names sent are not the model's: expected "
                               f"{', '.join(columns)}")
        values = values[:, [list(map(str, names)).index(c) for c in columns]]
    return check_numbers(values, columns)


def check_numbers(values: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    """``values`` (2-D, one column per feature) as float64, refusing non-numbers, booleans, NaN and infinity.

    Only numbers are numbers: text that looks like one (``"0.31"``, ``"1_000"``, other scripts' digits) and booleans
    are refused, as are integers beyond the range of a double. Messages name the position and the kind of value, never
    the value itself.

    Raises:
        InvalidInput: Naming the first offending value's row and feature.
    """
    # Numeric arrays (the common case) convert without a Python-level loop; anything else is inspected.
    if values.dtype.kind not in "fiu":
        for index, value in enumerate(values.ravel()):
            if not _is_number(value):
                row, column = divmod(index, values.shape[1])
                raise InvalidInput(f"feature {columns[column]!r} of row {row} is {kind_of(value)}: features must "
                                   "be numbers (JSON numbers, not text or booleans) within the range of a double")
    numbers = values.astype(np.float64)
    if not np.isfinite(numbers).all():
        row, column = map(int, np.argwhere(~np.isfinite(numbers))[0])
        raise InvalidInput(f"feature {columns[column]!r} of row {row} is NaN or infinite "
                           "(NaN and infinity cannot be scored)")
    return numbers


def check_json_rows(rows: list[Any], columns: Sequence[str]) -> None:
    """Refuse anything but numbers in rows parsed from JSON (lists of rows, or one flat row).

    numpy would silently turn ``true`` into 1.0 next to numbers; this looks at the parsed values themselves.

    Raises:
        InvalidInput: Naming the first offending value's row and feature (see :func:`check_numbers`).
    """
    flat = not any(isinstance(row, list) for row in rows)
    matrix = [rows] if flat else rows
    kinds = {type(value) for row in matrix if isinstance(row, list) for value in row}
    if kinds <= {float} or (kinds <= {float, int} and all(
            abs(value) <= _LARGEST for row in matrix for value in row if type(value) is int)):
        return
    for r, row in enumerate(matrix):
        for c, value in enumerate(row if isinstance(row, list) else [row]):
            if not _is_number(value):
                name = repr(columns[c]) if c < len(columns) else str(c)
                raise InvalidInput(f"feature {name} of row {r} is {kind_of(value)}: features must be numbers "
                                   "(JSON numbers, not text or booleans) within the range of a double")


#: The largest finite double; a JSON integer beyond it has no float64 value.
_LARGEST = float(np.finfo(np.float64).max)  # a Python float: comparing a huge int with it is exact


def kind_of(value: Any) -> str:
    """What kind of value a client sent, for a message that does not repeat the value."""
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (str, np.str_, bytes)):
        return "text"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, np.integer)):
        return "an integer beyond the range of a double"
    return f"a value of type {type(value).__name__}"


def _is_number(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return abs(int(value)) <= _LARGEST
    return isinstance(value, (float, np.floating))

