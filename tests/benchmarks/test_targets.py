"""What the serving benchmarks check and compute about their targets (benchmarks/targets.py, serving_throughput.py)."""

from __future__ import annotations

import json
import struct

import pytest

from benchmarks.serving_throughput import goals, ratios
from benchmarks.targets import (
    CEILING,
    KFOPS_GRPC,
    KFOPS_V1,
    KFOPS_V2,
    KSERVE,
    KSERVE_REQUIREMENTS,
    KSERVE_VERSION,
    MLFLOW,
    MODEL_SERVERS,
    STOCK_MLSERVER,
    STOCK_SELDON,
    STOCK_SELDON_TUNED,
    disagreements,
    grpc_prediction,
    http_request,
    json_prediction,
    pinned_version,
    port_was_taken,
)

pytestmark = pytest.mark.unit


def test_the_pinned_version_is_read_from_the_requirements() -> None:
    text = "# a comment naming kserve>=0.1\nkserve-storage==9.9\nKServe == 0.21.0  # the peer\nnumpy==2.4.6\n"
    assert pinned_version(text, "kserve") == "0.21.0"
    assert pinned_version(text, "numpy") == "2.4.6"


def test_an_unpinned_package_is_an_error() -> None:
    with pytest.raises(ValueError, match="not pinned"):
        pinned_version("kserve>=0.21\n", "kserve")


def test_the_kserve_peer_is_named_after_the_version_make_installs() -> None:
    assert pinned_version(KSERVE_REQUIREMENTS.read_text(), "kserve") == KSERVE_VERSION
    assert f"KServe {KSERVE_VERSION} " in KSERVE
    assert KSERVE in MODEL_SERVERS
    assert CEILING not in MODEL_SERVERS


ROW = [7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4]
COLUMNS = [f"c{index}" for index in range(len(ROW))]


@pytest.mark.parametrize(("user", "path"), [
    ("OpenInferenceUser", "/v2/models/bench-wine/infer"),
    ("StockMLServerUser", "/v2/models/bench-wine/infer"),
    ("SeldonUser", "/api/v1.0/predictions"),
    ("MlflowServeUser", "/invocations"),
])
def test_each_protocol_sends_the_row_as_locust_does(user: str, path: str) -> None:
    sent_path, body = http_request(user, "bench-wine", ROW, COLUMNS)
    assert sent_path == path
    document = json.loads(body)
    flat = json.dumps(document)
    assert all(str(value) in flat for value in ROW)


def test_an_unknown_user_has_no_request() -> None:
    with pytest.raises(ValueError, match="no HTTP request"):
        http_request("OpenInferenceGrpcUser", "m", ROW, COLUMNS)


@pytest.mark.parametrize(("user", "answer"), [
    ("OpenInferenceUser", {"model_name": "m", "outputs": [{"name": "output-0", "shape": [1, 1], "datatype": "FP64",
                                                           "data": [5.25]}]}),
    ("StockMLServerUser", {"outputs": [{"name": "output-1", "shape": [1, 1], "data": [[5.25]]}]}),
    ("SeldonUser", {"data": {"names": [], "ndarray": [5.25]}, "meta": {}}),
    ("SeldonUser", {"data": {"tensor": {"shape": [1], "values": [5.25]}}}),
    ("MlflowServeUser", {"predictions": [5.25]}),
    ("MlflowServeUser", {"predictions": [{"0": 5.25}]}),
])
def test_the_prediction_is_read_where_each_protocol_puts_it(user: str, answer: dict[str, object]) -> None:
    assert json_prediction(user, answer) == 5.25


def test_an_answer_with_more_than_one_prediction_is_an_error() -> None:
    with pytest.raises(ValueError, match="one prediction"):
        json_prediction("MlflowServeUser", {"predictions": [1.0, 2.0]})


def test_a_grpc_prediction_is_read_from_typed_or_raw_contents() -> None:
    from mlserver.grpc import dataplane_pb2 as pb

    typed = pb.ModelInferResponse(outputs=[pb.ModelInferResponse.InferOutputTensor(
        name="output-0", datatype="FP64", shape=[1, 1], contents=pb.InferTensorContents(fp64_contents=[5.25]))])
    raw = pb.ModelInferResponse(outputs=[pb.ModelInferResponse.InferOutputTensor(name="output-0", datatype="FP64",
                                                                                  shape=[1, 1])],
                                raw_output_contents=[struct.pack("<d", 5.25)])
    assert grpc_prediction(typed) == grpc_prediction(raw) == 5.25


def test_targets_that_answer_another_prediction_are_named() -> None:
    predictions = {KFOPS_V2: 5.25, KFOPS_V1: 5.25 * (1 + 1e-12), MLFLOW: 5.2500001, KSERVE: 5.25}
    assert disagreements(predictions, KFOPS_V2) == [MLFLOW]


def _cells(**rps: float) -> dict[str, dict[str, float]]:
    names = {"v2": KFOPS_V2, "v1": KFOPS_V1, "grpc": KFOPS_GRPC, "mlflow": MLFLOW, "mlserver": STOCK_MLSERVER,
             "seldon": STOCK_SELDON, "seldon_tuned": STOCK_SELDON_TUNED, "kserve": KSERVE, "ceiling": CEILING}
    return {names[key]: {"rps": value, "p99_ms": 1000 / value if value else 0.0} for key, value in rps.items()}


def test_throughput_ratios_against_each_peer() -> None:
    cells = _cells(v2=1000, v1=300, grpc=900, mlflow=200, mlserver=125, seldon=100, seldon_tuned=150, kserve=250,
                   ceiling=4000)
    assert ratios(cells) == {"v2 / mlflow models serve": 5.0, "v2 / stock MLServer": 8.0,
                             "v2 / KServe ModelServer": 4.0, "v2 / ceiling": 0.25,
                             "v1 / stock microservice at its best": 2.0}


def test_a_peer_that_served_nothing_has_no_ratio() -> None:
    cells = _cells(v2=1000, v1=300, grpc=900, mlflow=200, mlserver=125, seldon=100, seldon_tuned=150, kserve=0,
                   ceiling=4000)
    assert ratios(cells)["v2 / KServe ModelServer"] is None


def test_the_lowest_p99_goal_counts_the_kserve_peer() -> None:
    fast_kserve = _cells(v2=1000, v1=300, grpc=900, mlflow=200, mlserver=125, seldon=100, seldon_tuned=150,
                         kserve=2000, ceiling=4000)
    assert goals(fast_kserve)["v2 has the lowest p99 of the model servers"] is False
    slow_kserve = {**fast_kserve, KSERVE: {"rps": 100.0, "p99_ms": 50.0}}
    assert goals(slow_kserve)["v2 has the lowest p99 of the model servers"] is True


@pytest.mark.parametrize(("message", "log_tail", "race"), [
    ("[kfops] port 39193 (stock-mlserver http) is already in use on 127.0.0.1", "", True),
    ("stock-seldon exited during start-up with code 1", "OSError: [Errno 98] Address already in use", True),
    ("kserve exited during start-up with code 1", "ERROR: [Errno 98] error while attempting to bind on address "
     "('127.0.0.1', 8080): address already in use", True),
    ("kserve exited during start-up with code 1", "ModuleNotFoundError: No module named 'kserve'", False),
])
def test_only_a_port_race_starts_a_peer_again(message: str, log_tail: str, race: bool) -> None:
    assert port_was_taken(message, log_tail) is race
