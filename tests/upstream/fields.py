"""Field lists of upstream custom resources, read at test time from their definitions in the pinned upstream data
(:mod:`tests.upstream.data`): a CRD's ``openAPIV3Schema`` (Helm template lines dropped) or an OpenAPI definition.

One ``path: type`` entry per field, ``[]`` standing for an array's items. The walk stops at the parts a kfops schema
leaves to Kubernetes' own schemas (``core`` paths, e.g. a PodSpec) and at ``x-kubernetes-preserve-unknown-fields``
objects (type ``object*``).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import yaml


def walk(schema: dict[str, Any], path: str, core: set[str], out: dict[str, str],
         resolve: Any = lambda s: s, required: dict[str, list[str]] | None = None) -> None:
    """Record the type of ``schema`` at ``path`` and of everything below it (and, into ``required``, which
    children each object requires)."""
    schema = resolve(schema)
    kind = schema.get("type") or ("object" if "properties" in schema else "any")
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        kind = "object*"
    if path:
        out[path] = "core" if path in core else kind
    if path in core or kind == "object*":
        return
    if required is not None and schema.get("required"):
        required[path] = sorted(schema["required"])
    for name, child in (schema.get("properties") or {}).items():
        walk(child, f"{path}.{name}" if path else name, core, out, resolve, required)
    if "items" in schema:
        walk(schema["items"], f"{path}[]", core, out, resolve, required)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        walk(extra, f"{path}{{}}", core, out, resolve, required)


def from_crd(text: str, version: str, core: set[str], required: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Fields of one served version of a CRD (Helm directives dropped)."""
    plain = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("{{"))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = next(doc for doc in yaml.load_all(plain, Loader=loader)
               if doc and doc.get("kind") == "CustomResourceDefinition")
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    out: dict[str, str] = {}
    walk(schema, "", core, out, required=required)
    return out


def from_swagger(text: str, root: str, core: set[str],
                 required: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Fields of a swagger (``definitions``) or OpenAPI 3 (``components.schemas``) definition, references resolved."""
    document = json.loads(text)
    definitions = document.get("definitions") or document["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        # OpenAPI 3 wraps a reference with a description or default as {"allOf": [{"$ref": ...}]}.
        while "$ref" in schema or (len(schema.get("allOf") or []) == 1 and "$ref" in schema["allOf"][0]):
            reference = schema["$ref"] if "$ref" in schema else schema["allOf"][0]["$ref"]
            name = reference.rsplit("/", 1)[1]
            if name not in definitions:  # a Kubernetes type the file only names (v1.ObjectMeta...)
                return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            schema = definitions[name]
        return schema

    out: dict[str, str] = {}
    walk(definitions[root], "", core, out, resolve, required)
    return out


#: The custom resources kfops writes, where their upstream definition is at the pinned tag, and the parts a kfops
#: schema hands to Kubernetes' own schemas.
CRDS: dict[str, dict[str, Any]] = {
    "kubeflow.org_v1alpha1_PodDefault": {
        "repo": "kubeflow/manifests", "tag": "v1.10.0", "format": "crd",
        "path": "apps/admission-webhook/upstream/base/crd.yaml", "version": "v1alpha1",
        "core": ["spec.env", "spec.envFrom", "spec.volumes", "spec.volumeMounts", "spec.tolerations",
                 "spec.initContainers", "spec.sidecars", "spec.imagePullSecrets"]},
    "kubeflow.org_v1_Profile": {
        "repo": "kubeflow/manifests", "tag": "v1.10.0", "format": "crd",
        "path": "apps/profiles/upstream/crd/bases/kubeflow.org_profiles.yaml", "version": "v1",
        "core": ["spec.resourceQuotaSpec"]},
    "kubeflow.org_v1beta1_Experiment": {
        "repo": "kubeflow/katib", "tag": "v0.19.0", "format": "swagger",
        "path": "api/openapi-spec/swagger.json", "root": "v1beta1.Experiment",
        "core": ["spec.trialTemplate.trialSpec", "spec.metricsCollectorSpec.collector.customCollector",
                 "spec.metricsCollectorSpec.source.httpGet"]},
    "machinelearning.seldon.io_v1_SeldonDeployment": {
        "repo": "SeldonIO/seldon-core", "tag": "v1.17.1", "format": "crd",
        "path": "helm-charts/seldon-core-operator/templates/"
                "customresourcedefinition_v1_seldondeployments.machinelearning.seldon.io.yaml", "version": "v1",
        "core": ["spec.predictors[].componentSpecs[].spec", "spec.predictors[].componentSpecs[].hpaSpec",
                 "spec.predictors[].componentSpecs[].kedaSpec", "spec.predictors[].componentSpecs[].pdbSpec",
                 "spec.predictors[].componentSpecs[].metadata", "spec.predictors[].svcOrchSpec",
                 "spec.predictors[].explainer.containerSpec", "spec.predictors[].graph.children[].children"]},
    "pipelines.kubeflow.org_v2beta1_Pipeline": {
        "repo": "kubeflow/pipelines", "tag": "2.17.0", "format": "crd",
        "path": "manifests/kustomize/base/crds/pipelines.kubeflow.org_pipelines.yaml", "version": "v2beta1",
        "core": []},
    "pipelines.kubeflow.org_v2beta1_PipelineVersion": {
        "repo": "kubeflow/pipelines", "tag": "2.17.0", "format": "crd",
        "path": "manifests/kustomize/base/crds/pipelines.kubeflow.org_pipelineversions.yaml", "version": "v2beta1",
        "core": []},
}


@functools.cache
def upstream_fields(stem: str) -> dict[str, Any]:
    """``{"source", "core", "fields", "required"}`` of one custom resource of :data:`CRDS`, from the pinned data."""
    from tests.upstream import data

    crd = CRDS[stem]
    text = data.text(data.at(crd["repo"], crd["tag"], crd["path"]))
    core = set(crd["core"])
    required: dict[str, list[str]] = {}
    fields = from_crd(text, crd["version"], core, required) if crd["format"] == "crd" else \
        from_swagger(text, crd["root"], core, required)
    own = ("status", "metadata")
    return {"source": f"{crd['repo']}@{crd['tag']}:{crd['path']}", "core": sorted(core),
            "fields": {k: v for k, v in fields.items() if not k.startswith(own)},
            "required": {k: v for k, v in required.items() if not k.startswith(own)}}
