"""Exact answers: every served prediction is, to the last bit, what the model's own ``predict`` gives for exactly the
rows of that request, on every protocol, under concurrent load with malformed requests mixed in.

"The model's own predict" is the MLflow pyfunc model's ``predict(pd.DataFrame(rows, columns=signature))`` run in the
runtime's own environment (the v1 wrapper has its own Python and numpy, so its reference is computed there).
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from infra.local.services import seldon_python
from infra.local.serving import LocalServing
from kfops.base.recipes import WINE_QUALITY
from kfops_serving.protocols import open_inference_v2, seldon_v1, served_model_name
from tests.serving.conftest import NAME
from tests.serving.test_local_serving import BAD_V1, BAD_V2
from trainer.data import load_frame, split

pytestmark = pytest.mark.integration

ROWS = 10_000
CLIENTS = 8


@pytest.fixture(scope="module")
def requests_rows(versions: dict[str, str]) -> list[list[list[float]]]:
    """10,000 rows around the test split of the served data, in requests of 1 to 40 rows."""
    test_rows = split(load_frame(versions["dataset"]), WINE_QUALITY.target_column,
                      WINE_QUALITY.task).x_test.to_numpy()
    rng = np.random.default_rng(11)
    rows = test_rows[rng.integers(0, len(test_rows), ROWS)] * rng.uniform(0.9, 1.1, (ROWS, test_rows.shape[1]))
    batches, start = [], 0
    while start < ROWS:
        size = int(min(rng.integers(1, 41), ROWS - start))
        batches.append(rows[start:start + size].tolist())
        start += size
    return batches


def own_predictions(python: str, model_path: str, batches: list[list[list[float]]], tmp_path: Path) -> list[list]:
    """The model's own predict, one call per request, in the interpreter ``python``."""
    (tmp_path / "batches.json").write_text(json.dumps(batches))
    script = """
import json, sys, warnings
warnings.simplefilter("ignore")
import mlflow.pyfunc, numpy as np, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
columns = model.metadata.get_input_schema().input_names()
batches = json.load(open(sys.argv[2]))
print(json.dumps([np.asarray(model.predict(pd.DataFrame(b, columns=columns))).ravel().tolist() for b in batches]))
"""
    result = subprocess.run([python, "-c", script, model_path, str(tmp_path / "batches.json")], capture_output=True,
                            text=True, timeout=300, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def grpc_bad_requests(model: str) -> list[Any]:
    from mlserver.grpc import dataplane_pb2 as pb

    def request(shape: list[int], values: list[float], datatype: str = "FP64") -> Any:
        contents = pb.InferTensorContents(fp64_contents=values) if datatype == "FP64" else \
            pb.InferTensorContents(bytes_contents=[b"abc"] * len(values))
        tensor = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype=datatype, shape=shape,
                                                      contents=contents)
        return pb.ModelInferRequest(model_name=model, inputs=[tensor])

    row = [5.6, 0.31, 0.37, 1.4, 0.074, 12.0, 96.0, 0.9954, 3.32, 0.58, 9.2]
    return [request([2, 11], row), request([1, 10], row[:10]), request([1, 11], row, "BYTES"),
            request([1, 11], [float("nan"), *row[1:]]), pb.ModelInferRequest(model_name=model)]


@pytest.mark.parametrize("protocol", ["v2", "v2-grpc", "v1"])
def test_every_answer_is_the_models_own_predict_for_its_rows_under_mixed_load(
        serving: LocalServing, requests_rows: list[list[list[float]]], protocol: str, tmp_path: Path) -> None:
    import sys

    model_path = serving.deployed()["model"]["path"]
    python = str(seldon_python(serving.settings)) if protocol == "v1" else sys.executable
    expected = own_predictions(python, model_path, requests_rows, tmp_path)
    endpoint = serving.endpoints(NAME)[protocol]
    if protocol == "v2-grpc":
        import grpc
        from mlserver.grpc import dataplane_pb2_grpc

        from loadtest.payloads import open_inference_grpc

        channel = grpc.insecure_channel(endpoint.removeprefix("grpc://"))
        stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel)
        good: list[Any] = [open_inference_grpc(batch, served_model_name(NAME)) for batch in requests_rows]
        bad: list[Any] = grpc_bad_requests(served_model_name(NAME)) * 8

        def call(body: Any) -> tuple[str, Any]:
            try:
                answer = stub.ModelInfer(body, timeout=60)
            except grpc.RpcError as error:
                return error.code().name, error.details() or ""
            return "OK", list(answer.outputs[0].contents.fp64_contents)
    else:
        encode = seldon_v1 if protocol == "v1" else open_inference_v2
        good = [encode(batch) for batch in requests_rows]
        bad = [body for _, body in (BAD_V1 if protocol == "v1" else BAD_V2)] * 4
        session = threading.local()

        def call(body: Any) -> tuple[str, Any]:
            if not hasattr(session, "http"):
                session.http = requests.Session()
            response = session.http.post(endpoint, data=body, headers={"Content-Type": "application/json"},
                                         timeout=60)
            if response.status_code != 200:
                return str(response.status_code), response.text
            payload = response.json()
            return "OK", payload["data"]["ndarray"] if protocol == "v1" else payload["outputs"][0]["data"]

    mixed = [(i, body) for i, body in enumerate(good)] + [(-1, body) for body in bad]
    random.Random(12).shuffle(mixed)
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(lambda item: (item[0], call(item[1])), mixed))
    if protocol == "v2-grpc":
        channel.close()
    differing = 0
    for index, (status, got) in answers:
        if index < 0:
            assert status == "INVALID_ARGUMENT" if protocol == "v2-grpc" else status.startswith("4"), (status, got)
            continue
        assert status == "OK", got
        differing += sum(a != b for a, b in zip(got, expected[index], strict=True))
    assert differing == 0, f"{differing} of {ROWS} predictions differ from the model's own predict"
