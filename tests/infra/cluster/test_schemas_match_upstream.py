"""The structural schemas kfops validates its custom resources with match upstream's, field for field.

Upstream's fields are read at test time from the CRDs, or Katib's API definition, in the pinned upstream data
(``tests/upstream/fields.py``). Below the parts both sides leave to Kubernetes' own
schemas (a PodSpec, an env list...), nothing is compared here: ``infra/cluster/validate.py`` checks those with
Kubernetes' schemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.cluster.validate import SCHEMA_DIR
from tests.upstream.fields import CRDS, upstream_fields, walk

pytestmark = pytest.mark.unit



def inline(schema: Any, document: str, documents: dict[str, dict[str, Any]], path: str, core: set[str]) -> Any:
    """``schema`` at ``path`` with every ``$ref`` (to this file or another in the schema dir) replaced by what it
    points at, down to the parts left to Kubernetes' schemas (where recursive definitions end too)."""
    if path in core:
        return {"type": "object"}
    while isinstance(schema, dict) and "$ref" in schema:
        file, _, pointer = schema["$ref"].partition("#")
        document = file or document
        schema = documents[document]
        for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
            schema = schema[part]
    if not isinstance(schema, dict):
        return schema
    result = dict(schema)
    if isinstance(schema.get("properties"), dict):
        result["properties"] = {name: inline(child, document, documents, f"{path}.{name}" if path else name, core)
                                for name, child in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        result["items"] = inline(schema["items"], document, documents, f"{path}[]", core)
    if isinstance(schema.get("additionalProperties"), dict):
        result["additionalProperties"] = inline(schema["additionalProperties"], document, documents, f"{path}{{}}",
                                                core)
    return result


def ours(stem: str, core: set[str]) -> tuple[dict[str, str], dict[str, list[str]], dict[str, bool]]:
    """Our schema's fields, required lists, and which objects refuse unknown fields."""
    documents = {path.name: json.loads(path.read_text()) for path in SCHEMA_DIR.glob("*.json")}
    schema = inline(documents[f"{stem}.json"], f"{stem}.json", documents, "", core)
    fields: dict[str, str] = {}
    required: dict[str, list[str]] = {}
    closed: dict[str, bool] = {}

    def record(node: dict[str, Any], path: str) -> None:
        if path in core:
            return
        if node.get("additionalProperties") is False:
            closed[path] = True
        if path and node.get("type") == "object" and "properties" not in node \
                and node.get("additionalProperties") in (None, True):
            fields[path] = "object*"  # open: anything goes, as upstream's preserve-unknown-fields
        elif path and "const" in node:
            fields[path] = "string" if isinstance(node["const"], str) else fields.get(path, "any")
        for name, child in (node.get("properties") or {}).items():
            record(child, f"{path}.{name}" if path else name)
        if isinstance(node.get("items"), dict):
            record(node["items"], f"{path}[]")

    walk(schema, "", core, fields, required=required)
    record(schema, "")
    # Several JSON types (e.g. an int-or-string quantity) is what upstream leaves untyped.
    fields = {path: "any" if isinstance(kind, list) else kind for path, kind in fields.items()}
    return fields, required, closed


def children(fields: dict[str, str], parent: str) -> set[str]:
    prefix = f"{parent}." if parent else ""
    return {rest for path in fields if path.startswith(prefix)
            and not any(mark in (rest := path[len(prefix):]) for mark in ".[{")}


@pytest.mark.parametrize("stem", sorted(CRDS))
def test_every_field_we_accept_exists_upstream_with_the_same_type(stem: str) -> None:
    upstream = upstream_fields(stem)
    fields, _, _ = ours(stem, set(upstream["core"]))
    skip = ("metadata", "status")
    unknown = {path: kind for path, kind in fields.items() if not path.startswith(skip)
               and path not in upstream["fields"]}
    assert unknown == {}, f"fields upstream ({upstream['source']}) does not have"
    mismatched = {path: (kind, upstream["fields"][path]) for path, kind in fields.items()
                  if not path.startswith(skip) and kind != upstream["fields"][path]
                  and not (kind == "any" and upstream["fields"][path] != "core")}
    assert mismatched == {}, "(ours, upstream) types differ"


@pytest.mark.parametrize("stem", sorted(CRDS))
def test_every_object_we_close_lists_exactly_upstreams_fields(stem: str) -> None:
    upstream = upstream_fields(stem)
    fields, _, closed = ours(stem, set(upstream["core"]))
    for path in closed:
        if path.startswith(("metadata", "status")) or upstream["fields"].get(path, "object") != "object":
            continue
        own = {"metadata", "status"} if not path else set()
        assert children(fields, path) - own == children(upstream["fields"], path) - own, f"{path or '<root>'}"


@pytest.mark.parametrize("stem", sorted(CRDS))
def test_what_upstream_requires_we_require(stem: str) -> None:
    upstream = upstream_fields(stem)
    _, required, _ = ours(stem, set(upstream["core"]))
    for path, names in upstream["required"].items():
        assert set(names) <= set(required.get(path, [])), f"{path}: upstream requires {names}"


def test_the_field_lists_name_their_pinned_sources() -> None:
    for stem, crd in CRDS.items():
        record = upstream_fields(stem)
        assert record["source"] == f"{crd['repo']}@{crd['tag']}:{crd['path']}"
        assert record["fields"], stem
    assert {path.stem for path in SCHEMA_DIR.glob("*.json")} - {"common"} == set(CRDS)


def test_a_schema_that_accepts_a_field_upstream_does_not_know_fails_this_check(tmp_path: Path) -> None:
    upstream = upstream_fields("kubeflow.org_v1alpha1_PodDefault")
    assert "spec.sidecar" not in upstream["fields"]
    assert "spec.sidecars" in upstream["fields"]
