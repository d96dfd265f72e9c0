"""From a rendered object to the process its container would run: env references resolved, URLs made local.

The stack is rendered under Pulumi's mock runtime with the local platform's credentials, so a ``secretKeyRef`` or
``configMapKeyRef`` resolves to what the program put in the Secret or ConfigMap, and a missing key fails here as it
would fail the pod. In-cluster URLs (the upstream facts' Services and the program's own) are replaced with the local
services' URLs; any other in-cluster URL left in the environment is an error: the object names a service nobody
installs.

What Seldon Core's operator adds to a graph node's container is applied from the upstream facts
(:mod:`kfops.base.upstream.seldon`), with one change: ports are free ports of this machine, not 9000/9500/6000.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from infra.cluster.mock_runtime import Rendering
from infra.local.processes import free_port
from kfops.base.upstream import seldon

#: Pulumi's marker of a secret value in recorded inputs.
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
IN_CLUSTER = re.compile(r"[a-z0-9.-]+\.svc(\.cluster\.local)?(:\d+)?")


def plain(value: Any) -> Any:
    """Recorded inputs with Pulumi's secret wrappers removed (the contract tests need the real values)."""
    if isinstance(value, dict):
        if _SECRET_SIG in value:
            return plain(value.get("value"))
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def keys_of(rendering: Rendering, kind: str, name: str) -> dict[str, str]:
    """The data of a rendered Secret or ConfigMap (``stringData`` and ``data``), real values."""
    inputs = plain(rendering.inputs_of(kind, name))
    return {**(inputs.get("data") or {}), **(inputs.get("stringData") or {})}


def localize(value: str, urls: Mapping[str, str]) -> str:
    """``value`` with each in-cluster URL replaced by its local counterpart.

    Raises:
        AssertionError: An in-cluster host remains: nothing local stands for it, so nothing on a cluster serves it.
    """
    for cluster_url, local_url in urls.items():
        value = value.replace(cluster_url, local_url)
    leftover = IN_CLUSTER.search(value)
    assert leftover is None, f"{value!r} names {leftover.group(0)}, which no installed component serves"
    return value


def resolve_env(env: list[dict[str, Any]], rendering: Rendering, urls: Mapping[str, str]) -> dict[str, str]:
    """A container's ``env`` as the kubelet would resolve it, with local URLs.

    Raises:
        AssertionError: A reference to a key the program does not create (the pod would not start).
    """
    resolved: dict[str, str] = {}
    for item in env:
        if "value" in item:
            resolved[item["name"]] = localize(str(item["value"]), urls)
            continue
        source = item["valueFrom"]
        kind, ref = ("Secret", source["secretKeyRef"]) if "secretKeyRef" in source else (
            "ConfigMap", source["configMapKeyRef"])
        data = keys_of(rendering, kind, ref["name"])
        assert ref["key"] in data, f"{item['name']} reads {kind} {ref['name']} key {ref['key']}, which is not there"
        resolved[item["name"]] = localize(str(data[ref["key"]]), urls)
    return resolved


def seldon_node(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The graph node and its container of a one-node SeldonDeployment."""
    predictor = manifest["spec"]["predictors"][0]
    graph = predictor["graph"]
    [container] = [c for c in predictor["componentSpecs"][0]["spec"]["containers"] if c["name"] == graph["name"]]
    return graph, container


def seldon_env(manifest: dict[str, Any]) -> tuple[dict[str, str], int]:
    """The env Seldon Core's operator gives the node's container, and the HTTP port it serves on (a free one here).

    For protocol v2 the operator's MLServer variables come first and the user's own override them, except
    ``MLSERVER_MODEL_NAME``, which is always the node's name; for the Python wrapper the operator adds its ports, the
    graph's parameters as JSON and the node's id.
    """
    graph, container = seldon_node(manifest)
    http, grpc, metrics = free_port(), free_port(), free_port()
    own = {item["name"]: str(item["value"]) for item in container.get("env", [])}
    if manifest["spec"]["protocol"] == "v2":
        env = {key: value.format(node=graph["name"]) for key, value in seldon.MLSERVER_ENV.value.items()}
        env.update(own)
        env.update({"MLSERVER_MODEL_NAME": graph["name"], "MLSERVER_HTTP_PORT": str(http),
                    "MLSERVER_GRPC_PORT": str(grpc), "MLSERVER_METRICS_PORT": str(metrics)})
        return env, http
    parameters = json.dumps(graph.get("parameters", []))
    env = {key: value.format(node=graph["name"], parameters=parameters)
           for key, value in seldon.WRAPPER_ENV.value.items()}
    env.update(own)
    env.update({"PREDICTIVE_UNIT_HTTP_SERVICE_PORT": str(http), "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": str(grpc),
                "PREDICTIVE_UNIT_METRICS_SERVICE_PORT": str(metrics)})
    return env, http


def dockerfile_command(path: str) -> tuple[list[str], str]:
    """The ``CMD`` (exec form) and the last ``WORKDIR`` of a Dockerfile: what runs when a container gives none."""
    from kfops.base.paths import REPO_ROOT

    command: list[str] = []
    workdir = "/"
    for line in (REPO_ROOT / path).read_text().splitlines():
        if line.startswith("CMD "):
            command = json.loads(line[4:])
        elif line.startswith("WORKDIR "):
            workdir = line.split(None, 1)[1].strip()
    return command, workdir
