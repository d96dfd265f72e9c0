"""Every Host header a client sends is one the server it talks to allows, judged by the server's own check.

MLflow 3's server refuses requests whose Host header is not allowed (DNS-rebinding protection), on every path but
``/health`` and ``/version``, which is all readiness checks call. ``--allowed-hosts`` replaces its defaults
(``localhost``, ``127.0.0.1``, private ranges) instead of adding to them, so each client is checked here with MLflow's
own predicate on the list the stack renders: pods through the ConfigMap and the PodDefault, the nightly harness
through its port-forward, users through docs/cluster.md's port-forward, the local target's clients on its own server.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from infra.cluster.mock_runtime import Rendering
from infra.cluster.tracking import SERVER_NAME, SERVER_PORT
from infra.local.services import mlflow_spec
from kfops.base.contract import MLFLOW_CONFIG_MAP
from tests.kind.forwards import PortForward, platform_forwards
from tests.upstream.world import World, kind_world


def is_allowed_host_header(allowed: list[str], host: str) -> bool:
    """MLflow's own Host check (imported when used: MLflow's server modules take seconds to import, and every test
    worker collects this file)."""
    from mlflow.server.security_utils import is_allowed_host_header as mlflow_check

    return bool(mlflow_check(allowed, host))

pytestmark = pytest.mark.unit

#: Hosts a DNS-rebinding page could make a browser send; none may pass.
HOSTILE = ("localhost.evil.example", "localhost.evil.example:5000", "127.0.0.1.evil.example:5000",
           "10.evil.example:5000", "192.168.evil.example:5000", "kfops-mlflow.kubeflow.evil.example:5000",
           "kfops-mlflow:5000.evil.example", "evil.example", "")


def host_header(url: str) -> str:
    """The Host header an HTTP client (requests, urllib) sends for ``url``."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else str(parts.hostname)
    default = {"http": 80, "https": 443}[parts.scheme]
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def allowed_hosts(command: list[str]) -> list[str]:
    """How MLflow reads ``--allowed-hosts`` (mlflow/server/security_utils.py: split on commas, stripped)."""
    assert "--allowed-hosts" in command, "without it, MLflow allows only localhost and private addresses"
    return [host.strip() for host in command[command.index("--allowed-hosts") + 1].split(",")]


def tracking_server_command(placed_objects: Iterator[dict]) -> list[str]:
    for obj in placed_objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == SERVER_NAME:
            return list(obj["spec"]["template"]["spec"]["containers"][0]["command"])
    raise LookupError("no MLflow Deployment")


def cluster_clients(objects: list[dict]) -> dict[str, str]:
    """Every MLflow URL the stack gives its pods, by who uses it."""
    clients = {}
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == MLFLOW_CONFIG_MAP:
            clients["steps, trials and the doctor's probe (ConfigMap)"] = obj["data"]["MLFLOW_TRACKING_URI"]
        if obj["kind"] == "PodDefault":
            for item in obj["spec"].get("env", []):
                if item["name"] == "MLFLOW_TRACKING_URI":
                    clients[f"notebooks (PodDefault {obj['metadata']['name']})"] = item["value"]
    return clients


def outside_clients() -> dict[str, str]:
    """The URLs clients outside the cluster use: the nightly harness' port-forward, docs/cluster.md's."""
    return {"nightly harness port-forward": PortForward(platform_forwards()["mlflow"]).url,
            "docs/cluster.md port-forward": f"http://localhost:{SERVER_PORT}"}


@pytest.fixture(scope="module")
def world() -> World:
    return kind_world()


def test_every_client_of_the_kind_stacks_mlflow_is_allowed_by_its_host_check(world: World) -> None:
    objects = [p.obj for p in world.placed]
    hosts = allowed_hosts(tracking_server_command(iter(objects)))
    clients = {**cluster_clients(objects), **outside_clients()}
    assert len(clients) >= 4
    refused = {who: host_header(url) for who, url in clients.items()
               if not is_allowed_host_header(hosts, host_header(url))}
    assert not refused, f"MLflow would answer 403 to: {refused} (allowed: {hosts})"


def test_a_stack_in_another_namespace_allows_its_own_clients(cluster_rendering: Rendering) -> None:
    objects = cluster_rendering.manifests()
    hosts = allowed_hosts(tracking_server_command(iter(objects)))
    clients = {**cluster_clients(objects), **outside_clients()}
    for who, url in clients.items():
        assert is_allowed_host_header(hosts, host_header(url)), (who, url, hosts)
    for namespace in ("team-ml",):
        for name in (SERVER_NAME, f"{SERVER_NAME}.{namespace}", f"{SERVER_NAME}.{namespace}.svc",
                     f"{SERVER_NAME}.{namespace}.svc.cluster.local"):
            assert is_allowed_host_header(hosts, f"{name}:{SERVER_PORT}"), name


def test_no_hostile_host_passes_the_stacks_mlflow(world: World) -> None:
    hosts = allowed_hosts(tracking_server_command(p.obj for p in world.placed))
    for host in HOSTILE:
        assert not is_allowed_host_header(hosts, host), host


def test_the_local_mlflow_allows_its_clients_and_nothing_hostile(make_settings) -> None:  # type: ignore[no-untyped-def]
    from infra.local.credentials import S3Credentials

    settings = make_settings()
    spec = mlflow_spec(settings, settings.state_dir, S3Credentials("key", "secret"), "http://127.0.0.1:1")
    hosts = allowed_hosts(spec.argv)
    assert is_allowed_host_header(hosts, host_header(spec.url))
    assert is_allowed_host_header(hosts, f"localhost:{settings.mlflow_port}")
    for host in HOSTILE:
        assert not is_allowed_host_header(hosts, host), host
