"""The targets the serving benchmarks compare: kfops' endpoints and the peers, tuned as a user would tune them.

Targets, all serving the same registered wine-quality ElasticNet (one downloaded model directory), each on free ports:
- kfops v2: MLServer with the kfops runtime, default settings (every request validated and answered alone);
- kfops v1: the seldon-core wrapper, default settings;
- kfops v2 over gRPC: the same MLServer's Open Inference gRPC port;
- ``mlflow models serve --env-manager local`` with as many uvicorn workers as cores (its default is one);
- stock MLServer 1.7.1 with its MLflow runtime and default settings (one input per column, as it expects);
- the stock ``seldon-core-microservice`` with a user's ten-line MLflow class (``peers/MlflowModel.py``), at its
  default settings and with as many gunicorn workers as cores;
- KServe's Python model server (``kserve.ModelServer``, its own venv ``.venv-kserve``) with a user's ten-line
  ``kserve.Model`` (``peers/kserve_model.py``), tuned as KServe's custom predictor guide says: as many uvicorn workers
  as cores (``--workers``), and no log line per request (``--enable_latency_logging false``, and
  ``peers/kserve-logging.json`` through ``--log_config_file``, which keeps its start-up log);
- the ceiling: a constant-answer ASGI app under uvicorn with as many workers as cores (parses the JSON body only).

Each target is named by the Locust user class that loads it (``loadtest/locustfile.py``); the class also says which
request body it takes, so the latency benchmark sends the same bodies.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import BIN, Served, progress
from kfops.base.paths import REPO_ROOT

PEERS = REPO_ROOT / "benchmarks" / "peers"
CORES = os.cpu_count() or 1
#: The seldon-core environment (Python 3.12): ``KFOPS_SELDON_PYTHON``'s, as kfops' own wrapper, else this checkout's.
SELDON_BIN = (Path(os.environ["KFOPS_SELDON_PYTHON"]).parent if os.environ.get("KFOPS_SELDON_PYTHON")
              else REPO_ROOT / ".venv-seldon" / "bin")
#: The KServe peer's environment, made by ``make bench`` from ``KSERVE_REQUIREMENTS``.
KSERVE_PYTHON = Path(os.environ.get("KFOPS_KSERVE_PYTHON") or REPO_ROOT / ".venv-kserve" / "bin" / "python")
KSERVE_REQUIREMENTS = PEERS / "kserve-requirements.txt"


def pinned_version(requirements: str, package: str) -> str:
    """The exact version ``requirements`` (a pip requirements file's text) pins ``package`` to.

    Raises:
        ValueError: ``package`` is not pinned with ``==``.
    """
    pattern = re.compile(rf"^\s*{re.escape(package)}\s*==\s*([^\s;#]+)", re.IGNORECASE | re.MULTILINE)
    found = pattern.search(requirements)
    if not found:
        raise ValueError(f"{package} is not pinned with == in the requirements")
    return found.group(1)


KSERVE_VERSION = pinned_version(KSERVE_REQUIREMENTS.read_text(), "kserve")

KFOPS_V2, KFOPS_V1 = "kfops v2 (MLServer + kfops runtime)", "kfops v1 (seldon-core wrapper)"
KFOPS_GRPC = "kfops v2 over gRPC (same MLServer)"
MLFLOW = f"mlflow models serve, {CORES} workers"
STOCK_MLSERVER = "stock MLServer 1.7.1 + MLflow runtime, defaults"
STOCK_SELDON, STOCK_SELDON_TUNED = ("stock seldon-core-microservice, defaults",
                                    f"stock seldon-core-microservice, {CORES} workers")
KSERVE = f"KServe {KSERVE_VERSION} ModelServer, {CORES} workers"
CEILING = f"ceiling: constant-answer ASGI app, {CORES} workers"
#: Targets that run a model (the ceiling answers a constant).
MODEL_SERVERS = (KFOPS_V2, KFOPS_V1, KFOPS_GRPC, MLFLOW, STOCK_MLSERVER, STOCK_SELDON, STOCK_SELDON_TUNED, KSERVE)


def free_port() -> int:
    from infra.local.processes import free_port as free

    return free()


#: Attempts at starting a peer whose freshly chosen port another process took first (a shared machine runs tests).
PORT_ATTEMPTS = 3


def port_was_taken(message: str, log_tail: str) -> bool:
    """Whether a failed start-up was a port race: the port was in use before the start, or the peer could not bind."""
    return "already in use" in message or "address already in use" in log_tail.lower()


def start_peer(stack: contextlib.ExitStack, argv: Callable[[int], list[str]], ready_path: str, *, log: Path,
               env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start a peer as kfops runs its own services (its own process group, ready-checked, stopped as a group when
    ``stack`` closes) on a port chosen just before; its port.

    ``argv(port)`` is its command line for the HTTP port ``port`` (any other port it needs it chooses itself, then).
    A port taken between being chosen and bound is chosen again, up to ``PORT_ATTEMPTS`` times.
    """
    from infra.local.processes import ServiceSpec, start_service, stop_service, tail
    from kfops.base.errors import KfopsError

    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        spec = ServiceSpec(name=log.stem, title=log.stem, argv=argv(port), env=env or {}, ports={"http": port},
                           ready_url=f"{url}{ready_path}", url=url, cwd=cwd)
        try:
            record = start_service(spec, log, timeout=180, grace=20)
        except KfopsError as error:
            if attempt == PORT_ATTEMPTS or not port_was_taken(str(error), tail(log, 8)):
                raise
            progress(f"{log.stem}: a port was taken before it could bind ({error}); choosing others")
            continue
        stack.callback(stop_service, record, grace=20)
        return port
    raise AssertionError("unreachable")


def kserve_python() -> Path:
    """The KServe peer's interpreter.

    Raises:
        FileNotFoundError: ``.venv-kserve`` was not made (``make bench`` makes it).
    """
    if not KSERVE_PYTHON.is_file():
        raise FileNotFoundError(f"the KServe peer's environment is missing ({KSERVE_PYTHON}): run "
                                "`make .venv-kserve/.installed` (`make bench` does), or set KFOPS_KSERVE_PYTHON")
    return KSERVE_PYTHON


@contextlib.contextmanager
def peers(served: Served) -> Iterator[dict[str, tuple[str, str]]]:
    """Start every peer on free ports; yield ``{target: (Locust user class, host)}`` including kfops' own."""
    from kfops_serving.protocols import served_model_name, v2_ready_path

    work = served.workdir
    env = {"PATH": f"{BIN}:{os.environ['PATH']}"}
    name = served_model_name(served.model_name)
    stock_repo = work / "stock-mlserver"
    stock_repo.mkdir()
    (stock_repo / "model-settings.json").write_text(json.dumps({
        "name": name, "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": served.model_dir}}))
    seldon_env = {"MODEL_DIR": served.model_dir, "PATH": f"{SELDON_BIN}:{os.environ['PATH']}"}
    # Nothing of kfops' checkout on the peer's path: it runs on its own environment alone.
    kserve_env = {"MODEL_DIR": served.model_dir, "PYTHONPATH": ""}

    def mlflow(port: int) -> list[str]:
        return [str(BIN / "mlflow"), "models", "serve", "-m", served.model_dir, "--env-manager", "local",
                "-h", "127.0.0.1", "-p", str(port), "-w", str(CORES)]

    def stock_mlserver(port: int) -> list[str]:
        (stock_repo / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port()}))
        return [str(BIN / "mlserver"), "start", str(stock_repo)]

    def seldon(*extra: str) -> Callable[[int], list[str]]:
        return lambda port: [str(SELDON_BIN / "seldon-core-microservice"), "MlflowModel", "--http-port", str(port),
                             "--grpc-port", str(free_port()), "--metrics-port", str(free_port()), *extra]

    def kserve(port: int) -> list[str]:
        return [str(kserve_python()), str(PEERS / "kserve_model.py"), "--model_name", name,
                "--http_port", str(port), "--grpc_port", str(free_port()), "--workers", str(CORES),
                "--enable_latency_logging", "false", "--log_config_file", str(PEERS / "kserve-logging.json")]

    def ceiling(port: int) -> list[str]:
        return [str(BIN / "uvicorn"), "ceiling:app", "--app-dir", str(PEERS), "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(CORES), "--no-access-log", "--log-level", "warning"]

    with contextlib.ExitStack() as stack:
        progress("starting the peers")
        ports = {
            "mlflow": start_peer(stack, mlflow, "/ping", env=env, log=work / "mlflow-serve.log"),
            "mlserver": start_peer(stack, stock_mlserver, v2_ready_path(name), env=env,
                                   log=work / "stock-mlserver.log"),
            "seldon": start_peer(stack, seldon(), "/health/ping", env=seldon_env, cwd=PEERS,
                                 log=work / "stock-seldon.log"),
            "seldon-tuned": start_peer(stack, seldon("--workers", str(CORES)), "/health/ping", env=seldon_env,
                                       cwd=PEERS, log=work / "stock-seldon-tuned.log"),
            "kserve": start_peer(stack, kserve, v2_ready_path(name), env=kserve_env, cwd=PEERS,
                                 log=work / "kserve.log"),
            "ceiling": start_peer(stack, ceiling, "/", log=work / "ceiling.log"),
        }
        yield {
            KFOPS_V2: ("OpenInferenceUser", served.host("v2")),
            KFOPS_V1: ("SeldonUser", served.host("v1")),
            KFOPS_GRPC: ("OpenInferenceGrpcUser", served.host("v2-grpc")),
            MLFLOW: ("MlflowServeUser", f"http://127.0.0.1:{ports['mlflow']}"),
            STOCK_MLSERVER: ("StockMLServerUser", f"http://127.0.0.1:{ports['mlserver']}"),
            STOCK_SELDON: ("SeldonUser", f"http://127.0.0.1:{ports['seldon']}"),
            STOCK_SELDON_TUNED: ("SeldonUser", f"http://127.0.0.1:{ports['seldon-tuned']}"),
            KSERVE: ("OpenInferenceUser", f"http://127.0.0.1:{ports['kserve']}"),
            CEILING: ("OpenInferenceUser", f"http://127.0.0.1:{ports['ceiling']}"),
        }


def http_request(user: str, model: str, row: Sequence[float], columns: Sequence[str]) -> tuple[str, bytes]:
    """Path and body of one prediction request of ``row``, as the Locust user class ``user`` sends it."""
    from kfops_serving.protocols import (
        MLFLOW_INVOCATIONS_PATH,
        V1_PREDICTIONS_PATH,
        mlflow_invocations,
        open_inference_v2,
        seldon_v1,
        served_model_name,
        v2_infer_path,
    )
    from loadtest.payloads import open_inference_columns

    rows = [list(row)]
    if user == "OpenInferenceUser":
        return v2_infer_path(served_model_name(model)), open_inference_v2(rows)
    if user == "StockMLServerUser":
        return v2_infer_path(served_model_name(model)), open_inference_columns(rows, columns)
    if user == "SeldonUser":
        return V1_PREDICTIONS_PATH, seldon_v1(rows)
    if user == "MlflowServeUser":
        return MLFLOW_INVOCATIONS_PATH, mlflow_invocations(rows, columns)
    raise ValueError(f"no HTTP request defined for the Locust user {user!r}")


def json_prediction(user: str, answer: Mapping[str, Any]) -> float:
    """The one prediction in a JSON answer to :func:`http_request`'s request.

    Raises:
        ValueError: The answer does not hold exactly one number where the protocol puts it.
    """
    if user in ("OpenInferenceUser", "StockMLServerUser"):
        values = answer["outputs"][0]["data"]
    elif user == "SeldonUser":
        data = answer["data"]
        values = data["ndarray"] if "ndarray" in data else data["tensor"]["values"]
    elif user == "MlflowServeUser":
        values = answer["predictions"]
    else:
        raise ValueError(f"no answer format defined for the Locust user {user!r}")
    flat = list(_flatten(values))
    if len(flat) != 1:
        raise ValueError(f"expected one prediction, got {flat!r}")
    return float(flat[0])


def _flatten(values: Any) -> Iterator[Any]:
    if isinstance(values, list):
        for value in values:
            yield from _flatten(value)
    elif isinstance(values, Mapping):  # mlflow's split-oriented answer: {"0": value} or {"predictions": value}
        for value in values.values():
            yield from _flatten(value)
    else:
        yield values


def grpc_prediction(answer: Any) -> float:
    """The one prediction in a ``ModelInferResponse`` (typed contents or raw little-endian FP64 bytes)."""
    import struct

    output = answer.outputs[0]
    values = list(output.contents.fp64_contents)
    if not values and answer.raw_output_contents:
        raw = answer.raw_output_contents[0]
        values = list(struct.unpack(f"<{len(raw) // 8}d", raw))
    if len(values) != 1:
        raise ValueError(f"expected one prediction, got {values!r}")
    return float(values[0])


def disagreements(predictions: Mapping[str, float], reference: str, rel_tol: float = 1e-9) -> list[str]:
    """Targets whose prediction differs from ``reference``'s by more than ``rel_tol`` (relative)."""
    expected = predictions[reference]
    return [name for name, value in predictions.items()
            if not math.isclose(value, expected, rel_tol=rel_tol, abs_tol=1e-12)]


def predict_once(user: str, host: str, model: str, row: Sequence[float], columns: Sequence[str]) -> float:
    """One prediction of ``row`` from the target ``host``, over its protocol."""
    if user == "OpenInferenceGrpcUser":
        import grpc
        from mlserver.grpc import dataplane_pb2_grpc

        from kfops_serving.protocols import served_model_name
        from loadtest.payloads import open_inference_grpc

        with grpc.insecure_channel(host.removeprefix("grpc://")) as channel:
            stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel)
            return grpc_prediction(stub.ModelInfer(open_inference_grpc([list(row)], served_model_name(model)),
                                                   timeout=30))
    import http.client
    from urllib.parse import urlsplit

    path, body = http_request(user, model, row, columns)
    where = urlsplit(host)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        text = response.read()
        if response.status != 200:
            raise RuntimeError(f"{host}{path} answered {response.status}: {text[:300]!r}")
        return json_prediction(user, json.loads(text))
    finally:
        connection.close()


def check_predictions(targets: Mapping[str, tuple[str, str]], model: str) -> dict[str, float]:
    """Every model server's prediction for the same dataset row; raise unless all equal kfops v2's.

    Raises:
        RuntimeError: A target answered another prediction than kfops v2 (the comparison would be meaningless).
    """
    from loadtest.payloads import feature_rows

    columns, rows = feature_rows()
    predictions = {name: predict_once(user, host, model, rows[0], columns)
                   for name, (user, host) in targets.items() if name in MODEL_SERVERS}
    wrong = disagreements(predictions, KFOPS_V2)
    if wrong:
        raise RuntimeError(f"targets answer other predictions than {KFOPS_V2} for the same row: "
                           + ", ".join(f"{name}: {predictions[name]!r}" for name in wrong)
                           + f" (kfops v2: {predictions[KFOPS_V2]!r})")
    progress(f"every model server answers the same prediction for the first row: {predictions[KFOPS_V2]!r}")
    return predictions
