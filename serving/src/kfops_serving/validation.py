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
            raise InvalidInput(f"unknown feature names {sorted(set(map(str, names)) - set(columns))}; "
                               f"expected {', '.join(columns)}")
        values = values[:, [list(map(str, names)).index(c) for c in columns]]
    return check_numbers(values, columns)


def check_numbers(values: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    """``values`` (2-D, one column per feature) as float64, refusing non-numbers, booleans, NaN and infinity.

    Raises:
        InvalidInput: Naming the first offending value.
    """
    # Numeric arrays (the common case) convert without a Python-level loop; anything else is inspected.
    if values.dtype.kind not in "fiu":
        for value in values.ravel():
            if not _is_number(value):
                shown = value.item() if isinstance(value, np.generic) else value
                raise InvalidInput(f"features must be numbers, got {shown!r}")
    numbers = values.astype(np.float64)
    if not np.isfinite(numbers).all():
        row, column = map(int, np.argwhere(~np.isfinite(numbers))[0])
        raise InvalidInput(f"feature {columns[column]!r} of row {row} is {numbers[row, column]} "
                           "(NaN and infinity cannot be scored)")
    return numbers


def _is_number(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
