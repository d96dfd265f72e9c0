"""A fake Kubernetes API server (HTTP, JSON) for ``kfops doctor``'s cluster checks, driven by the real client.

It serves the REST paths the checks read, with objects in the shapes the Kubernetes API documents (``Namespace``,
``Secret``, ``ConfigMap``, ``ServiceAccount``, ``Endpoints``, ``CustomResourceDefinition``, ``Deployment``, custom
objects), answers ``SubjectAccessReview`` from a policy the test sets, and plays the Job controller for the probe
(a created Job is reported succeeded, or failed, on the next read). Anything not stored is a 404 ``Status``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

Policy = Callable[[dict[str, Any]], bool]


class FakeKubeApi:
    """The state the server answers from; tests change it between checks."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.policy: Policy = lambda _attributes: True
        self.job_outcome = "succeeded"
        self.reviews: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def put(self, path: str, obj: dict[str, Any]) -> None:
        """Store ``obj`` at its REST path (e.g. ``/api/v1/namespaces/kubeflow/secrets/x``)."""
        self.objects[path] = obj

    def answer(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/apis/authorization.k8s.io/v1/subjectaccessreviews":
            assert body is not None
            attributes = body["spec"]["resourceAttributes"]
            self.reviews.append(attributes)
            return 201, {**body, "status": {"allowed": self.policy(attributes)}}
        if method == "POST" and path.endswith("/jobs"):
            assert body is not None
            name = body["metadata"]["name"]
            self.objects[f"{path}/{name}"] = {**body, "status": {}}
            return 201, self.objects[f"{path}/{name}"]
        if method == "DELETE":
            self.deleted.append(path)
            self.objects.pop(path, None)
            return 200, {"kind": "Status", "status": "Success"}
        obj = self.objects.get(path)
        if obj is None:
            return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                         "message": f"{path} not found", "code": 404}
        if "/jobs/" in path and not obj["status"]:
            obj["status"] = {self.job_outcome: 1}
        return 200, obj


@contextmanager
def serve(api: FakeKubeApi) -> Iterator[str]:
    """Run the fake on a free loopback port; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = api.answer(method, urlparse(self.path).path.rstrip("/") or "/", body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def do_DELETE(self) -> None:
            self._reply("DELETE")

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
