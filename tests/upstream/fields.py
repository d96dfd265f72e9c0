"""Field lists of upstream custom resources, read from their sources at a tag: how the facts modules' field lists
(``kfops.base.upstream``) are made, and re-made after a version bump.

Reads a CRD's ``openAPIV3Schema`` (Helm template lines are dropped) or a swagger/OpenAPI definition, and prints one
``path: type`` line per field, ``[]`` standing for an array's items. The walk stops at the parts a kfops schema
leaves to Kubernetes' own schemas (``--core PATH``, e.g. a PodSpec) and at ``x-kubernetes-preserve-unknown-fields``
objects (type ``object*``). ``python -m tests.upstream.fields regenerate`` rewrites every list from mirrors of the
repositories at the pinned tags (see :data:`CRDS`). One CRD, from a mirror of the repository::

    git -C MIRROR show TAG:PATH | python -m tests.upstream.fields crd --version v1 --core spec.env
    git -C MIRROR show TAG:pkg/apis/v1beta1/swagger.json | python -m tests.upstream.fields swagger \\
        --root v1beta1.Experiment --core spec.trialTemplate.trialSpec
"""

from __future__ import annotations

import argparse
import json
import sys
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
    crd = next(doc for doc in yaml.safe_load_all(plain) if doc and doc.get("kind") == "CustomResourceDefinition")
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    out: dict[str, str] = {}
    walk(schema, "", core, out, required=required)
    return out


def from_swagger(text: str, root: str, core: set[str],
                 required: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Fields of a swagger definition, references resolved."""
    definitions = json.loads(text)["definitions"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            if name not in definitions:  # a Kubernetes type the file only names (v1.ObjectMeta...)
                return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            schema = definitions[name]
        return schema

    out: dict[str, str] = {}
    walk(definitions[root], "", core, out, resolve, required)
    return out


#: The custom resources kfops writes, where their upstream definition is at the pinned tag, and the parts a kfops
#: schema hands to Kubernetes' own schemas. ``regenerate`` rewrites kfops/base/upstream/crds/ from these.
CRDS: dict[str, dict[str, Any]] = {
    "kubeflow.org_v1alpha1_PodDefault": {
        "repo": "kubeflow/manifests", "mirror": "kubeflow+manifests", "tag": "v1.10.0", "format": "crd",
        "path": "apps/admission-webhook/upstream/base/crd.yaml", "version": "v1alpha1",
        "core": ["spec.env", "spec.envFrom", "spec.volumes", "spec.volumeMounts", "spec.tolerations",
                 "spec.initContainers", "spec.sidecars", "spec.imagePullSecrets"]},
    "kubeflow.org_v1_Profile": {
        "repo": "kubeflow/manifests", "mirror": "kubeflow+manifests", "tag": "v1.10.0", "format": "crd",
        "path": "apps/profiles/upstream/crd/bases/kubeflow.org_profiles.yaml", "version": "v1",
        "core": ["spec.resourceQuotaSpec"]},
    "kubeflow.org_v1beta1_Experiment": {
        "repo": "kubeflow/katib", "mirror": "kubeflow+katib", "tag": "v0.19.0", "format": "swagger",
        "path": "pkg/apis/v1beta1/swagger.json", "root": "v1beta1.Experiment",
        "core": ["spec.trialTemplate.trialSpec", "spec.metricsCollectorSpec.collector.customCollector",
                 "spec.metricsCollectorSpec.source.httpGet"]},
    "machinelearning.seldon.io_v1_SeldonDeployment": {
        "repo": "SeldonIO/seldon-core", "mirror": "SeldonIO+seldon-core", "tag": "v1.17.1", "format": "crd",
        "path": "helm-charts/seldon-core-operator/templates/"
                "customresourcedefinition_v1_seldondeployments.machinelearning.seldon.io.yaml", "version": "v1",
        "core": ["spec.predictors[].componentSpecs[].spec", "spec.predictors[].componentSpecs[].hpaSpec",
                 "spec.predictors[].componentSpecs[].kedaSpec", "spec.predictors[].componentSpecs[].pdbSpec",
                 "spec.predictors[].componentSpecs[].metadata", "spec.predictors[].svcOrchSpec",
                 "spec.predictors[].explainer.containerSpec", "spec.predictors[].graph.children[].children"]},
    "pipelines.kubeflow.org_v2beta1_Pipeline": {
        "repo": "kubeflow/pipelines", "mirror": "kubeflow+pipelines", "tag": "2.17.0", "format": "crd",
        "path": "manifests/kustomize/base/crds/pipelines.kubeflow.org_pipelines.yaml", "version": "v2beta1",
        "core": []},
    "pipelines.kubeflow.org_v2beta1_PipelineVersion": {
        "repo": "kubeflow/pipelines", "mirror": "kubeflow+pipelines", "tag": "2.17.0", "format": "crd",
        "path": "manifests/kustomize/base/crds/pipelines.kubeflow.org_pipelineversions.yaml", "version": "v2beta1",
        "core": []},
}


def regenerate(mirrors: str, out: str) -> None:
    """Rewrite the field lists from mirrors of the upstream repositories (``fetch`` places them)."""
    import subprocess
    from pathlib import Path

    for stem, crd in CRDS.items():
        text = subprocess.run(["git", "-C", f"{mirrors}/{crd['mirror']}/repo", "show", f"{crd['tag']}:{crd['path']}"],
                              capture_output=True, text=True, check=True).stdout
        core = set(crd["core"])
        required: dict[str, list[str]] = {}
        fields = from_crd(text, crd["version"], core, required) if crd["format"] == "crd" else \
            from_swagger(text, crd["root"], core, required)
        own = ("status", "metadata")
        fields = {k: v for k, v in sorted(fields.items()) if not k.startswith(own)}
        required = {k: v for k, v in sorted(required.items()) if not k.startswith(own)}
        record = {"source": f"{crd['repo']}@{crd['tag']}:{crd['path']}", "core": sorted(core), "fields": fields,
                  "required": required}
        Path(out, f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{stem}: {len(fields)} fields from {record['source']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=("crd", "swagger", "regenerate"))
    parser.add_argument("--mirrors", default="/work/.mirror")
    parser.add_argument("--out", default="kfops/base/upstream/crds")
    parser.add_argument("--version", default="v1")
    parser.add_argument("--root", default="")
    parser.add_argument("--core", action="append", default=[])
    args = parser.parse_args()
    if args.source == "regenerate":
        regenerate(args.mirrors, args.out)
        return
    text = sys.stdin.read()
    core = set(args.core)
    fields = from_crd(text, args.version, core) if args.source == "crd" else from_swagger(text, args.root, core)
    for path, kind in sorted(fields.items()):
        print(f"{path}: {kind}")


if __name__ == "__main__":
    main()
