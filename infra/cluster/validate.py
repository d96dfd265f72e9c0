"""Offline validation of the Kubernetes objects kfops creates, so a typo in a field name fails a test, not a cluster.

Core objects (Namespace, Secret, Deployment, Role...) are checked by ``kubernetes-validate`` against Kubernetes' own
OpenAPI schemas in strict mode (unknown fields are errors). Custom resources are checked against the structural JSON
schemas in ``infra/cluster/schemas/``, written from the fields of the upstream CRDs, which also reject unknown
fields. Where a custom resource embeds core types (a PodDefault's env and volumes, a Katib trial Job, a Seldon
PodSpec), those parts are checked with Kubernetes' schemas too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

from kfops.base.errors import KfopsError

#: Kubernetes minor version core objects are validated for (the kind node image of the nightly e2e).
KUBERNETES_VERSION = "1.33"
SCHEMA_DIR = Path(__file__).with_name("schemas")

#: A core-typed part of a custom resource: (its path in the resource, the same part's path inside the synthetic
#: core object built to validate it, that object).
Part = tuple[str, str, dict[str, Any]]
Embedded = Callable[[dict[str, Any]], Iterator[Part]]


class ManifestError(KfopsError):
    """An object that the API server would reject (or silently prune): names the object and the bad field path."""

    def __init__(self, obj: dict[str, Any], path: str, problem: str) -> None:
        self.object_ref = describe(obj)
        self.path = path
        super().__init__(f"{self.object_ref}: {path or '<object>'}: {problem}",
                         "correct the field where the object is built; the schemas are in infra/cluster/schemas/",
                         step="validate")


def describe(obj: dict[str, Any]) -> str:
    """Name an object the way kubectl does: ``Kind namespace/name`` (or ``Kind name`` if cluster-scoped).

    Args:
        obj: A Kubernetes object.

    Returns:
        The description.
    """
    meta = obj.get("metadata") or {}
    name = meta.get("name", "<unnamed>")
    where = f"{meta['namespace']}/{name}" if meta.get("namespace") else name
    return f"{obj.get('kind', '<no kind>')} {where} ({obj.get('apiVersion', '<no apiVersion>')})"


def validate_manifest(obj: dict[str, Any]) -> None:
    """Validate one object as the API server would, offline.

    Args:
        obj: A core object or one of the custom resources kfops uses (PodDefault, Profile, Katib Experiment,
            SeldonDeployment, Pipeline, PipelineVersion).

    Raises:
        ManifestError: Naming the object and the path of the first bad field, e.g.
            ``spec.trialTemplate.trialParameters[0].referance``. Also raised for a kind with no schema here.
    """
    if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
        raise ManifestError(obj if isinstance(obj, dict) else {}, "", "not a Kubernetes object (apiVersion, kind)")
    schema_file = SCHEMA_DIR / f"{_schema_stem(obj)}.json"
    if schema_file.is_file():
        _validate_custom(obj, schema_file.name)
        for part in EMBEDDED_CORE.get(obj["kind"], _nothing)(obj):
            _validate_core(obj, part)
    else:
        _validate_core(obj, ("", "", obj))


def validate_all(objects: Iterable[dict[str, Any]]) -> None:
    """Validate several objects, stopping at the first bad one.

    Args:
        objects: Kubernetes objects.

    Raises:
        ManifestError: As :func:`validate_manifest`.
    """
    for obj in objects:
        validate_manifest(obj)


def _schema_stem(obj: dict[str, Any]) -> str:
    group_version = str(obj["apiVersion"]).replace("/", "_")
    return f"{group_version}_{obj['kind']}"


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def _validate_custom(obj: dict[str, Any], file_name: str) -> None:
    registry = _registry()
    schema = next(resource.contents for uri, resource in registry.items() if uri.endswith(f"/{file_name}"))
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is not None:
        raise ManifestError(obj, field_path(error), error.message)


def _validate_core(obj: dict[str, Any], part: Part) -> None:
    prefix, inner, core = part
    try:
        kubernetes_validate.validate(core, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        raise ManifestError(obj, _relocate(field_path(error), inner, prefix), error.message) from None
    except kubernetes_validate.SchemaNotFoundError:
        if prefix:
            return  # an embedded custom resource (a PyTorchJob trial...): its own CRD validates it on the cluster
        raise ManifestError(obj, "", f"no schema for {core.get('kind')} {core.get('apiVersion')}: not a Kubernetes "
                                     f"{KUBERNETES_VERSION} kind, nor one in infra/cluster/schemas/") from None


def field_path(error: jsonschema.ValidationError) -> str:
    """The dotted path of a schema error; for an unknown field, the path of that field itself.

    Args:
        error: A jsonschema error.

    Returns:
        E.g. ``spec.template.spec.containers[0].imagee``.
    """
    parts = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unexpected = sorted(key for key in error.instance if key not in known)
        if unexpected:
            parts.append(unexpected[0])
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _relocate(path: str, inner: str, prefix: str) -> str:
    # Map a path inside the synthetic wrapper object back to the same field of the custom resource.
    if inner and path.startswith(inner):
        return prefix + path[len(inner):]
    return f"{prefix}.{path}" if prefix and path else prefix or path


def _nothing(_obj: dict[str, Any]) -> Iterator[Part]:
    return iter(())


def _synthetic_pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _poddefault_parts(obj: dict[str, Any]) -> Iterator[Part]:
    spec = obj.get("spec") or {}
    for key in ("env", "envFrom", "volumeMounts"):
        if key in spec:
            yield (f"spec.{key}", f"spec.containers[0].{key}",
                   _synthetic_pod("poddefault", {"containers": [{"name": "c", key: spec[key]}]}))
    for key in ("volumes", "tolerations", "imagePullSecrets", "initContainers"):
        if key in spec:
            yield f"spec.{key}", f"spec.{key}", _synthetic_pod("poddefault", {"containers": [{"name": "c"}],
                                                                              key: spec[key]})
    if "sidecars" in spec:  # containers added next to the pod's own
        yield "spec.sidecars", "spec.containers", _synthetic_pod("poddefault", {"containers": spec["sidecars"]})


def _profile_parts(obj: dict[str, Any]) -> Iterator[Part]:
    quota = (obj.get("spec") or {}).get("resourceQuotaSpec")
    if quota:
        yield "spec.resourceQuotaSpec", "spec", {"apiVersion": "v1", "kind": "ResourceQuota",
                                         "metadata": {"name": "profile"}, "spec": quota}


def _experiment_parts(obj: dict[str, Any]) -> Iterator[Part]:
    trial = ((obj.get("spec") or {}).get("trialTemplate") or {}).get("trialSpec")
    if isinstance(trial, dict) and trial.get("apiVersion") and trial.get("kind"):
        yield "spec.trialTemplate.trialSpec", "", trial


def _seldon_parts(obj: dict[str, Any]) -> Iterator[Part]:
    for p, predictor in enumerate((obj.get("spec") or {}).get("predictors") or []):
        for c, component in enumerate(predictor.get("componentSpecs") or []):
            if component.get("spec"):
                yield (f"spec.predictors[{p}].componentSpecs[{c}].spec", "spec",
                       _synthetic_pod("seldon", component["spec"]))


#: Where each custom resource embeds core types that Kubernetes' own schemas can check.
EMBEDDED_CORE: dict[str, Embedded] = {
    "PodDefault": _poddefault_parts,
    "Profile": _profile_parts,
    "Experiment": _experiment_parts,
    "SeldonDeployment": _seldon_parts,
}
