"""MLflow's scoring protocol (``/invocations``) on the served champion's v2 port: what ``mlflow models serve`` 3.17
accepts and answers, validated as every other request, with the model's own predictions to the last bit."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import pytest
import requests

from infra.local.serving import LocalServing
from kfops.base.paths import BUNDLED_DATA
from kfops_serving.protocols import MLFLOW_INVOCATIONS_PATH

pytestmark = pytest.mark.integration

#: The dataset's own column names, as its CSV header has them ("fixed acidity", ...), without the target.
DATASET_COLUMNS = next(csv.reader((BUNDLED_DATA / "winequality-red.csv").open(), delimiter=";"))[:-1]


@pytest.fixture(scope="module")
def model(serving: LocalServing) -> Any:
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(serving.deployed()["model"]["path"])


@pytest.fixture(scope="module")
def rows() -> list[list[float]]:
    data = np.loadtxt(BUNDLED_DATA / "winequality-red.csv", delimiter=";", skiprows=1)[:, :-1]
    return data[np.random.default_rng(3).integers(0, len(data), 37)].tolist()


def invoke(serving: LocalServing, body: bytes | str, content_type: str = "application/json") -> requests.Response:
    url = serving.platform.records()["mlserver"].url + MLFLOW_INVOCATIONS_PATH
    return requests.post(url, data=body.encode() if isinstance(body, str) else body,
                         headers={"Content-Type": content_type} if content_type else {}, timeout=60)


def mlflow_answer(model: Any, body: str, content_type: str = "application/json") -> Any:
    """What MLflow's own scoring server (``mlflow models serve``) answers, from its invocations function."""
    from mlflow.pyfunc.scoring_server import invocations

    result = invocations(body, content_type, model, model.metadata.get_input_schema())
    assert result.status == 200, result.response
    return json.loads(result.response)


def bodies(rows: list[list[float]], names: list[str]) -> dict[str, tuple[str, str]]:
    """The same rows in every format MLflow's scoring server takes, with ``names`` as column names."""
    order = [3, 0, 10, 1, 5, 2, 4, 9, 7, 8, 6]  # columns in another order than the signature's
    records = [{names[i]: row[i] for i in order} for row in rows]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([names[i] for i in order])
    writer.writerows([[repr(row[i]) for i in order] for row in rows])
    return {
        "dataframe_split": (json.dumps({"dataframe_split": {"columns": [names[i] for i in order],
                                                            "data": [[row[i] for i in order] for row in rows]}}),
                            "application/json"),
        "dataframe_records": (json.dumps({"dataframe_records": records}), "application/json"),
        "instances": (json.dumps({"instances": records}), "application/json; charset=utf-8"),
        "inputs": (json.dumps({"inputs": {names[i]: [row[i] for row in rows] for i in order}}),
                   "application/json"),
        "csv": (out.getvalue(), "text/csv"),
    }


@pytest.mark.parametrize("form", ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"])
def test_every_format_mlflow_serves_gets_mlflows_answer_exactly(serving: LocalServing, model: Any,
                                                                 rows: list[list[float]], form: str) -> None:
    signature = model.metadata.get_input_schema().input_names()
    body, content_type = bodies(rows, signature)[form]
    answer = invoke(serving, body, content_type)
    assert answer.status_code == 200, answer.text
    assert answer.json() == mlflow_answer(model, body, content_type)  # shape and every bit
    # The dataset's own column names ("fixed acidity"), which MLflow's server refuses, name the same columns.
    own_names, _ = bodies(rows, DATASET_COLUMNS)[form]
    by_dataset_names = invoke(serving, own_names, content_type)
    assert by_dataset_names.status_code == 200, by_dataset_names.text
    assert by_dataset_names.json() == answer.json()


MARKER = "ZZ-client-text-ZZ"


def bad_requests(row: list[float], names: list[str]) -> list[tuple[str, bytes | str, str, int]]:
    split = {"columns": names, "data": [row]}
    return [
        ("not JSON", "{" + MARKER, "application/json", 400),
        ("not UTF-8", b'{"instances": [[\xff\xfe]]}', "application/json", 400),
        ("a JSON list", json.dumps([row]), "application/json", 400),
        ("no known key", json.dumps({MARKER: [row]}), "application/json", 400),
        ("two formats", json.dumps({"instances": [row], "inputs": [row]}), "application/json", 400),
        ("text in dataframe_split", json.dumps({"dataframe_split": {"columns": names,
                                                                    "data": [[MARKER, *row[1:]]]}}),
         "application/json", 400),
        ("a boolean in instances", json.dumps({"instances": [[True, *row[1:]]]}), "application/json", 400),
        ("NaN", json.dumps({"instances": [[float("nan"), *row[1:]]]}), "application/json", 400),
        ("a column missing", json.dumps({"dataframe_split": {"columns": names[1:], "data": [row[1:]]}}),
         "application/json", 400),
        ("a column named twice", json.dumps({"dataframe_split": {"columns": [*names, DATASET_COLUMNS[0]],
                                                                 "data": [[*row, row[0]]]}}),
         "application/json", 400),
        ("ragged dataframe_split", json.dumps({"dataframe_split": {**split, "data": [row[:5]]}}),
         "application/json", 400),
        ("empty records", json.dumps({"dataframe_records": []}), "application/json", 400),
        ("params", json.dumps({"instances": [row], "params": {"x": 1}}), "application/json", 400),
        ("text in CSV", ",".join(names) + "\n" + ",".join([MARKER, *map(repr, row[1:])]), "text/csv", 400),
        ("an empty CSV", "", "text/csv", 400),
        ("plain text", json.dumps({"instances": [row]}), "text/plain", 415),
        ("no content type", json.dumps({"instances": [row]}), "", 415),
        ("latin-1", json.dumps({"instances": [row]}), "application/json; charset=latin-1", 415),
        ("parquet", b"PAR1", "application/vnd.apache.parquet", 415),
    ]


def test_bad_requests_get_a_4xx_naming_the_problem_never_a_500(serving: LocalServing, model: Any,
                                                               rows: list[list[float]]) -> None:
    signature = model.metadata.get_input_schema().input_names()
    good = bodies(rows[:2], signature)["instances"][0]
    expected = invoke(serving, good).json()
    for case, body, content_type, status in bad_requests(rows[0], signature):
        answer = invoke(serving, body, content_type)
        assert answer.status_code == status, (case, answer.status_code, answer.text[:300])
        assert answer.json()["message"], case
        assert MARKER not in answer.text, case
        assert invoke(serving, good).json() == expected, f"a good request's answer changed after {case}"
