"""MLflow's scoring protocol (``POST /invocations``, what ``mlflow models serve`` answers), validated as kfops does.

Accepted, as MLflow 3.17's scoring server accepts them (``mlflow/pyfunc/scoring_server``):

* ``Content-Type: application/json`` (optionally ``; charset=utf-8``) with exactly one of ``dataframe_split``
  (``{"columns": [...], "data": [[...]]}``, columns optional: then positional), ``dataframe_records``
  (``[{"column": value}, ...]``), ``instances`` (rows: objects or lists) and ``inputs`` (``{"column": [values]}``,
  or rows); ``params`` may accompany them only empty (the model takes none), other keys are ignored, as MLflow does.
* ``Content-Type: text/csv``: a header line of column names, then rows of numbers.

Column names are the signature's (``fixed_acidity``) or the dataset's own (``fixed acidity``: the same name before
the clean step normalised it); either way each column must be named once, and unknown ones are ignored, as MLflow
does. Values must be numbers (JSON numbers; in CSV, decimal literals), finite and within a double's range. The answer
is ``{"predictions": [...]}``, what ``mlflow models serve`` answers, with the model's own predictions to the last bit;
a bad request is a 400 (415 for a content type or charset MLflow would not take either) with
``{"error_code": ..., "message": ...}`` that never repeats what the client sent. Parquet bodies, which MLflow also
takes, are refused with 415.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from kfops_serving.validation import MAX_ROWS, InvalidInput, check_json_rows, check_numbers

#: The JSON keys of MLflow's scoring protocol that carry the data.
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
#: Largest body accepted, as on the v1 wrapper.
MAX_BODY = 32 * 1024 * 1024

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class UnsupportedMediaType(InvalidInput):
    """A body of a content type (or charset) the scoring protocol does not take: HTTP 415."""


def normalize_name(name: str) -> str:
    """A dataset column name as kfops' clean step names it: ``"Free sulfur dioxide"`` -> ``"free_sulfur_dioxide"``."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def parse(body: bytes, content_type: str, columns: Sequence[str]) -> np.ndarray:
    """The rows of an ``/invocations`` request as float64 ``(rows, features)`` in the model's column order.

    Raises:
        UnsupportedMediaType: Not JSON or CSV, or not UTF-8.
        InvalidInput: Anything else wrong with the request, named.
    """
    mime, _ = _content_type(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the body is not UTF-8 text") from None
    if mime == "text/csv":
        return _csv(text, columns)
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"the body is not valid JSON ({error.msg} at position {error.pos})") from None
    except RecursionError:
        raise InvalidInput("the body nests JSON arrays or objects too deeply") from None
    except ValueError:  # e.g. an integer literal longer than Python parses
        raise InvalidInput("the body is not JSON this server can read (a number literal is too long)") from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"the body must be a JSON object with exactly one of {', '.join(FORMATS)}")
    present = [key for key in FORMATS if key in payload]
    if len(present) != 1:
        raise InvalidInput(f"the body must be a JSON object with exactly one of {', '.join(FORMATS)} "
                           f"(it has {len(present)})")
    if payload.get("params") not in (None, {}):
        raise InvalidInput("this model takes no params")
    key = present[0]
    return _rows(key, payload[key], columns)


def _content_type(value: str) -> tuple[str, dict[str, str]]:
    parts = [part.strip() for part in value.split(";")]
    mime = parts[0].lower()
    parameters = {}
    for part in parts[1:]:
        name, _, setting = part.partition("=")
        parameters[name.strip().lower()] = setting.strip().strip('"').lower()
    if mime not in ("application/json", "text/csv"):
        raise UnsupportedMediaType("send Content-Type application/json (MLflow's JSON formats) or text/csv")
    if set(parameters) - {"charset"}:
        raise UnsupportedMediaType("the only Content-Type parameter accepted is charset=utf-8")
    if parameters.get("charset", "utf-8") != "utf-8":
        raise UnsupportedMediaType("the scoring server only supports UTF-8")
    return mime, parameters


def _positions(sent: Sequence[Any], columns: Sequence[str]) -> list[int]:
    """For each model column, where it is among ``sent`` names (signature names or the dataset's own)."""
    if not all(isinstance(name, str) for name in sent):
        raise InvalidInput("column names must be strings")
    by_model_name: dict[str, int] = {}
    normalized = {normalize_name(column): column for column in columns}
    for index, name in enumerate(sent):
        column = name if name in columns else normalized.get(normalize_name(name))
        if column is None:
            continue  # MLflow ignores columns the signature does not have
        if column in by_model_name:
            raise InvalidInput(f"column {column!r} is named more than once")
        by_model_name[column] = index
    missing = [column for column in columns if column not in by_model_name]
    if missing:
        raise InvalidInput(f"{len(missing)} of the model's columns are missing: it takes {', '.join(columns)} "
                           "(or the dataset's own names for them)")
    return [by_model_name[column] for column in columns]


def _matrix(rows: Any, columns: Sequence[str], what: str) -> np.ndarray:
    """Rows given as lists of numbers (already in model order) as a checked float64 array."""
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise InvalidInput(f"{what} must be a list of rows, each a list of numbers")
    if not rows:
        raise InvalidInput("the batch is empty: send at least one row")
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"the batch has {len(rows)} rows, more than the {MAX_ROWS} one request may carry")
    widths = {len(row) for row in rows}
    if widths != {len(columns)}:
        raise InvalidInput(f"each row needs {len(columns)} values ({', '.join(columns)}), one row has "
                           f"{min(widths - {len(columns)})}")
    check_json_rows(rows, columns)
    return check_numbers(np.array(rows, dtype=np.float64), columns)


def _records(records: Any, columns: Sequence[str], what: str) -> np.ndarray:
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise InvalidInput(f"{what} must be a list of objects, one per row")
    rows = []
    for record in records:
        order = _positions(list(record), columns)
        values = list(record.values())
        rows.append([values[i] for i in order])
    return _matrix(rows, columns, what)


def _rows(key: str, data: Any, columns: Sequence[str]) -> np.ndarray:
    if key == "dataframe_split":
        if not isinstance(data, dict) or "data" not in data:
            raise InvalidInput('dataframe_split must be an object {"columns": [...], "data": [[...], ...]}')
        rows = data["data"]
        if "columns" in data:
            if not isinstance(data["columns"], list):
                raise InvalidInput("dataframe_split.columns must be a list of column names")
            order = _positions(data["columns"], columns)
            if not isinstance(rows, list) or not all(isinstance(row, list) and len(row) == len(data["columns"])
                                                     for row in rows):
                raise InvalidInput("dataframe_split.data must be a list of rows, each with one value per column")
            rows = [[row[i] for i in order] for row in rows]
        return _matrix(rows, columns, "dataframe_split.data")
    if key == "dataframe_records":
        return _records(data, columns, "dataframe_records")
    if isinstance(data, dict) and key == "inputs":  # columnar: {"column": [values, ...]}
        order = _positions(list(data), columns)
        series = list(data.values())
        picked = [series[i] for i in order]
        if not all(isinstance(values, list) for values in picked) or len({len(v) for v in picked}) != 1:
            raise InvalidInput("inputs as an object must map each column to a list of values, all of one length")
        return _matrix([list(row) for row in zip(*picked, strict=True)], columns, "inputs")
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        return _records(data, columns, key)
    return _matrix(data, columns, key)


def _csv(text: str, columns: Sequence[str]) -> np.ndarray:
    lines = [row for row in csv.reader(io.StringIO(text)) if row]
    if not lines:
        raise InvalidInput("the CSV body is empty: send a header line of column names, then rows of numbers")
    order = _positions([name.strip() for name in lines[0]], columns)
    rows = []
    for number, line in enumerate(lines[1:]):
        if len(line) != len(lines[0]):
            raise InvalidInput(f"CSV row {number} has {len(line)} fields; the header has {len(lines[0])}")
        picked = [line[i].strip() for i in order]
        for position, value in enumerate(picked):
            if not _NUMBER.match(value):
                raise InvalidInput(f"CSV row {number}, column {columns[position]!r} is not a decimal number")
        rows.append([float(value) for value in picked])
    return _matrix(rows, columns, "the CSV rows")


def answer(predictions: np.ndarray) -> bytes:
    """The body ``mlflow models serve`` answers with."""
    return json.dumps({"predictions": np.asarray(predictions).tolist()}).encode()


def error(message: str, code: str = "BAD_REQUEST") -> bytes:
    """An error body in the shape of MLflow's scoring server."""
    return json.dumps({"error_code": code, "message": message}).encode()
