"""A fake KFP API server (REST, ``/apis/v2beta1``) speaking the shapes the KFP 2.17 API documents.

Only what kfops calls: healthz, experiments (list by name, create), runs (create, get); for the stack's API mode,
pipelines (list by name, multipart upload), pipeline versions (multipart upload, delete) and recurring runs
(create, delete). A run's state advances one scripted snapshot per ``GET``, so a test can play a whole run:
pending, running with tasks starting and finishing, then SUCCEEDED or FAILED with a task error. Shapes follow the API's
``v2beta1Run`` / ``v2beta1PipelineTaskDetail`` / ``v2beta1Experiment`` messages (field names as the kfp-server-api
client's ``attribute_map`` spells them).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http import json_server

STEPS = ("ingest", "clean", "store", "tune", "best-params", "train", "register-and-promote", "deploy")


def task(name: str, state: str, message: str = "") -> dict[str, Any]:
    """One ``v2beta1PipelineTaskDetail``."""
    detail: dict[str, Any] = {"task_id": f"task-{name}", "display_name": name, "state": state,
                              "create_time": "2026-11-30T10:00:00Z"}
    if message:
        detail["error"] = {"code": 2, "message": message}
    return detail


def successful_run_script() -> list[tuple[str, list[dict[str, Any]]]]:
    """Snapshots of a run whose every step succeeds: ``(run state, task details)`` per ``GET``."""
    snapshots: list[tuple[str, list[dict[str, Any]]]] = [("PENDING", [])]
    done: list[dict[str, Any]] = []
    for name in STEPS:
        snapshots.append(("RUNNING", [*done, task(name, "RUNNING")]))
        done = [*done, task(name, "SUCCEEDED")]
    snapshots.append(("SUCCEEDED", done))
    return snapshots


def failing_run_script(step: str, message: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Snapshots of a run that fails in ``step`` with ``message``."""
    done = [task(name, "SUCCEEDED") for name in STEPS[:STEPS.index(step)]]
    return [("RUNNING", [*done, task(step, "RUNNING")]), ("FAILED", [*done, task(step, "FAILED", message)])]


@dataclass
class FakeKfp:
    """State of the fake API: created experiments and runs, and every request received."""

    script: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=successful_run_script)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""

    def _pipelines(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any] | None:
        """Pipelines, their versions and recurring runs (``v2beta1Pipeline``, ``v2beta1PipelineVersion``,
        ``v2beta1RecurringRun``); uploads are multipart with the package in field ``uploadfile``."""
        one = {name: values[0] for name, values in query.items()}
        if path == "/apis/v2beta1/pipelines" and method == "GET":
            wanted = json.loads(one.get("filter", "{}")).get("predicates", [{}])[0].get("stringValue")
            found = [p for p in self.pipelines.values() if p["display_name"] == wanted]
            return 200, ({"pipelines": found, "total_size": len(found)} if found else {})
        if path == "/apis/v2beta1/pipelines/upload" and method == "POST":
            if any(p["display_name"] == one["name"] for p in self.pipelines.values()):
                return 409, {"error": "already exists", "code": 6, "message": f"pipeline {one['name']} exists"}
            pipeline = {"pipeline_id": str(uuid.uuid4()), "display_name": one["name"],
                        "description": one.get("description", ""), "namespace": one.get("namespace", ""),
                        "created_at": "2026-11-30T10:00:00Z"}
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            self._add_version(pipeline["pipeline_id"], one["name"], body)
            return 200, pipeline
        if path == "/apis/v2beta1/pipelines/upload_version" and method == "POST":
            if one.get("pipelineid") not in self.pipelines:
                return 404, {"error": "pipeline not found", "code": 5, "message": "pipeline not found"}
            if any(v["pipeline_id"] == one["pipelineid"] and v["display_name"] == one["name"]
                   for v in self.versions.values()):
                return 409, {"error": "already exists", "code": 6, "message": f"version {one['name']} exists"}
            return 200, self._add_version(one["pipelineid"], one["name"], body)
        parts = path.split("/")
        if method == "DELETE" and len(parts) == 7 and parts[3] == "pipelines" and parts[5] == "versions":
            version = self.versions.get(parts[6])
            if version is None or version["pipeline_id"] != parts[4]:
                return 404, {"error": "version not found", "code": 5, "message": "version not found"}
            del self.versions[parts[6]]
            return 200, {}
        if path == "/apis/v2beta1/recurringruns" and method == "POST":
            if body.get("pipeline_version_reference", {}).get("pipeline_version_id") not in self.versions:
                return 404, {"error": "version not found", "code": 5, "message": "pipeline version not found"}
            recurring = {**body, "recurring_run_id": str(uuid.uuid4()), "status": "ENABLED"}
            self.recurring_runs[recurring["recurring_run_id"]] = recurring
            return 200, recurring
        if method == "DELETE" and len(parts) == 5 and parts[3] == "recurringruns":
            if self.recurring_runs.pop(parts[4], None) is None:
                return 404, {"error": "not found", "code": 5, "message": "recurring run not found"}
            return 200, {}
        return None

    def _add_version(self, pipeline_id: str, name: str, package: Any) -> dict[str, Any]:
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": str(uuid.uuid4()), "display_name": name,
                   "created_at": "2026-11-30T10:00:00Z", "pipeline_spec": package}
        self.versions[version["pipeline_version_id"]] = version
        return {k: v for k, v in version.items() if k != "pipeline_spec"}

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        """Answer one request: ``(HTTP status, JSON body)``."""
        self.requests.append((method, path, body))
        answered = self._pipelines(method, path, query, body)
        if answered is not None:
            return answered
        if path == "/apis/v2beta1/healthz":
            return 200, {"multi_user": False}
        if path == "/apis/v2beta1/experiments" and method == "GET":
            wanted = json.loads(query.get("filter", ["{}"])[0]).get("predicates", [{}])[0].get("stringValue")
            found = [e for e in self.experiments.values() if e["display_name"] == wanted]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if path == "/apis/v2beta1/experiments" and method == "POST":
            experiment = {"experiment_id": str(uuid.uuid4()), "display_name": body["display_name"],
                          "namespace": body.get("namespace", ""), "storage_state": "AVAILABLE"}
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if path == "/apis/v2beta1/runs" and method == "POST":
            run = {**body, "run_id": str(uuid.uuid4()), "state": "PENDING", "created_at": "2026-11-30T10:00:00Z",
                   "_calls": 0}
            self.runs[run["run_id"]] = run
            return 200, {k: v for k, v in run.items() if not k.startswith("_")}
        if path.startswith("/apis/v2beta1/runs/") and method == "GET":
            run = self.runs.get(path.rsplit("/", 1)[1])
            if run is None:
                return 404, {"error": "run not found", "code": 5, "message": "run not found"}
            state, tasks = self.script[min(run["_calls"], len(self.script) - 1)]
            run["_calls"] += 1
            answer = {k: v for k, v in run.items() if not k.startswith("_") and k != "pipeline_spec"}
            answer.update({"state": state, "run_details": {"task_details": tasks}})
            failed = [t for t in tasks if t["state"] == "FAILED"]
            if failed:
                answer["error"] = failed[0]["error"]
            return 200, answer
        return 404, {"error": f"no route {method} {path}", "code": 5, "message": "not found"}

    def created_runs(self) -> list[dict[str, Any]]:
        """The bodies of every run created."""
        return [body for method, path, body in self.requests if method == "POST" and path == "/apis/v2beta1/runs"]


def _uploaded_file(content_type: str, raw: bytes) -> str:
    """The text of the ``uploadfile`` field of a multipart body (how the KFP client uploads a package)."""
    from email.parser import BytesParser

    message = BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    for part in message.get_payload():
        if part.get_param("name", header="content-disposition") == "uploadfile":
            return part.get_payload(decode=True).decode()
    raise ValueError("no uploadfile field in the upload")


@contextmanager
def serve(fake: FakeKfp) -> Iterator[FakeKfp]:
    """Serve ``fake`` on a free loopback port for the duration of the block (``fake.url`` is its base URL)."""

    def respond(method: str, path: str, query: dict[str, list[str]], kind: str, raw: bytes) -> tuple[int, Any]:
        body = _uploaded_file(kind, raw) if kind.startswith("multipart/") else json.loads(raw) if raw else None
        return fake.handle(method, path, query, body)

    with json_server(respond) as url:
        fake.url = url
        yield fake
