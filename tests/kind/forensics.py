"""What the nightly job keeps when it fails: cluster state, events, every container's logs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from kfops.base.upstream import cert_manager, seldon
from tests.kind.names import NAMESPACE, Kubectl

#: Namespaces whose pods, events and logs are collected when a test fails.
FORENSIC_NAMESPACES = (NAMESPACE, cert_manager.NAMESPACE, seldon.WEBHOOK.namespace)


def forensic_commands(namespaces: Sequence[str] = FORENSIC_NAMESPACES) -> list[tuple[str, list[str]]]:
    """``(file name, kubectl args)`` of what to keep when the nightly job fails (pod logs are listed later)."""
    commands: list[tuple[str, list[str]]] = [
        ("nodes.txt", ["describe", "nodes"]),
        ("pods-all.txt", ["get", "pods", "-A", "-o", "wide"]),
    ]
    for namespace in namespaces:
        commands += [
            (f"{namespace}/events.txt", ["-n", namespace, "get", "events", "--sort-by=.lastTimestamp"]),
            (f"{namespace}/describe-pods.txt", ["-n", namespace, "describe", "pods"]),
        ]
    commands += [
        (f"{NAMESPACE}/experiments.yaml", ["-n", NAMESPACE, "get", "experiments,trials", "-o", "yaml"]),
        (f"{NAMESPACE}/seldondeployments.yaml", ["-n", NAMESPACE, "get", "seldondeployments", "-o", "yaml"]),
        (f"{NAMESPACE}/pipelines.yaml", ["-n", NAMESPACE, "get", "pipelines,pipelineversions", "-o", "yaml"]),
        (f"{NAMESPACE}/workflows.yaml", ["-n", NAMESPACE, "get", "workflows.argoproj.io", "-o", "yaml"]),
    ]
    return commands


def collect_forensics(kubectl: Kubectl, out: Path, namespaces: Sequence[str] = FORENSIC_NAMESPACES) -> list[str]:
    """Write what explains a failure under ``out``: cluster state, events, and every container's logs.

    A command that fails is noted in its file and the rest still run. Returns the files written.
    """
    written = []

    def keep(name: str, args: list[str]) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = kubectl(*args)
        except Exception as error:  # forensics must go on whatever failed
            text = f"kubectl {' '.join(args)} failed: {error}\n"
        path.write_text(text)
        written.append(name)

    for name, args in forensic_commands(namespaces):
        keep(name, args)
    for namespace in namespaces:
        try:
            pods = json.loads(kubectl("-n", namespace, "get", "pods", "-o", "json")).get("items", [])
        except Exception as error:  # the namespace may not exist (yet)
            (out / f"{namespace}-pods.error.txt").write_text(str(error))
            pods = []
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            spec = pod.get("spec", {})
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                for previous in (False, True):
                    suffix = ".previous" if previous else ""
                    args = ["-n", namespace, "logs", pod_name, "-c", container["name"]]
                    keep(f"{namespace}/logs/{pod_name}.{container['name']}{suffix}.log",
                         [*args, "--previous"] if previous else args)
    return written
