"""The request profile's stage rules (benchmarks/profile_request.py), on stacks shaped as py-spy writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.profile_request import OTHER, shares, stage

pytestmark = pytest.mark.unit

LOOP = "run (asyncio/runners.py:118)"
APP = "FastAPI.__call__ (fastapi/applications.py:1054)"
PREDICT = "KfopsMLflowRuntime.predict (kfops_serving/mlserver_runtime.py:203)"


@pytest.mark.parametrize(("frames", "expected"), [
    ([LOOP, "Coalescer._run (kfops_serving/mlserver_runtime.py:150)",
      "Scorer.predict_validated (kfops_serving/scoring.py:55)", "einsum (numpy/_core/einsumfunc.py:1)"],
     "model predict"),
    ([LOOP, APP, PREDICT, "decode (kfops_serving/mlserver_runtime.py:60)",
      "check_numbers (kfops_serving/validation.py:73)"], "kfops decode and validation"),
    ([LOOP, APP, PREDICT, "BaseModel.__init__ (pydantic/main.py:280)"], "response"),
    ([LOOP, APP, "solve_dependencies (fastapi/dependencies/utils.py:600)",
      "TypeAdapter.validate_python (pydantic/type_adapter.py:410)"], "request parsing (FastAPI, pydantic)"),
    ([LOOP, APP, "DataPlane.infer (mlserver/handlers/dataplane.py:95)",
      "MetricWrapperBase.labels (prometheus_client/metrics.py:176)"],
     "MLServer data plane (lookup, context, metrics)"),
    ([LOOP, "HttpToolsProtocol.data_received (uvicorn/protocols/http/httptools_impl.py:120)"],
     "HTTP server and ASGI (uvicorn, Starlette)"),
    ([LOOP], OTHER),
])
def test_each_sample_goes_to_its_most_specific_stage(frames: list[str], expected: str) -> None:
    assert stage(frames) == expected


def test_raw_output_is_counted_per_stage(tmp_path: Path) -> None:
    raw = tmp_path / "mlserver.raw"
    raw.write_text(f"{LOOP};{APP};{PREDICT} 7\n{LOOP} 3\n")
    assert shares(raw) == ({"response": 7, OTHER: 3}, 10)
