"""``KfopsModel``: the seldon-core user model that serves an MLflow pyfunc model over the Seldon (v1) protocol.

It reads the request itself (``predict_raw``): ``data.ndarray`` (rows) or ``data.tensor`` (shape and values), with
optional ``names``; anything else, ragged rows, a shape its values do not fill, or ``"data": null`` is a 400 naming
the problem, where seldon-core's own parsing would answer 500. The answer has seldon-core's shape (its
``construct_response_json``) with the model's name and version in ``meta.tags``. With ``meta.tags.predict_proba:
true`` a classifier answers its own ``predict_proba`` instead, with ``names`` its classes (see
:mod:`kfops_serving.outputs`).

On a cluster Seldon's storage initializer downloads the model to ``/mnt/models`` and the serving image runs
``python -m kfops_serving.seldon_server`` (seldon-core's server for this class). Locally the same class is given a
*pointer file* naming the model directory instead: when the pointer changes (a new champion was deployed) each
worker loads the new model next to the old one, swaps, and acknowledges in ``acks/<pid>.json``. Requests are served
by the old model until the new one is ready, so rolling to a new champion leaves no moment without a ready server,
and a model that fails to load is never swapped in.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfops_serving import outputs
from kfops_serving.scoring import Scorer
from kfops_serving.scoring import load as load_scorer
from kfops_serving.validation import InvalidInput, to_array

logger = logging.getLogger(__name__)

#: How often a worker looks at the pointer file (a ``stat``; cheap).
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Served:
    """A loaded model and what it is."""

    scorer: Scorer
    name: str
    version: str
    path: str


def load_served(path: str, name: str = "model", version: str = "") -> Served:
    """Load the MLflow model in the local directory ``path``.

    Raises:
        ValueError: The model has no input signature (a request could not be checked against it).
    """
    return Served(scorer=load_scorer(path), name=name, version=version, path=path)


def read_pointer(pointer: Path) -> dict[str, str]:
    """The deployment the pointer names: ``{"name", "version", "path"}``."""
    data = json.loads(pointer.read_text())
    return {"name": str(data["name"]), "version": str(data["version"]), "path": str(data["path"])}


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Replace ``path`` with ``payload`` so readers see the old or the new content, never half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def read_request(request: Any) -> tuple[list[Any], list[str] | None]:
    """The rows and feature names of a Seldon protocol request.

    Raises:
        InvalidInput: Not a JSON object with ``data.ndarray`` or ``data.tensor``; ragged rows; a tensor whose shape
            and values disagree; names that are not a list of strings.
    """
    if not isinstance(request, dict):
        raise InvalidInput('the request must be a JSON object: {"data": {"ndarray": [[...], ...]}}')
    data = request.get("data")
    if not isinstance(data, dict):
        other = next((key for key in ("jsonData", "strData", "binData") if key in request), None)
        raise InvalidInput(f"this model scores numbers: send data.ndarray or data.tensor, not {other}" if other else
                           'the request has no data: send {"data": {"ndarray": [[...], ...]}} or data.tensor')
    names = data.get("names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise InvalidInput("data.names must be a list of feature names")
    if "ndarray" in data:
        rows = data["ndarray"]
        if not isinstance(rows, list):
            raise InvalidInput("data.ndarray must be a list of rows")
        if rows and all(isinstance(row, list) for row in rows):
            widths = {len(row) for row in rows}
            if len(widths) > 1:
                first = len(rows[0])
                bad = next(i for i, row in enumerate(rows) if len(row) != first)
                raise InvalidInput(f"data.ndarray is ragged: row 0 has {first} values, row {bad} has "
                                   f"{len(rows[bad])}")
            if any(isinstance(value, list) for row in rows for value in row):
                raise InvalidInput("data.ndarray must be rows of numbers (2-D)")
        elif any(isinstance(row, list) for row in rows):
            raise InvalidInput("data.ndarray mixes rows and single values")
        return rows, names or None
    if "tensor" in data:
        tensor = data["tensor"]
        if not isinstance(tensor, dict) or not isinstance(tensor.get("values"), list) \
                or not isinstance(tensor.get("shape"), list):
            raise InvalidInput("data.tensor needs a shape (list) and values (list)")
        shape, values = tensor["shape"], tensor["values"]
        if not shape or any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape) or len(shape) > 2:
            raise InvalidInput("data.tensor.shape must be [rows, features] or [features]: one or two counts")
        expected = shape[0] * (shape[1] if len(shape) == 2 else 1)
        if len(values) != expected:
            raise InvalidInput(f"data.tensor.shape holds {expected} values, but {len(values)} were sent")
        if any(isinstance(v, list) for v in values):
            raise InvalidInput("data.tensor.values must be a flat list of numbers")
        rows = [values] if len(shape) == 1 else [values[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]
        return rows, names or None
    raise InvalidInput("data must hold ndarray or tensor (this model does not read tftensor)")


#: Metric types of the Seldon protocol's ``Metric`` message.
METRIC_TYPES = frozenset({"COUNTER", "GAUGE", "TIMER"})


def read_meta(request: dict[str, Any]) -> dict[str, Any] | None:
    """The request's ``meta`` checked against the Seldon protocol's ``Meta`` message, without its ``metrics``.

    ``Meta`` is ``{puid: string, tags: map<string, Value>, routing: map<string, int32>, requestPath: map<string,
    string>, metrics: [Metric]}`` with ``Metric = {key: string, type: COUNTER|GAUGE|TIMER, value: float, tags:
    map<string, string>}``. Client metrics are checked and then dropped: seldon-core would record every key a client
    invents, in every worker, for as long as the worker lives (memory and latency without bound).

    Raises:
        InvalidInput: A field of the wrong shape.
    """
    meta = request.get("meta")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise InvalidInput("meta must be an object (Seldon's Meta: puid, tags, routing, requestPath, metrics)")
    if not isinstance(meta.get("puid", ""), str):
        raise InvalidInput("meta.puid must be a string")
    for field, kind, check in (("tags", "any JSON values", lambda _v: True),
                               ("routing", "integers", lambda v: type(v) is int and -2**31 <= v < 2**31),
                               ("requestPath", "strings", lambda v: isinstance(v, str))):
        value = meta.get(field, {})
        if not isinstance(value, dict) or not all(check(v) for v in value.values()):
            raise InvalidInput(f"meta.{field} must be an object whose values are {kind}")
    metrics = meta.get("metrics", [])
    if not isinstance(metrics, list):
        raise InvalidInput("meta.metrics must be a list of metrics ({key, type, value, tags})")
    for index, metric in enumerate(metrics):
        if not isinstance(metric, dict) or not isinstance(metric.get("key"), str):
            raise InvalidInput(f"meta.metrics[{index}] must be an object with a string key")
        if metric.get("type", "COUNTER") not in METRIC_TYPES:
            raise InvalidInput(f"meta.metrics[{index}].type must be COUNTER, GAUGE or TIMER")
        value = metric.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInput(f"meta.metrics[{index}].value must be a finite number")
        tags = metric.get("tags", {})
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise InvalidInput(f"meta.metrics[{index}].tags must be an object of strings")
    return {key: value for key, value in meta.items() if key != "metrics"}


class KfopsModel:
    """Seldon user model serving one MLflow model.

    Args:
        model_uri: Local directory of the MLflow model (cluster: ``/mnt/models``), used when there is no pointer.
        model_name: Registered name of that model (cluster: a graph parameter), reported with every answer.
        model_version: Its registered version (cluster: a graph parameter).
        pointer: Local target only: JSON file naming the model to serve; watched for changes.
        acks: Local target only: directory where each worker reports what it serves.
    """

    def __init__(self, model_uri: str = "/mnt/models", model_name: str = "model", model_version: str = "",
                 pointer: str = "", acks: str = "") -> None:
        self.model_uri = model_uri
        self.model_name = model_name
        self.model_version = model_version
        self.pointer = Path(pointer) if pointer else None
        self.acks = Path(acks) if acks else None
        self.served: Served | None = None

    def load(self) -> None:
        """Load the model (seldon-core calls this once in every worker process)."""
        if self.pointer is None:
            self.served = load_served(self.model_uri, self.model_name, self.model_version)
            return
        try:
            seen = self.pointer.stat().st_mtime_ns
        except FileNotFoundError:
            # Started before any deployment (`kfops local up`): no model until the deploy writes the pointer.
            seen = 0
        else:
            target = read_pointer(self.pointer)
            self.served = load_served(target["path"], target["name"], target["version"])
            self._acknowledge(ok=True)
        threading.Thread(target=self._watch, args=(seen,), name="kfops-model-watcher", daemon=True).start()

    def _watch(self, seen: int) -> None:
        assert self.pointer is not None
        while True:
            time.sleep(POLL_SECONDS)
            try:
                changed = self.pointer.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if changed == seen:
                continue
            seen = changed
            try:
                target = read_pointer(self.pointer)
                if self.served and (target["name"], target["version"]) == (self.served.name, self.served.version):
                    continue
                replacement = load_served(target["path"], target["name"], target["version"])
            except Exception as error:  # keep serving the current model whatever went wrong
                logger.exception("could not load the model the pointer names; still serving the previous one")
                self._acknowledge(ok=False, error=f"{type(error).__name__}: {error}")
                continue
            self.served = replacement  # one reference assignment: requests see the old model or the new one
            logger.info("now serving %s version %s", replacement.name, replacement.version)
            self._acknowledge(ok=True)

    def _acknowledge(self, ok: bool, error: str = "") -> None:
        if self.acks is None:
            return
        # A worker that serves nothing yet (started idle) still says why a load failed, so the deploy fails at once.
        name, version = (self.served.name, self.served.version) if self.served else ("", "")
        self.acks.mkdir(parents=True, exist_ok=True)
        write_json_atomically(self.acks / f"{os.getpid()}.json", {
            "pid": os.getpid(), "ok": ok, "error": error, "name": name,
            "version": version, "pointer_mtime_ns": self.pointer.stat().st_mtime_ns if self.pointer
            else 0})

    def predict_raw(self, request: Any) -> Any:
        """Answer a Seldon protocol request (a JSON object) with predictions, or a 400 naming what is wrong."""
        from seldon_core.flask_utils import SeldonMicroserviceException
        from seldon_core.utils import construct_response_json

        try:
            rows, names = read_request(request)
            meta = read_meta(request)
            probabilities = outputs.wants_probabilities(meta)
        except InvalidInput as error:
            raise SeldonMicroserviceException(str(error), status_code=400, reason="BAD_REQUEST") from None
        if not probabilities:
            predictions = self.predict(rows, names)
            # Client metrics are not passed on: seldon-core records whatever metrics a response carries.
            return construct_response_json(self, False, request, predictions, meta=meta)
        served = self._served()
        try:
            answer = served.scorer.probabilities(to_array(rows, served.scorer.columns, names))
        except InvalidInput as error:
            raise SeldonMicroserviceException(str(error), status_code=400, reason="BAD_REQUEST") from None
        response = construct_response_json(self, False, request, answer, meta=meta)
        response["data"]["names"] = outputs.class_names(served.scorer.classes or [])
        return response

    def predict(self, X: Any, features_names: Any = None, meta: Any = None) -> Any:  # Seldon's argument names
        """Score a batch; a bad batch is a 400 with the reason."""
        from seldon_core.flask_utils import SeldonMicroserviceException

        served = self._served()
        try:
            return served.scorer.score(X, features_names)
        except InvalidInput as error:
            raise SeldonMicroserviceException(str(error), status_code=400, reason="BAD_REQUEST") from None

    def _served(self) -> Served:
        from seldon_core.flask_utils import SeldonMicroserviceException

        served = self.served
        if served is None:
            raise SeldonMicroserviceException("the model is not loaded yet", status_code=503, reason="NOT_READY")
        return served

    def health_status(self) -> dict[str, str]:
        """Readiness answer: which model and version this worker serves."""
        from seldon_core.flask_utils import SeldonMicroserviceException

        if self.served is None:
            raise SeldonMicroserviceException("the model is not loaded yet", status_code=503, reason="NOT_READY")
        return {"model": self.served.name, "version": self.served.version}

    def tags(self) -> dict[str, str]:
        """Added to every response's ``meta.tags``: the model version that produced it."""
        served = self.served
        return {"model": served.name, "model_version": served.version} if served else {}
