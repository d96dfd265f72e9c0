"""Request bodies of the protocols kfops serves (and of MLflow's own scoring server, the benchmark's baseline)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

#: Seldon (v1) protocol prediction path (the seldon-core wrapper, and Seldon Core's executor in front of it).
V1_PREDICTIONS_PATH = "/api/v1.0/predictions"
#: Readiness path of the seldon-core wrapper.
V1_READY_PATH = "/health/status"
#: Liveness path of the seldon-core wrapper: answers before any model is loaded (seldon-core's ``/health/ping``).
V1_LIVE_PATH = "/health/ping"
#: Open Inference (v2) protocol server readiness path: ready with every model loaded, or with none.
V2_SERVER_READY_PATH = "/v2/health/ready"
#: MLflow scoring server's path (``mlflow models serve``, the benchmark's baseline).
MLFLOW_INVOCATIONS_PATH = "/invocations"


_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def served_model_name(registered_name: str) -> str:
    """The name a registered model is served under over the v2 protocol, on both targets.

    Seldon Core names MLServer's model after the graph node, whose container name must be a DNS label; kfops names
    the node after the registered model, made a DNS label: lower case, runs of other characters as one dash, at most
    63 characters.

    Raises:
        ValueError: Nothing of the name is usable (it must contain a letter first).
    """
    name = _NOT_DNS.sub("-", registered_name.lower()).strip("-")[:63].rstrip("-")
    if not name or not name[0].isalpha():
        raise ValueError(f"model name {registered_name!r} cannot name a serving container: it needs a letter first, "
                         "then letters, digits or dashes")
    return name


def v2_infer_path(model: str) -> str:
    """Open Inference (v2) protocol inference path of ``model``."""
    return f"/v2/models/{model}/infer"


def v2_ready_path(model: str) -> str:
    """Open Inference (v2) protocol readiness path of ``model``."""
    return f"/v2/models/{model}/ready"


def seldon_v1(rows: Sequence[Sequence[float]]) -> bytes:
    """Seldon protocol body for ``/api/v1.0/predictions``, as the Kubeflow tutorial sends it."""
    return json.dumps({"data": {"ndarray": [list(row) for row in rows]}}).encode()


def open_inference_v2(rows: Sequence[Sequence[float]]) -> bytes:
    """Open Inference (v2) body for ``/v2/models/<name>/infer``: one 2-D FP64 tensor, columns in signature order."""
    flat = [float(value) for row in rows for value in row]
    return json.dumps({"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0]) if rows else 0],
                                   "datatype": "FP64", "data": flat}]}).encode()


def mlflow_invocations(rows: Sequence[Sequence[float]], columns: Sequence[str]) -> bytes:
    """MLflow scoring server body for ``/invocations``: a split-oriented DataFrame."""
    return json.dumps({"dataframe_split": {"columns": list(columns), "data": [list(row) for row in rows]}}).encode()
