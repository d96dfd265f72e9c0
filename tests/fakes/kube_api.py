"""A fake Kubernetes API server (HTTP, JSON) for ``kfops doctor``'s cluster checks, driven by the real client.

It serves the REST paths the checks read, with objects in the shapes the Kubernetes API documents (``Namespace``,
``Secret``, ``ConfigMap``, ``ServiceAccount``, ``Endpoints``, ``CustomResourceDefinition``, ``Deployment``, custom
objects), answers ``SubjectAccessReview`` from a policy the test sets, and plays the Job controller for the probe
(a created Job is reported succeeded, or failed, on the next read). Anything not stored is a 404 ``Status``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.fakes.http import json_server

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

    def respond(method: str, path: str, _query: dict[str, list[str]], _kind: str, raw: bytes) -> tuple[int, Any]:
        return api.answer(method, path.rstrip("/") or "/", json.loads(raw) if raw else None)

    with json_server(respond) as url:
        yield url
