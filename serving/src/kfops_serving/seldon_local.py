"""Run the seldon-core REST server for :class:`kfops_serving.seldon_model.KfopsModel` on the local target.

The same seldon-core pieces ``seldon-core-microservice`` assembles (its Flask app, metrics, gunicorn application
class), with what a developer machine needs instead of a pod: bound to 127.0.0.1 only (the stock CLI binds
0.0.0.0), no gRPC or separate metrics port, a request size limit, and HTTP errors keeping their status (seldon-core's
catch-all handler would turn a 413 into a 500). Run with the seldon venv's Python:
``python -m kfops_serving.seldon_local --port 9000 --pointer current.json --acks acks/``.
"""

from __future__ import annotations

import argparse
import logging
import os
from functools import partial


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pointer", required=True, help="JSON file naming the model directory to serve.")
    parser.add_argument("--acks", required=True, help="Directory where workers report the model they serve.")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("GUNICORN_WORKERS", "2")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GUNICORN_THREADS", "4")))
    parser.add_argument("--max-body-mb", type=int, default=32)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from flask import jsonify
    from seldon_core.gunicorn_utils import UserModelApplication, post_worker_init, worker_exit
    from seldon_core.metrics import SeldonMetrics
    from seldon_core.wrapper import get_rest_microservice
    from werkzeug.exceptions import HTTPException

    from kfops_serving.seldon_model import KfopsModel

    user_model = KfopsModel(pointer=args.pointer, acks=args.acks)
    metrics = SeldonMetrics(worker_id_func=os.getpid)
    app = get_rest_microservice(user_model, metrics)
    app.config["MAX_CONTENT_LENGTH"] = args.max_body_mb * 1024 * 1024

    @app.errorhandler(HTTPException)
    def keep_http_status(error: HTTPException) -> object:
        response = jsonify({"status": {"code": error.code, "info": error.description, "reason": error.name,
                                       "status": "FAILURE"}})
        response.status_code = error.code or 500
        return response

    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.workers,
        "threads": args.threads,
        "timeout": 60,
        "keepalive": 5,
        "loglevel": "info",
        "control_socket_disable": True,  # gunicorn 25+ would share one socket in $HOME between servers
        "post_worker_init": post_worker_init,
        "worker_exit": partial(worker_exit, seldon_metrics=metrics),
    }
    UserModelApplication(app, user_model, False, None, "KfopsModel", options=options).run()


if __name__ == "__main__":
    main()
