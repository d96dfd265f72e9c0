"""The v1 wrapper's model started before any deployment (``kfops local up`` starts it idle): it answers liveness,
refuses predictions as not ready, and serves the model once the deploy writes the pointer."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("seldon_core")

from test_scoring import saved

pytestmark = pytest.mark.unit


def wait_for_ack(acks: Path, timeout: float = 10.0) -> dict[str, Any]:
    ack = acks / f"{os.getpid()}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ack.exists():
            return json.loads(ack.read_text())
        time.sleep(0.05)
    raise AssertionError(f"no acknowledgement in {acks} within {timeout} s")


def test_an_idle_wrapper_is_live_not_ready_then_serves_what_the_pointer_names(tmp_path: Path) -> None:
    from seldon_core.metrics import SeldonMetrics
    from sklearn.linear_model import ElasticNet
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from kfops_serving.protocols import V1_LIVE_PATH, V1_PREDICTIONS_PATH, V1_READY_PATH
    from kfops_serving.seldon_model import KfopsModel
    from kfops_serving.seldon_server import build_app

    pointer, acks = tmp_path / "seldon" / "current.json", tmp_path / "seldon" / "acks"
    model = KfopsModel(pointer=str(pointer), acks=str(acks))
    model.load()  # no pointer yet: must not fail
    metrics = SeldonMetrics(worker_id_func=os.getpid)
    try:
        client = build_app(model, metrics).test_client()
        assert client.get(V1_LIVE_PATH).status_code == 200
        assert client.get(V1_READY_PATH).status_code == 503
        answer = client.post(V1_PREDICTIONS_PATH, data=json.dumps({"data": {"ndarray": [[0.2, 0.4, 0.6]]}}),
                             content_type="application/json")
        assert answer.status_code == 503, answer.get_data(as_text=True)

        fitted = make_pipeline(StandardScaler(), ElasticNet(alpha=0.001))
        path = saved(tmp_path / "model", fitted)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.write_text(json.dumps({"name": "wine", "version": "4", "path": str(path)}))
        ack = wait_for_ack(acks)
        assert (ack["ok"], ack["name"], ack["version"]) == (True, "wine", "4"), ack
        assert client.get(V1_READY_PATH).get_json()["jsonData"] == {"model": "wine", "version": "4"}
    finally:
        metrics._manager.shutdown()


def test_an_idle_wrapper_that_cannot_load_the_model_says_so_at_once(tmp_path: Path) -> None:
    from kfops_serving.seldon_model import KfopsModel

    pointer, acks = tmp_path / "current.json", tmp_path / "acks"
    model = KfopsModel(pointer=str(pointer), acks=str(acks))
    model.load()
    pointer.write_text(json.dumps({"name": "wine", "version": "5", "path": str(tmp_path / "no-such-model")}))
    ack = wait_for_ack(acks)
    assert ack["ok"] is False, ack
    assert ack["error"], ack
