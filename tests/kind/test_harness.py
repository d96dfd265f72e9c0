"""The nightly harness's parts that can run here: port-forwards that retry and restart, forensics, bounded destroy,
and the services it forwards checked against what the stack and upstream provide."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import yaml

from infra.cluster.mock_runtime import run_program
from kfops.base.paths import REPO_ROOT
from kfops.base.upstream import kfp
from tests.fakes.katib import FakeKatib
from tests.kind.forensics import FORENSIC_NAMESPACES, collect_forensics
from tests.kind.forwards import Forward, PortForward, local_endpoint, platform_forwards, serving_forwards
from tests.kind.harness import create_cluster, tool
from tests.kind.stack import bounded, drain_katib_or_force, state_backend

pytestmark = pytest.mark.unit


def http_server(forward: Forward, port: int) -> list[str]:
    """Stands in for `kubectl port-forward`: a real process serving HTTP on the forward's local port."""
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(REPO_ROOT)]


@pytest.mark.integration
def test_a_forward_waits_until_it_answers_and_comes_back_after_it_dies(tmp_path: Path) -> None:
    forward = PortForward(Forward("svc", 80, "/README.md"), command=http_server, log=tmp_path / "forward.log")
    forward.open(timeout=30)
    try:
        assert requests.get(forward.url + "/README.md", timeout=5).status_code == 200
        assert forward.process is not None
        forward.process.kill()  # the forward dies, as kubectl's does with its pod
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(forward.url + "/README.md", timeout=1).status_code == 200 and forward.restarts:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        assert forward.restarts == 1
        assert requests.get(forward.url + "/README.md", timeout=5).status_code == 200
    finally:
        forward.close()
    assert forward.process is not None
    assert forward.process.poll() is not None, "closing stops the forward"


@pytest.mark.integration
def test_a_forward_that_never_answers_fails_after_its_attempts(tmp_path: Path) -> None:
    exits = [sys.executable, "-c", "raise SystemExit(1)"]
    forward = PortForward(Forward("svc", 80), command=lambda _f, _p: exits, log=tmp_path / "forward.log")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="svc/svc:80 in kubeflow never answered"):
        forward.open(timeout=5, attempts=2)
    assert time.monotonic() - started < 10


def test_forensics_keep_going_when_a_command_fails_and_collect_every_containers_logs(tmp_path: Path) -> None:
    import json

    calls: list[tuple[str, ...]] = []
    pods = {"items": [{"metadata": {"name": "ml-pipeline-1"},
                       "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "api"}]}}]}

    def kubectl(*args: str) -> str:
        calls.append(args)
        if args[:2] == ("describe", "nodes"):
            raise RuntimeError("connection refused")
        if args[-4:] == ("get", "pods", "-o", "json"):
            return json.dumps(pods) if args[1] == "kubeflow" else '{"items": []}'
        return "ok"

    written = collect_forensics(kubectl, tmp_path)
    assert "failed: connection refused" in (tmp_path / "nodes.txt").read_text()
    assert {f"{namespace}/events.txt" for namespace in FORENSIC_NAMESPACES} <= set(written)
    logs = sorted(name for name in written if "/logs/" in name)
    assert logs == ["kubeflow/logs/ml-pipeline-1.api.log", "kubeflow/logs/ml-pipeline-1.api.previous.log",
                    "kubeflow/logs/ml-pipeline-1.init.log", "kubeflow/logs/ml-pipeline-1.init.previous.log"]
    assert ("-n", "kubeflow", "get", "experiments,trials", "-o", "yaml") in calls


def fake_kubectl(katib: FakeKatib, calls: list[tuple[str, ...]]) -> Callable[..., str]:
    def kubectl(*args: str) -> str:
        calls.append(args)
        if args[2] == "patch":
            plural, name = args[3].split(".", 1)[0], args[3].rsplit("/", 1)[-1]
            katib.patch_finalizers(plural, name)
        return ""

    return kubectl


def test_before_destroy_a_running_katib_finishes_the_workflows_experiments() -> None:
    katib, calls = FakeKatib(), []
    katib.add_experiment("kfops-winequality-1")
    assert drain_katib_or_force(katib, fake_kubectl(katib, calls), sleep=lambda _s: katib.reconcile()) == []
    assert katib.objects == {}
    assert calls == [], "nothing forced"


def test_a_katib_that_cannot_finish_is_forced_webhooks_first_and_only_what_is_being_deleted() -> None:
    katib, calls = FakeKatib(), []
    katib.add_experiment("kfops-winequality-1")
    katib.controller_running = False
    forced = drain_katib_or_force(katib, fake_kubectl(katib, calls), timeout=2, sleep=lambda _s: katib.reconcile())
    assert calls[0][0] == "delete", "Katib's webhooks must go before any Experiment is patched"
    assert forced == ["experiments.kubeflow.org/kfops-winequality-1"]
    assert ("trials", "kfops-winequality-1-0") in katib.objects, "not being deleted: left alone"


def test_a_pulumi_state_dir_that_does_not_exist_yet_is_created(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/workspace/.pulumi-state"
    assert state_backend({"PULUMI_BACKEND_URL": url, "PULUMI_CONFIG_PASSPHRASE": "x"}) == url
    assert (tmp_path / "workspace" / ".pulumi-state").is_dir()
    with pytest.raises(RuntimeError, match="PULUMI_CONFIG_PASSPHRASE"):
        state_backend({"PULUMI_BACKEND_URL": url})


def test_a_destroy_that_hangs_is_bounded() -> None:
    assert bounded(lambda: 42, 5, "quick") == 42
    with pytest.raises(TimeoutError, match="pulumi destroy did not finish within 0 s"):
        bounded(lambda: time.sleep(3), 0.2, "pulumi destroy")
    with pytest.raises(ValueError, match="boom"):
        bounded(lambda: (_ for _ in ()).throw(ValueError("boom")), 5, "failing")


def test_in_cluster_endpoints_are_moved_onto_the_forwards() -> None:
    url = "http://kfops-model-default.kubeflow.svc.cluster.local:8000/v2/models/kfops-winequality/infer"
    assert local_endpoint(url, "http://127.0.0.1:40000") == "http://127.0.0.1:40000/v2/models/kfops-winequality/infer"
    grpc = "grpc://kfops-model-default.kubeflow.svc.cluster.local:5001"
    assert local_endpoint(grpc, "grpc://127.0.0.1:40001") == "grpc://127.0.0.1:40001"


GRPC_SERVER = """
import sys, time
from concurrent import futures
import grpc
server = grpc.server(futures.ThreadPoolExecutor(1))
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
time.sleep(600)
"""


@pytest.mark.integration
def test_a_grpc_forward_is_up_once_a_connection_is_established_without_calling_any_rpc(tmp_path: Path) -> None:
    # Stands in for `kubectl port-forward` to the executor's gRPC port: a real gRPC server with no services at all,
    # so the readiness check may not call one (the executor panics on the health RPCs it lacks).
    forward = PortForward(Forward("svc", 5001, "", scheme="grpc"),
                          command=lambda _f, port: [sys.executable, "-c", GRPC_SERVER, str(port)],
                          log=tmp_path / "forward.log")
    forward.open(timeout=30)
    try:
        assert forward.url == f"grpc://127.0.0.1:{forward.port}"
    finally:
        forward.close()
    silent = PortForward(Forward("svc", 5001, "", scheme="grpc"),
                         command=lambda _f, _p: [sys.executable, "-c", "import time; time.sleep(600)"],
                         log=tmp_path / "silent.log")
    with pytest.raises(TimeoutError, match="svc/svc:5001"):
        silent.open(timeout=4, attempts=1)


def test_every_forwarded_service_is_one_the_stack_or_upstream_creates() -> None:
    rendering = run_program({"kfops:installPlatform": "true", "kfops:namespace": "kubeflow"})
    rendered = {(service["metadata"]["name"], port["port"]) for service in rendering.manifests()
                if service["kind"] == "Service" for port in service["spec"]["ports"]}
    upstream = {(kfp.API.name, kfp.API.port), (kfp.OBJECT_STORE.name, kfp.OBJECT_STORE.port)}
    for name, forward in platform_forwards().items():
        assert (forward.service, forward.remote_port) in rendered | upstream, name
        assert forward.namespace == kfp.NAMESPACE
    # Seldon's predictor Services are named <deployment>-<predictor> and listen on 8000 (HTTP) and 5001 (gRPC).
    assert {(f.service, f.remote_port, f.scheme) for f in serving_forwards().values()} == {
        ("kfops-model-default", 8000, "http"), ("kfops-model-v1-default", 8000, "http"),
        ("kfops-model-default", 5001, "grpc")}


def test_the_workflow_file_is_a_thin_caller_of_the_harness() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "nightly-kind.yaml").read_text())
    runs = "\n".join(step.get("run", "") for step in workflow["jobs"]["e2e"]["steps"])
    assert "make e2e-kind" in runs
    for done_by_the_harness in ("kind create", "pulumi up", "port-forward", "pulumi destroy", "docker build"):
        assert done_by_the_harness not in runs
    uploads = [step for step in workflow["jobs"]["e2e"]["steps"] if "upload-artifact" in step.get("uses", "")]
    assert uploads
    assert uploads[0]["if"] == "always()"
    assert uploads[0]["with"]["path"] == "kind-forensics"


def test_the_harness_never_takes_over_an_existing_kind_cluster(tmp_path: Path) -> None:
    """kind cannot run here (no Docker): a script answering ``kind get clusters`` as kind does stands in for it."""
    kind = tmp_path / "kind"
    kind.write_text("#!/bin/sh\nprintf 'other\\nkfops\\n'\n")
    kind.chmod(0o755)
    with pytest.raises(RuntimeError, match="exists already"):
        create_cluster(kind=kind, kubectl=Path("/bin/true"))


def test_the_harness_uses_the_kind_and_kubectl_the_job_installs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="kind is not on PATH"):
        tool("kind")
