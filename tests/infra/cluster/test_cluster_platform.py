from __future__ import annotations

import re

import pytest

from infra.cluster import platform as cluster_platform
from infra.cluster.platform import Platform, PlatformArgs, drop
from infra.cluster.render import Rendering, record
from kfops.base.contract import S3_SECRET_NAME

pytestmark = pytest.mark.unit

RELEASE_TAG = re.compile(r"^v?\d+\.\d+\.\d+$")


def build(version: str = "1.17.1") -> Rendering:
    return record(lambda: Platform("platform", PlatformArgs(seldon_version=version)))


@pytest.mark.parametrize("name", ["CERT_MANAGER_VERSION", "KFP_VERSION", "KATIB_VERSION",
                                  "KUBEFLOW_MANIFESTS_VERSION"])
def test_upstream_sources_are_pinned_to_release_tags(name: str) -> None:
    assert RELEASE_TAG.match(getattr(cluster_platform, name))


def test_every_upstream_reference_is_pinned() -> None:
    rendering = build()
    directories = [arguments["directory"] for token, arguments in rendering.invokes
                   if token == "kubernetes:kustomize:directory"]
    assert len(directories) == 4
    for directory in directories:
        ref = re.search(r"^https://github.com/[^/]+/[^/]+/tree/([^/]+)/", directory)
        assert ref, directory
        assert RELEASE_TAG.match(ref.group(1)), directory
    releases = {resource.inputs["chart"]: resource.inputs["version"]
                for resource in rendering.of_type("kubernetes:helm.sh/v3:Release")}
    assert releases == {"cert-manager": cluster_platform.CERT_MANAGER_VERSION, "seldon-core-operator": "1.17.1"}


def test_seldon_operator_follows_the_stack_version() -> None:
    [seldon] = [resource for resource in build("1.16.0").of_type("kubernetes:helm.sh/v3:Release")
                if resource.inputs["chart"] == "seldon-core-operator"]
    assert seldon.inputs["version"] == "1.16.0"
    assert seldon.inputs["values"]["usageMetrics"] == {"enabled": False}


def test_kfp_waits_for_cert_manager() -> None:
    assert "platform-cert-manager" in build().named("platform-kfp").depends_on


@pytest.mark.parametrize(
    ("obj", "dropped"),
    [
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": S3_SECRET_NAME}}, True),
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other"}}, False),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": S3_SECRET_NAME}}, False),
    ],
)
def test_objects_this_program_owns_are_left_out_of_upstream_manifests(obj: dict, dropped: bool) -> None:
    drop(("Secret", S3_SECRET_NAME))(obj, None)  # type: ignore[arg-type]
    assert (obj == {"apiVersion": "v1", "kind": "List", "items": []}) is dropped
