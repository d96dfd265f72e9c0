"""``KfopsModel``: the seldon-core user model that serves an MLflow pyfunc model over the Seldon (v1) protocol.

On a cluster Seldon's storage initializer downloads the model to ``/mnt/models`` and the serving image runs
``seldon-core-microservice kfops_serving.seldon_model.KfopsModel``. Locally the same class is given a *pointer file*
naming the model directory instead: when the pointer changes (a new champion was deployed) each worker loads the new
model next to the old one, swaps, and acknowledges in ``acks/<pid>.json``. Requests are served by the old model
until the new one is ready, so rolling to a new champion leaves no moment without a ready server, and a model that
fails to load is never swapped in.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfops_serving.scoring import Scorer
from kfops_serving.scoring import load as load_scorer
from kfops_serving.validation import InvalidInput

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
        target = read_pointer(self.pointer)
        self.served = load_served(target["path"], target["name"], target["version"])
        self._acknowledge(ok=True)
        threading.Thread(target=self._watch, name="kfops-model-watcher", daemon=True).start()

    def _watch(self) -> None:
        assert self.pointer is not None
        seen = self.pointer.stat().st_mtime_ns
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
        if self.acks is None or self.served is None:
            return
        self.acks.mkdir(parents=True, exist_ok=True)
        write_json_atomically(self.acks / f"{os.getpid()}.json", {
            "pid": os.getpid(), "ok": ok, "error": error, "name": self.served.name,
            "version": self.served.version, "pointer_mtime_ns": self.pointer.stat().st_mtime_ns if self.pointer
            else 0})

    def predict(self, X: Any, features_names: Any = None, meta: Any = None) -> Any:  # Seldon's argument names
        """Score a batch; a bad batch is a 400 with the reason."""
        from seldon_core.flask_utils import SeldonMicroserviceException

        served = self.served
        if served is None:
            raise SeldonMicroserviceException("the model is not loaded yet", status_code=503, reason="NOT_READY")
        try:
            return served.scorer.score(X, features_names)
        except InvalidInput as error:
            raise SeldonMicroserviceException(str(error), status_code=400, reason="BAD_REQUEST") from None

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
