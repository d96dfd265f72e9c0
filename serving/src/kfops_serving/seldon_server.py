"""The Seldon (v1) protocol server for :class:`kfops_serving.seldon_model.KfopsModel`, on both targets.

The pieces ``seldon-core-microservice`` assembles (seldon-core's Flask app, its metrics, its gunicorn application
class), plus what the stock command lacks: every malformed request is a 400 naming the problem (a body or form field
that is not JSON would be seldon-core's catch-all 500), HTTP errors keep their status (a 413 would become a 500), and
a request size limit.

On a cluster the v1 image runs ``python -m kfops_serving.seldon_server --host 0.0.0.0`` and reads what Seldon Core's
operator sets: the port (``PREDICTIVE_UNIT_HTTP_SERVICE_PORT``) and the graph's parameters
(``PREDICTIVE_UNIT_PARAMETERS``: the model's directory, name and version). Locally the platform starts it on
127.0.0.1 with a pointer file instead (see :class:`~kfops_serving.seldon_model.KfopsModel`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable
from functools import partial
from typing import Any


def _bool(value: str) -> bool:
    return str(value).lower() == "true"


#: Seldon's parameter types, converted as seldon-core converts them.
_TYPES: dict[str, Callable[[str], Any]] = {"STRING": str, "INT": int, "FLOAT": float, "DOUBLE": float, "BOOL": _bool}


def graph_parameters(raw: str) -> dict[str, Any]:
    """The graph node's parameters (``PREDICTIVE_UNIT_PARAMETERS``, a JSON list) as keyword arguments."""
    return {item["name"]: _TYPES[item.get("type", "STRING")](item["value"]) for item in json.loads(raw or "[]")}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (the image passes 0.0.0.0).")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "9000")))
    parser.add_argument("--pointer", default="", help="Local target: JSON file naming the model directory to serve.")
    parser.add_argument("--acks", default="", help="Local target: directory where workers report their model.")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("GUNICORN_WORKERS", "3")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GUNICORN_THREADS", "1")))
    parser.add_argument("--max-body-mb", type=int, default=32)
    parser.add_argument("--read-timeout", type=float, default=30.0,
                        help="Seconds a client has to send its whole request; then it is answered 408.")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from seldon_core.gunicorn_utils import UserModelApplication, post_worker_init, worker_exit
    from seldon_core.metrics import SeldonMetrics

    from kfops_serving.seldon_model import KfopsModel

    if args.pointer:
        user_model = KfopsModel(pointer=args.pointer, acks=args.acks)
    else:
        user_model = KfopsModel(**graph_parameters(os.environ.get("PREDICTIVE_UNIT_PARAMETERS", "")))
    metrics = SeldonMetrics(worker_id_func=os.getpid)
    app = build_app(user_model, metrics, args.max_body_mb)
    preload_libraries()
    # Requests are read in full by each worker's event loop before a thread sees them (kfops_serving.seldon_worker):
    # clients that stall mid-upload hold no thread and are answered 408 after --read-timeout seconds. The workers
    # fork from this process, so they inherit these settings.
    from kfops_serving.seldon_worker import BufferingWorker

    BufferingWorker.read_timeout = args.read_timeout
    BufferingWorker.max_body = args.max_body_mb * 1024 * 1024
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.workers,
        "threads": args.threads,
        "worker_class": f"{BufferingWorker.__module__}.{BufferingWorker.__name__}",
        "timeout": 60,
        # One request per connection, as gunicorn's sync worker (the previous one) served them.
        "keepalive": 0,
        "loglevel": "info",
        "control_socket_disable": True,  # gunicorn 25+ would share one socket in $HOME between servers
        "post_worker_init": post_worker_init,
        "worker_exit": partial(worker_exit, seldon_metrics=metrics),
    }
    UserModelApplication(app, user_model, False, None, "KfopsModel", options=options).run()


def preload_libraries() -> None:
    """Import what loading a model imports (MLflow, scikit-learn, pandas) once, in the gunicorn master.

    Every worker forks with them already imported and only reads its model: a cold start imports them once instead
    of once per worker (measured with 3 workers on 2 cores: see ``benchmarks/README.md``), and the workers share those
    pages. Only imports happen before the fork: no model, no thread (each worker starts its own pointer watcher).
    """
    import importlib

    from kfops_serving.scoring import MODEL_LOAD_IMPORTS

    for module in MODEL_LOAD_IMPORTS:
        importlib.import_module(module)


def build_app(user_model: Any, metrics: Any, max_body_mb: int = 32) -> Any:
    """seldon-core's Flask app for ``user_model``, answering malformed requests with 400 and keeping HTTP codes."""
    from flask import jsonify
    from seldon_core.wrapper import get_rest_microservice
    from werkzeug.exceptions import HTTPException

    app = get_rest_microservice(user_model, metrics)
    app.config["MAX_CONTENT_LENGTH"] = max_body_mb * 1024 * 1024

    def failure(code: int, reason: str, info: str) -> Any:
        response = jsonify({"status": {"code": code, "info": info, "reason": reason, "status": "FAILURE"}})
        response.status_code = code
        return response

    @app.errorhandler(HTTPException)
    def keep_http_status(error: HTTPException) -> Any:
        return failure(error.code or 500, error.name, error.description or "")

    @app.errorhandler(json.JSONDecodeError)
    def not_json(error: json.JSONDecodeError) -> Any:
        # seldon-core parses a form or query field `json=` itself and lets the error through as a 500.
        return failure(400, "BAD_REQUEST", f"the request is not valid JSON: {error.msg} at position {error.pos}")

    @app.errorhandler(RecursionError)
    def too_deep(_error: RecursionError) -> Any:
        # json.loads recurses once per nesting level: [[[[...]]]] deep enough is a RecursionError, a 500 otherwise.
        return failure(400, "BAD_REQUEST", "the request nests JSON arrays or objects too deeply")

    @app.errorhandler(UnicodeDecodeError)
    def not_text(_error: UnicodeDecodeError) -> Any:
        return failure(400, "BAD_REQUEST", "the request body is not UTF-8 text")

    return app


if __name__ == "__main__":
    main()
