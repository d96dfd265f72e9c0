"""The kind stack as ``pulumi up`` would create it, judged by upstream's own files.

The Pulumi program runs under the mock runtime with each upstream kustomization answered by its ``built/`` bundle
(the program's own transformations and dependencies apply to upstream's objects, as at ``pulumi up``), and each
Helm release rendered from the pinned chart (:mod:`tests.upstream.helm`; for cert-manager, whose chart is not in the
pinned data, its CRDs). What the workflow creates at run time (its Katib Experiment and SeldonDeployments) is added
as the workflow's builders make it. References and rules are then checked against these objects, not against the
facts kfops wrote about them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from components.deploy import ServingSettings, seldon_deployment
from components.tune import build_tuning_experiment
from infra.cluster.mock_runtime import RecordedResource, Rendering, run_program, scrub
from infra.cluster.stack_config import load_stack_config
from tests.upstream import data, helm

#: Pulumi's type token of a Helm release.
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
_TREE_URL = re.compile(r"^https://github\.com/([^/]+/[^/]+)/tree/([^/]+)/(.+)$")
#: Where the workflow runs on the kind stack.
RUN_NAMESPACE = "kubeflow"


def bundle(directory: str) -> list[dict[str, Any]]:
    """The objects of an upstream kustomization (a GitHub ``tree`` URL at a tag), from its ``built/`` bundle.

    Raises:
        UpstreamDataError: There is no pinned data for that repository, tag and path.
    """
    match = _TREE_URL.match(directory)
    if not match:
        raise data.UpstreamDataError(f"not a GitHub tree URL at a tag: {directory}")
    for name, origin in data.BUILT.items():
        if origin == match.groups():
            return data.documents(name)
    raise data.UpstreamDataError(f"no built bundle of {match.group(1)}@{match.group(2)}:{match.group(3)} in the "
                                 "pinned upstream data: a pin was bumped without its upstream data")


def chart_objects(release: dict[str, Any]) -> list[dict[str, Any]]:
    """What a recorded Helm release installs, from the pinned chart at its version.

    Raises:
        UpstreamDataError: There is no pinned data for the chart at that version.
    """
    chart, version, namespace = release["chart"], release["version"], release["namespace"]
    if chart == "seldon-core-operator":
        directory = f"SeldonIO/seldon-core/v{version.lstrip('v')}/helm-charts/seldon-core-operator"
        if not data.has(f"{directory}/Chart.yaml"):
            raise data.UpstreamDataError(f"no pinned Seldon Core chart {version}")
        return helm.template(directory, release["name"], namespace, release.get("values") or {})
    if chart == "cert-manager":
        crds = list(data.tree("cert-manager/cert-manager", version, "deploy/crds"))
        if not crds:
            raise data.UpstreamDataError(f"no pinned cert-manager CRDs {version}")
        if not (release.get("values") or {}).get("crds", {}).get("enabled"):
            return []
        return [doc for name in crds for doc in data.documents(name, strip_template_lines=True)]
    raise data.UpstreamDataError(f"no pinned data for Helm chart {chart}")


@dataclass(frozen=True)
class Placed:
    """An object of the world, and the Pulumi resource that creates it (a Helm release for chart objects; none
    for what the workflow creates at run time)."""

    obj: dict[str, Any]
    resource: str | None
    origin: str  # "kfops", "upstream" or "run"

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name"))

    @property
    def namespace(self) -> str | None:
        return self.obj.get("metadata", {}).get("namespace")


@dataclass
class World:
    """Every object of the kind stack: kfops', upstream's (as transformed by the program) and the run's."""

    rendering: Rendering
    placed: list[Placed] = field(default_factory=list)

    def objects(self, kind: str | None = None, origin: str | None = None) -> Iterator[Placed]:
        return (p for p in self.placed if (kind is None or p.kind == kind) and (origin is None or p.origin == origin))

    def find(self, kind: str, name: str, namespace: str | None = None) -> Placed:
        for placed in self.objects(kind):
            if placed.name == name and (namespace is None or placed.namespace in (namespace, None)):
                return placed
        raise LookupError(f"no {kind} {namespace}/{name} in the world")

    def namespaces(self) -> dict[str, dict[str, str]]:
        """Every namespace objects live in, with its labels (namespaces nobody labels, e.g. ones Helm creates, have
        none)."""
        found: dict[str, dict[str, str]] = {p.namespace: {} for p in self.placed if p.namespace}
        for placed in self.objects("Namespace"):
            found[placed.name] = dict(placed.obj["metadata"].get("labels") or {})
        return found

    def dependencies(self, resource: str) -> set[str]:
        """Every resource ``resource`` waits for, transitively (the engine creates those first)."""
        graph = {r.name: r.depends_on for r in self.rendering.resources}
        seen: set[str] = set()
        todo = [resource]
        while todo:
            for need in graph.get(todo.pop(), set()):
                if need not in seen:
                    seen.add(need)
                    todo.append(need)
        return seen


def _placed_from(resource: RecordedResource) -> Placed:
    origin = "upstream" if resource.name.startswith("platform-") else "kfops"
    return Placed(resource.manifest(), resource.name, origin)


def run_objects() -> list[dict[str, Any]]:
    """What the workflow creates at run time on the kind stack, as its builders make it."""
    experiment = build_tuning_experiment("winequality", "s3://datasets/x.parquet", max_trials=2, parallel_trials=1,
                                         max_failed_trials=0, namespace=RUN_NAMESPACE)
    deployments = [seldon_deployment(protocol, model_name="kfops-winequality", version="1", model_uri="s3://mlflow/x",
                                     namespace=RUN_NAMESPACE, settings=ServingSettings()) for protocol in ("v2", "v1")]
    return [experiment, *deployments]


def _without_schemas(objects: list[dict[str, Any]], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects with each CRD's version schemas set aside in ``schemas`` (by CRD name).

    Megabytes of OpenAPI schemas cost the mock runtime seconds to serialise, and the program never looks inside them;
    they are put back on the recorded CRDs (:func:`_with_schemas`)."""
    lighter = []
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            name = obj["metadata"]["name"]
            schemas[name] = [version.get("schema") for version in obj["spec"].get("versions", [])]
            obj = {**obj, "spec": {**obj["spec"], "versions": [
                {key: value for key, value in version.items() if key != "schema"}
                for version in obj["spec"].get("versions", [])]}}
        lighter.append(obj)
    return lighter


def _with_schemas(obj: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    name = obj.get("metadata", {}).get("name")
    if obj.get("kind") == "CustomResourceDefinition" and name in schemas:
        for version, schema in zip(obj["spec"]["versions"], schemas[name], strict=True):
            if schema is not None:
                version["schema"] = schema
    return obj


def build_world(config: dict[str, str], secret_keys: list[str], stack: str = "kind") -> World:
    """The world of a stack config (see :func:`kind_world`)."""
    schemas: dict[str, Any] = {}
    rendering = run_program(config, secret_keys, stack=stack,
                            kustomize=lambda directory: _without_schemas(bundle(directory), schemas))
    world = World(rendering)
    world.placed += [Placed(_with_schemas(placed.obj, schemas), placed.resource, placed.origin)
                     for placed in map(_placed_from, rendering.objects())]
    for release in rendering.of_type(HELM_RELEASE):
        values = scrub(release.inputs)
        world.placed += [Placed(obj, release.name, "upstream") for obj in chart_objects(values)]
    world.placed += [Placed(obj, None, "run") for obj in run_objects()]
    return world


@functools.cache
def kind_world() -> World:
    """The kind stack (``Pulumi.kind.yaml``) with everything it installs. Built once per test session."""
    _, config, secret_keys = load_stack_config("kind")
    return build_world(config, secret_keys)
