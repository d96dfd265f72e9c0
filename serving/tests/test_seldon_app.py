"""The v1 wrapper's Flask app (seldon-core's, as ``kfops_serving.seldon_server`` builds it) run in process with the
real ``KfopsModel`` and seldon-core's real metrics store: what a hostile client can and cannot do to it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("seldon_core")

from test_scoring import saved

pytestmark = pytest.mark.unit

ROW = [0.2, 0.4, 0.6]


@pytest.fixture(scope="module")
def wrapper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Any]]:
    from seldon_core.metrics import SeldonMetrics
    from sklearn.linear_model import ElasticNet
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from kfops_serving.seldon_model import KfopsModel
    from kfops_serving.seldon_server import build_app

    path = saved(tmp_path_factory.mktemp("model"), make_pipeline(StandardScaler(), ElasticNet(alpha=0.001)))
    model = KfopsModel(model_uri=str(path), model_name="wine", model_version="3")
    model.load()
    metrics = SeldonMetrics(worker_id_func=os.getpid)
    try:
        yield build_app(model, metrics).test_client(), metrics, model
    finally:
        metrics._manager.shutdown()


def post(client: Any, body: bytes | dict) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/api/v1.0/predictions", data=data, content_type="application/json")


def test_client_chosen_metric_keys_are_not_recorded(wrapper: tuple[Any, Any, Any]) -> None:
    client, metrics, _ = wrapper
    for request in range(50):
        chosen = [{"key": f"client_key_{request}_{i}", "type": "COUNTER", "value": 1} for i in range(20)]
        answer = post(client, {"meta": {"metrics": chosen}, "data": {"ndarray": [ROW]}})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert "metrics" not in answer.get_json()["meta"]
    recorded = json.dumps([list(map(str, key)) for worker in metrics.data.values() for key in worker])
    assert "client_key" not in recorded


def test_answers_carry_the_model_and_its_version_and_the_clients_own_tags(wrapper: tuple[Any, Any, Any]) -> None:
    client, _, _ = wrapper
    answer = post(client, {"meta": {"puid": "p-1", "tags": {"mine": [1, 2]}, "requestPath": {"a": "b"}},
                           "data": {"ndarray": [ROW]}}).get_json()
    assert answer["meta"]["tags"] == {"mine": [1, 2], "model": "wine", "model_version": "3"}
    assert answer["meta"]["puid"] == "p-1"


MARKER = "ZZ-client-text-ZZ"
BAD_META = [
    ("meta is a list", {"meta": [MARKER]}),
    ("meta is text", {"meta": MARKER}),
    ("tags is a list", {"meta": {"tags": [MARKER]}}),
    ("tags is text", {"meta": {"tags": MARKER}}),
    ("puid is a number", {"meta": {"puid": 7}}),
    ("routing holds text", {"meta": {"routing": {"a": MARKER}}}),
    ("requestPath holds a number", {"meta": {"requestPath": {"a": 1}}}),
    ("metrics is an object", {"meta": {"metrics": {"key": MARKER}}}),
    ("a metric without a value", {"meta": {"metrics": [{"key": MARKER}]}}),
    ("a metric whose value is text", {"meta": {"metrics": [{"key": "k", "value": MARKER}]}}),
    ("a metric whose value is a boolean", {"meta": {"metrics": [{"key": "k", "value": True}]}}),
    ("a metric of an unknown type", {"meta": {"metrics": [{"key": "k", "type": MARKER, "value": 1}]}}),
    ("a metric without a key", {"meta": {"metrics": [{"value": 1}]}}),
    ("a metric that is text", {"meta": {"metrics": [MARKER]}}),
    ("a metric whose tags are a list", {"meta": {"metrics": [{"key": "k", "value": 1, "tags": [MARKER]}]}}),
]


@pytest.mark.parametrize(("case", "body"), BAD_META, ids=[case for case, _ in BAD_META])
def test_malformed_meta_is_a_400_that_does_not_echo_the_input(wrapper: tuple[Any, Any, Any], case: str,
                                                              body: dict) -> None:
    client, _, _ = wrapper
    answer = post(client, {**body, "data": {"ndarray": [ROW]}})
    assert answer.status_code == 400, (case, answer.status_code, answer.get_data(as_text=True))
    assert "meta" in answer.get_json()["status"]["info"]
    assert MARKER not in answer.get_data(as_text=True)


# Text and booleans that Python's float() or numpy would take for numbers, and integers no double can hold.
NOT_NUMBERS = [
    ("underscored digits", b'"1_000"'),
    ("Arabic-Indic digits", json.dumps("\u0660.\u0663\u0661").encode()),
    ("padded text", b'" 0.31\\n"'),
    ("a numeric string", b'"0.31"'),
    ("true", b"true"),
    ("false", b"false"),
    ("null", b"null"),
    ("an integer beyond a double", b"1" + b"0" * 400),
    ("an integer beyond int64", b"-" + b"9" * 30 + b"1" * 280),
]


@pytest.mark.parametrize("form", ["ndarray", "tensor"])
@pytest.mark.parametrize(("case", "literal"), NOT_NUMBERS, ids=[case for case, _ in NOT_NUMBERS])
def test_only_json_numbers_are_features(wrapper: tuple[Any, Any, Any], case: str, literal: bytes, form: str) -> None:
    client, _, _ = wrapper
    values = b"[0.2, " + literal + b", 0.6]"
    body = (b'{"data": {"ndarray": [' + values + b"]}}" if form == "ndarray" else
            b'{"data": {"tensor": {"shape": [1, 3], "values": ' + values + b"}}}")
    answer = post(client, body)
    assert answer.status_code == 400, (case, answer.status_code, answer.get_data(as_text=True))
    info = answer.get_json()["status"]["info"]
    assert "of row 0" in info
    if len(literal) > 5:  # text and long integers: the message names their kind, never repeats them
        assert literal.decode().strip('"') not in info


def test_large_integers_within_a_doubles_range_are_numbers(wrapper: tuple[Any, Any, Any]) -> None:
    client, _, model = wrapper
    big = 10 ** 30
    answer = post(client, b'{"data": {"ndarray": [[0.2, ' + str(big).encode() + b", 0.6]]}}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    expected = model.served.scorer.own_predict(np.array([[0.2, float(big), 0.6]]))
    assert answer.get_json()["data"]["ndarray"] == expected.tolist()



@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    from seldon_core.metrics import SeldonMetrics
    from sklearn.ensemble import RandomForestClassifier
    from test_outputs import saved_classifier

    from kfops_serving.seldon_model import KfopsModel
    from kfops_serving.seldon_server import build_app

    path = saved_classifier(tmp_path_factory.mktemp("classifier"),
                            RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1))
    model = KfopsModel(model_uri=str(path), model_name="iris", model_version="1")
    model.load()
    metrics = SeldonMetrics(worker_id_func=os.getpid)
    try:
        yield build_app(model, metrics).test_client(), model
    finally:
        metrics._manager.shutdown()


IRIS_ROWS = [[0.1, -0.3, 0.9, 1.2], [-1.0, 0.2, 0.0, 0.4], [1.5, 1.5, -0.2, 0.7]]


def test_a_classifier_answers_its_labels(classifier: tuple[Any, Any]) -> None:
    client, model = classifier
    answer = post(client, {"data": {"ndarray": IRIS_ROWS}})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["data"]["ndarray"] == [str(label) for label in
                                                    model.served.scorer.own_predict(np.array(IRIS_ROWS))]


@pytest.mark.parametrize("form", ["ndarray", "tensor"])
def test_a_classifier_answers_its_own_predict_proba_when_the_tags_ask(classifier: tuple[Any, Any], form: str) -> None:
    import pandas as pd

    client, model = classifier
    data = {"ndarray": IRIS_ROWS} if form == "ndarray" else \
        {"tensor": {"shape": [3, 4], "values": [v for row in IRIS_ROWS for v in row]}}
    answer = post(client, {"meta": {"tags": {"predict_proba": True}}, "data": data})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    raw = model.served.scorer.model.get_raw_model()
    own = raw.predict_proba(pd.DataFrame(IRIS_ROWS, columns=model.served.scorer.columns))
    body = answer.get_json()["data"]
    assert body["names"] == [str(c) for c in raw.classes_]
    got = body["ndarray"] if form == "ndarray" else np.reshape(body["tensor"]["values"], body["tensor"]["shape"])
    assert np.asarray(got, dtype=np.float64).tobytes() == np.asarray(own, dtype=np.float64).tobytes()


def test_probabilities_of_a_regressor_or_a_tag_that_is_not_a_boolean_are_400s(
        wrapper: tuple[Any, Any, Any], classifier: tuple[Any, Any]) -> None:
    regressor = wrapper[0]
    answer = post(regressor, {"meta": {"tags": {"predict_proba": True}}, "data": {"ndarray": [ROW]}})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert "not a classifier" in answer.get_json()["status"]["info"]
    answer = post(classifier[0], {"meta": {"tags": {"predict_proba": MARKER}}, "data": {"ndarray": IRIS_ROWS}})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert MARKER not in answer.get_data(as_text=True)


def test_no_private_network_access_is_granted(wrapper: tuple[Any, Any, Any]) -> None:
    """A public page's preflight to the wrapper (on 127.0.0.1 locally) is never told private-network access is fine.

    flask-cors < 4.0.2 answered it by default (GHSA-hxwh-jpp2-84pm); seldon-core pins flask-cors < 4.
    """
    client, _, _ = wrapper
    answer = client.options("/api/v1.0/predictions", headers={
        "Origin": "https://public.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Private-Network": "true"})
    assert "Access-Control-Allow-Private-Network" not in answer.headers
