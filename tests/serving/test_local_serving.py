"""The champion served by real MLServer (v2) and seldon-core wrapper (v1) processes on the local platform."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import requests

from components.deploy import check_compatibility
from infra.local.processes import port_is_free
from infra.local.serving import LocalServing, ServedModel
from infra.local.target import LocalTarget
from kfops.base.errors import KfopsError
from kfops.base.recipes import WINE_QUALITY
from kfops_serving.protocols import open_inference_v2, seldon_v1
from loadtest.command import locust_command
from tests.serving.conftest import NAME
from trainer.data import load_frame, split

pytestmark = pytest.mark.integration

TUTORIAL_ROW = [5.6, 0.31, 0.37, 1.4, 0.074, 12.0, 96.0, 0.9954, 3.32, 0.58, 9.2]


def rows(dataset: str, count: int = 50) -> list[list[float]]:
    parts = split(load_frame(dataset), WINE_QUALITY.target_column, WINE_QUALITY.task)
    return parts.x_test.head(count).to_numpy().tolist()


def expected(serving: LocalServing, version: str, batch: list[list[float]]) -> np.ndarray:
    import mlflow.pyfunc
    import pandas as pd

    # The version as the registry holds it, not the copy the runtimes serve from.
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
    columns = model.metadata.get_input_schema().input_names()
    return np.asarray(model.predict(pd.DataFrame(batch, columns=columns)))


def v1(serving: LocalServing, body: bytes) -> requests.Response:
    return requests.post(serving.endpoints(NAME)["v1"], data=body, headers={"Content-Type": "application/json"},
                         timeout=60)


def v2(serving: LocalServing, body: bytes) -> requests.Response:
    return requests.post(serving.endpoints(NAME)["v2"], data=body, headers={"Content-Type": "application/json"},
                         timeout=60)


def v1_predictions(response: requests.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["data"]["ndarray"], dtype=float)


def v2_predictions(response: requests.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["outputs"][0]["data"], dtype=float)


def test_both_protocols_equal_in_process_predictions_for_a_batch(serving: LocalServing,
                                                                 versions: dict[str, str]) -> None:
    batch = rows(versions["dataset"], 50)
    reference = expected(serving, versions["first"], batch)
    np.testing.assert_allclose(v1_predictions(v1(serving, seldon_v1(batch))), reference, rtol=1e-9)
    np.testing.assert_allclose(v2_predictions(v2(serving, open_inference_v2(batch))), reference, rtol=1e-9)


def test_the_tutorial_request_gets_a_prediction(serving: LocalServing) -> None:
    body = json.dumps({"data": {"ndarray": [TUTORIAL_ROW]}}).encode()
    response = v1(serving, body)
    prediction = v1_predictions(response)
    assert prediction.shape == (1,)
    assert 3 < prediction[0] < 8
    assert response.json()["meta"]["tags"]["model"] == NAME


def test_health_and_readiness(serving: LocalServing) -> None:
    records = serving.platform.records()
    assert requests.get(f"{records['mlserver'].url}/v2/health/ready", timeout=10).status_code == 200
    assert requests.get(f"{records['mlserver'].url}/v2/models/{NAME}/ready", timeout=10).status_code == 200
    assert requests.get(f"{records['seldon'].url}/health/ping", timeout=10).status_code == 200
    assert requests.get(f"{records['seldon'].url}/health/status", timeout=10).json()["jsonData"]["model"] == NAME
    statuses = {s.name: s.state for s in serving.platform.status()}
    assert statuses["mlserver"] == statuses["seldon"] == "running"


def _v2_body(values: list) -> bytes:
    return json.dumps({"inputs": [{"name": "input-0", "shape": [1, len(values)], "datatype": "FP64",
                                   "data": values}]}).encode()


BAD_V1 = [
    ("malformed JSON", b'{"data": {"ndarray": [[1, 2'),
    ("wrong feature count", seldon_v1([[1.0, 2.0, 3.0]])),
    ("non-numeric value", json.dumps({"data": {"ndarray": [[*TUTORIAL_ROW[:3], "abc", *TUTORIAL_ROW[4:]]]}}).encode()),
    ("NaN", b'{"data": {"ndarray": [[NaN, 0.31, 0.37, 1.4, 0.074, 12.0, 96.0, 0.9954, 3.32, 0.58, 9.2]]}}'),
    ("empty batch", b'{"data": {"ndarray": []}}'),
    ("not an object", b"[1, 2, 3]"),
    # seldon-core's own parsing answered these with its catch-all 500:
    ("data is null", b'{"data": null}'),
    ("ragged rows", json.dumps({"data": {"ndarray": [TUTORIAL_ROW, TUTORIAL_ROW[:10]]}}).encode()),
    ("tensor shape and values disagree", json.dumps({"data": {"tensor": {"shape": [2, 11],
                                                                         "values": TUTORIAL_ROW}}}).encode()),
    ("strData", b'{"strData": "5.6,0.31"}'),
    ("names that are not a list", json.dumps({"data": {"names": "a", "ndarray": [TUTORIAL_ROW]}}).encode()),
]
BAD_V2 = [
    ("malformed JSON", b'{"inputs": [{"name": "x"'),
    ("wrong feature count", _v2_body([1.0, 2.0, 3.0])),
    ("non-numeric value", json.dumps({"inputs": [{"name": "input-0", "shape": [1, 11], "datatype": "BYTES",
                                                  "data": ["abc"] * 11}]}).encode()),
    ("NaN", b'{"inputs": [{"name": "input-0", "shape": [1, 11], "datatype": "FP64", "data": '
            b'[NaN, 0.31, 0.37, 1.4, 0.074, 12.0, 96.0, 0.9954, 3.32, 0.58, 9.2]}]}'),
    ("empty batch", json.dumps({"inputs": [{"name": "input-0", "shape": [0, 11], "datatype": "FP64",
                                            "data": []}]}).encode()),
    ("shape does not match data", json.dumps({"inputs": [{"name": "input-0", "shape": [2, 11], "datatype": "FP64",
                                                          "data": TUTORIAL_ROW}]}).encode()),
    # MLServer and the stock runtime answered these with 200 and a prediction, or never:
    ("shape with -1", json.dumps({"inputs": [{"name": "input-0", "shape": [-1, 11], "datatype": "FP64",
                                              "data": TUTORIAL_ROW}]}).encode()),
    ("12 features", _v2_body([*TUTORIAL_ROW, 1.0])),
    ("10 values for shape [1, 11]", json.dumps({"inputs": [{"name": "input-0", "shape": [1, 11], "datatype": "FP64",
                                                            "data": TUTORIAL_ROW[:10]}]}).encode()),
    ("no inputs", b'{"inputs": []}'),
    ("a string in FP64 data", json.dumps({"inputs": [{"name": "input-0", "shape": [1, 11], "datatype": "FP64",
                                                      "data": [*TUTORIAL_ROW[:10], "abc"]}]}).encode()),
    ("column tensors with unknown names", json.dumps({"inputs": [{"name": f"x{i}", "shape": [1], "datatype": "FP64",
                                                                  "data": [v]} for i, v in
                                                                 enumerate(TUTORIAL_ROW)]}).encode()),
]


@pytest.mark.parametrize(("case", "body"), BAD_V1, ids=[c[0] for c in BAD_V1])
def test_bad_v1_requests_are_4xx_and_the_server_keeps_serving(serving: LocalServing, case: str, body: bytes) -> None:
    response = v1(serving, body)
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    assert response.json()["status"]["info"]
    assert "Traceback" not in response.text
    v1_predictions(v1(serving, seldon_v1([TUTORIAL_ROW])))


@pytest.mark.parametrize(("case", "body"), BAD_V2, ids=[c[0] for c in BAD_V2])
def test_bad_v2_requests_are_4xx_and_the_server_keeps_serving(serving: LocalServing, case: str, body: bytes) -> None:
    response = v2(serving, body)
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    assert "Traceback" not in response.text
    v2_predictions(v2(serving, open_inference_v2([TUTORIAL_ROW])))


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_v2_body_not_sent_as_json_is_a_415_naming_the_header(serving: LocalServing, content_type: str | None) -> None:
    """FastAPI >= 0.132 parses a body as JSON only when its Content-Type says so (a cross-site request guard)."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(serving.endpoints(NAME)["v2"], data=open_inference_v2([TUTORIAL_ROW]), headers=headers,
                             timeout=60)
    assert response.status_code == 415, response.text
    assert "Content-Type: application/json" in response.json()["error"]
    v2_predictions(v2(serving, open_inference_v2([TUTORIAL_ROW])))


def test_a_form_field_that_is_not_json_is_a_400(serving: LocalServing) -> None:
    response = requests.post(serving.endpoints(NAME)["v1"], data={"json": "{not json"}, timeout=60)
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.json()["status"]["info"]


def test_v2_answers_with_the_output_its_metadata_declares(serving: LocalServing) -> None:
    base = serving.endpoints(NAME)["v2"].rsplit("/infer", 1)[0]
    [declared] = requests.get(base, timeout=30).json()["outputs"]
    body = {"inputs": [{"name": "input-0", "shape": [2, 11], "datatype": "FP64", "data": TUTORIAL_ROW * 2}],
            "outputs": [{"name": declared["name"]}]}
    [output] = requests.post(base + "/infer", json=body, timeout=30).json()["outputs"]
    assert output["name"] == declared["name"]
    assert output["datatype"] == declared["datatype"]
    assert len(output["shape"]) == len(declared["shape"])
    assert output["shape"][0] == 2


def test_v1_accepts_a_tensor_and_named_columns_in_any_order(serving: LocalServing, versions: dict[str, str]) -> None:
    import mlflow.pyfunc

    columns = mlflow.pyfunc.load_model(f"models:/{NAME}/{versions['first']}").metadata.get_input_schema().input_names()
    expected = v1_predictions(v1(serving, seldon_v1([TUTORIAL_ROW])))
    tensor = json.dumps({"data": {"tensor": {"shape": [1, 11], "values": TUTORIAL_ROW}}}).encode()
    assert v1(serving, tensor).json()["data"]["tensor"]["values"] == pytest.approx(expected.tolist())
    reversed_body = json.dumps({"data": {"names": columns[::-1], "ndarray": [TUTORIAL_ROW[::-1]]}}).encode()
    np.testing.assert_array_equal(v1_predictions(v1(serving, reversed_body)), expected)


def test_oversized_requests_are_refused(serving: LocalServing) -> None:
    too_many_rows = [TUTORIAL_ROW] * 100_001
    response = v2(serving, open_inference_v2(too_many_rows))
    assert response.status_code == 400
    assert "more than the 100000" in response.text
    huge = b'{"data": {"ndarray": [' + b",".join([b"[" + b"1.0," * 10 + b"1.0]"] * 800_000) + b"]}}"
    assert len(huge) > 32 * 1024 * 1024
    response = v1(serving, huge)
    assert response.status_code == 413
    v1_predictions(v1(serving, seldon_v1([TUTORIAL_ROW])))
    v2_predictions(v2(serving, open_inference_v2([TUTORIAL_ROW])))


def test_rolling_to_a_new_champion_never_stops_answering(serving: LocalServing, versions: dict[str, str]) -> None:
    batch = rows(versions["dataset"], 5)
    codes: Counter[tuple[str, int | str]] = Counter()
    stop = threading.Event()

    def hammer(protocol: str) -> None:
        body = seldon_v1(batch) if protocol == "v1" else open_inference_v2(batch)
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    codes[(protocol, session.post(serving.endpoints(NAME)[protocol], data=body, timeout=30,
                                                  headers={"Content-Type": "application/json"}).status_code)] += 1
                except requests.RequestException as error:
                    codes[(protocol, type(error).__name__)] += 1

    workers = [threading.Thread(target=hammer, args=(protocol,)) for protocol in ("v1", "v2", "v1", "v2")]
    for worker in workers:
        worker.start()
    try:
        endpoints = serving.deploy(serving.fetch(NAME, versions["second"]))
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert set(endpoints) == {"v1", "v2", "v2-grpc"}
    assert {code for (_, code) in codes} == {200}, codes
    assert codes[("v1", 200)] > 10, codes
    assert codes[("v2", 200)] > 10, codes
    reference = expected(serving, versions["second"], batch)
    np.testing.assert_allclose(v1_predictions(v1(serving, seldon_v1(batch))), reference, rtol=1e-9)
    np.testing.assert_allclose(v2_predictions(v2(serving, open_inference_v2(batch))), reference, rtol=1e-9)
    assert serving.deployed()["model"]["version"] == versions["second"]


def test_a_model_that_cannot_load_is_never_swapped_in(serving: LocalServing, versions: dict[str, str],
                                                      tmp_path: Path) -> None:
    current = serving.deployed()["model"]
    broken = tmp_path / "broken"
    shutil.copytree(current["path"], broken)
    (broken / "model.skops").write_bytes(b"not a model")
    with pytest.raises(KfopsError, match=r"\[deploy\] .* could not load") as raised:
        serving.deploy(ServedModel(name=NAME, version="999", path=str(broken), source="s3://x/y"))
    assert "previous model keeps serving" in raised.value.fix
    batch = rows(versions["dataset"], 3)
    reference = expected(serving, current["version"], batch)
    np.testing.assert_allclose(v1_predictions(v1(serving, seldon_v1(batch))), reference, rtol=1e-9)
    np.testing.assert_allclose(v2_predictions(v2(serving, open_inference_v2(batch))), reference, rtol=1e-9)
    assert serving.deployed()["model"]["version"] == current["version"]


def test_compatibility_check_refuses_a_pickle_for_the_python_312_wrapper(serving: LocalServing,
                                                                         tmp_path: Path) -> None:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = np.random.default_rng(0).random((20, 2))
    fitted = LinearRegression().fit(x, x.sum(axis=1))
    model = tmp_path / "cloudpickled"
    mlflow.sklearn.save_model(fitted, model, serialization_format="cloudpickle",
                              signature=infer_signature(x, fitted.predict(x)), pip_requirements=["scikit-learn"])
    with pytest.raises(KfopsError, match=r"cloudpickle from Python 3\.11, .* runs Python 3\.12") as raised:
        check_compatibility(model, {"v1": serving.runtime("v1"), "v2": serving.runtime("v2")})
    assert "nothing was deployed" in raised.value.fix
    check_compatibility(model, {"v2": serving.runtime("v2")})  # same Python as training: fine


def test_locust_counts_malformed_requests_and_windows_against_the_real_server(serving: LocalServing,
                                                                              tmp_path: Path) -> None:
    # The gate failing (exit 1) is checked through `kfops loadtest` below.
    base = serving.platform.records()["mlserver"].url
    command = locust_command("OpenInferenceUser", base, 4, 4)
    env = {**__import__("os").environ, "KFOPS_MODEL_NAME": NAME}
    # With malformed requests mixed in: each counts as a success only if it gets a 4xx, so "SLOs met" at a failure
    # ratio of 0 says every good request got 200 and every malformed one a 4xx.
    windows = tmp_path / "windows.json"
    met = subprocess.run([*command, "--slo-p99-ms", "5000", "--slo-max-failure-ratio", "0", "--malformed-share", "0.3",
                          "--windows-file", str(windows), "--window-seconds", "1"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert met.returncode == 0, met.stderr[-2000:]
    assert "SLOs met" in met.stderr
    counted = json.loads(windows.read_text())
    assert {row["name"] for row in counted} == {"v2 infer", "v2 infer (malformed)"}
    assert len({row["window"] for row in counted}) >= 3
    assert sum(row["failures"] for row in counted) == 0


def test_down_stops_serving_and_up_restores_the_champion(serving: LocalServing) -> None:
    platform = serving.platform
    ports = [record.ports for name, record in platform.records().items() if name in ("mlserver", "seldon")]
    version = serving.deployed()["model"]["version"]
    platform.down()
    assert all(port_is_free(port) for service in ports for port in service.values())
    target = LocalTarget(platform.settings)
    target.up()
    platform = target.platform
    assert {s.name for s in platform.status() if s.ok} >= {"seaweedfs", "mlflow", "mlserver", "seldon"}
    response = v1(serving, seldon_v1([TUTORIAL_ROW]))
    assert response.json()["meta"]["tags"]["model_version"] == version
    v2_predictions(v2(serving, open_inference_v2([TUTORIAL_ROW])))


def test_kfops_loadtest_writes_reports_next_to_its_verdict(serving: LocalServing, tmp_path: Path) -> None:
    kfops = [str(Path(sys.executable).parent / "kfops"), "loadtest", "--state-dir", str(serving.platform.state_dir)]
    out = tmp_path / "met"
    met = subprocess.run([*kfops, "--protocol", "all", "--users", "4", "--seconds", "3", "--malformed-share", "0.2",
                          "--slo-p99-ms", "5000", "--out", str(out)], capture_output=True, text=True, timeout=180,
                         check=False)
    assert met.returncode == 0, met.stdout + met.stderr
    verdict = json.loads((out / "verdict.json").read_text())
    assert set(verdict) == {"v2", "v1", "v2-grpc"}
    for protocol, result in verdict.items():
        assert result["met"], result
        assert result["measured"]["requests"] > 0
        assert "Locust" in (out / f"{protocol}.html").read_text()
        assert (out / f"{protocol}_stats.csv").read_text().count("\n") >= 2
    assert str(out) in met.stdout
    missed = subprocess.run([*kfops, "--protocol", "v1", "--users", "2", "--seconds", "2", "--slo-min-rps", "1000000",
                             "--out", str(tmp_path / "missed")], capture_output=True, text=True, timeout=180,
                            check=False)
    assert missed.returncode == 1, missed.stdout + missed.stderr
    assert "requests/s < 1000000" in missed.stdout
    assert not json.loads((tmp_path / "missed" / "verdict.json").read_text())["v1"]["met"]


def test_v2_over_grpc_answers_as_over_http_and_refuses_bad_input(serving: LocalServing) -> None:
    import grpc
    from mlserver.grpc import dataplane_pb2 as pb
    from mlserver.grpc import dataplane_pb2_grpc

    from kfops_serving.protocols import served_model_name
    from loadtest.payloads import open_inference_grpc

    target = serving.endpoints(NAME)["v2-grpc"]
    assert target.startswith("grpc://127.0.0.1:")
    batch = [TUTORIAL_ROW, [v * 1.01 for v in TUTORIAL_ROW], [v * 0.99 for v in TUTORIAL_ROW]]
    with grpc.insecure_channel(target.removeprefix("grpc://")) as channel:
        stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel)
        answer = stub.ModelInfer(open_inference_grpc(batch, served_model_name(NAME)), timeout=60)
        [output] = answer.outputs
        assert output.name == "output-0"
        assert list(output.contents.fp64_contents) == list(v2_predictions(v2(serving, open_inference_v2(batch))))
        tensor = pb.ModelInferRequest.InferInputTensor(  # shape [2, 11], one row of data
            name="input-0", datatype="FP64", shape=[2, 11], contents=pb.InferTensorContents(fp64_contents=TUTORIAL_ROW))
        bad = pb.ModelInferRequest(model_name=served_model_name(NAME), inputs=[tensor])
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(bad, timeout=60)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
        assert "Traceback" not in (refused.value.details() or "")


def test_the_served_version_is_named_on_every_path_as_on_a_cluster(serving: LocalServing) -> None:
    from kfops_serving.protocols import served_model_name

    version = serving.deployed()["model"]["version"]
    base = f"{serving.platform.records()['mlserver'].url}/v2/models/{served_model_name(NAME)}"
    body = open_inference_v2([TUTORIAL_ROW])
    assert version in requests.get(base, timeout=30).json()["versions"]
    unversioned = v2_predictions(v2(serving, body))
    answer = requests.post(f"{base}/versions/{version}/infer", data=body, timeout=30,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == version
    assert v2_predictions(answer).tolist() == unversioned.tolist()
    assert v2(serving, body).json()["model_version"] == version
    assert requests.get(f"{base}/versions/{version}/ready", timeout=30).status_code == 200
    assert requests.get(f"{base}/versions/{version}", timeout=30).json()["versions"] == [version]
    assert requests.get(f"{base}/versions/{int(version) + 100}/ready", timeout=30).status_code == 404
    assert v1(serving, seldon_v1([TUTORIAL_ROW])).json()["meta"]["tags"] == {"model": NAME, "model_version": version}


def _tree_rss(pid: int) -> int:
    import psutil

    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def test_client_chosen_metric_keys_do_not_grow_the_v1_servers_memory(serving: LocalServing) -> None:
    # seldon-core records every metric a response carries, and echoes the request's meta.metrics into the response:
    # 1,000 requests with 20 new keys each grew the wrapper by about 38 MiB (and its latency tenfold).
    record = serving.platform.records()["seldon"]

    def send(start: int, count: int) -> None:
        with requests.Session() as session:
            for request in range(start, start + count):
                metrics = [{"key": f"k{request}_{i}", "type": "GAUGE", "value": 1} for i in range(20)]
                body = json.dumps({"meta": {"metrics": metrics}, "data": {"ndarray": [TUTORIAL_ROW]}})
                answer = session.post(serving.endpoints(NAME)["v1"], data=body, timeout=60,
                                      headers={"Content-Type": "application/json"})
                assert answer.status_code == 200, answer.text

    send(0, 200)  # warm every worker up first
    before = _tree_rss(record.pid)
    send(200, 1000)
    grown = _tree_rss(record.pid) - before
    assert grown < 8 * 2**20, f"the wrapper grew by {grown / 2**20:.1f} MiB"


def test_a_regressor_asked_for_probabilities_answers_400_on_every_protocol(serving: LocalServing) -> None:
    # The served wine model is an ElasticNet: it has no classes, hence no predict_proba.
    import grpc
    from mlserver.grpc import dataplane_pb2 as pb
    from mlserver.grpc import dataplane_pb2_grpc

    from kfops_serving.protocols import served_model_name
    from loadtest.payloads import open_inference_grpc

    body = {"inputs": [{"name": "input-0", "shape": [1, 11], "datatype": "FP64", "data": TUTORIAL_ROW}],
            "outputs": [{"name": "predict_proba"}]}
    answer = requests.post(serving.endpoints(NAME)["v2"], json=body, timeout=60)
    assert answer.status_code == 400, answer.text
    assert "not a classifier" in answer.json()["error"]
    request = open_inference_grpc([TUTORIAL_ROW], served_model_name(NAME))
    request.outputs.append(pb.ModelInferRequest.InferRequestedOutputTensor(name="predict_proba"))
    target = serving.endpoints(NAME)["v2-grpc"].removeprefix("grpc://")
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as refused:
        dataplane_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert "not a classifier" in (refused.value.details() or "")
    answer = v1(serving, json.dumps({"meta": {"tags": {"predict_proba": True}},
                                     "data": {"ndarray": [TUTORIAL_ROW]}}).encode())
    assert answer.status_code == 400, answer.text
    assert "not a classifier" in answer.json()["status"]["info"]
    v2_predictions(v2(serving, open_inference_v2([TUTORIAL_ROW])))
    v1_predictions(v1(serving, seldon_v1([TUTORIAL_ROW])))
