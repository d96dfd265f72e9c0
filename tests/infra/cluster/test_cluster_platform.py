"""The platform install: pinned references, and the order the objects of each install are created in.

Under the mock runtime no upstream kustomization is fetched; these tests hand the program a few objects of each
install, with the kinds and names upstream's manifests have at the pinned tags (see kfops/base/upstream), so the
transformations and dependencies are exercised on what `pulumi up` will meet.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra.cluster.mock_runtime import Rendering, record
from infra.cluster.platform import KUSTOMIZATIONS, Platform, PlatformArgs, drop
from kfops.base.contract import S3_SECRET_NAME
from kfops.base.upstream import cert_manager, katib, kfp, kubeflow, seldon

pytestmark = pytest.mark.unit

RELEASE_TAG = re.compile(r"^v?\d+\.\d+\.\d+$")


def obj(api_version: str, kind: str, name: str, namespace: str | None = "kubeflow") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    item: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": meta}
    if kind == "Deployment":
        pod = {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": "upstream"}]}}
        item["spec"] = {"selector": {"matchLabels": {"app": name}}, "template": pod}
    elif kind == "CustomResourceDefinition":
        item["spec"] = {"group": "argoproj.io", "names": {"kind": "Workflow", "plural": "workflows"},
                        "scope": "Namespaced", "versions": []}
    elif kind in ("Certificate", "Issuer"):
        item["spec"] = {}
    return item


#: A few objects of each install, as upstream's manifests name them at the pinned tags.
UPSTREAM = {
    KUSTOMIZATIONS["kfp-cluster-scoped"]: [
        obj("v1", "Namespace", "kubeflow", None),
        obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "workflows.argoproj.io", None),
        obj("v1", "ServiceAccount", "kubeflow-pipelines-cache-deployer-sa"),
    ],
    KUSTOMIZATIONS["kfp"]: [
        obj("v1", "Secret", S3_SECRET_NAME),
        obj("apps/v1", "Deployment", "ml-pipeline"),
        obj("apps/v1", "Deployment", "seaweedfs"),
        obj("cert-manager.io/v1", "Certificate", "kfp-api-webhook-cert"),
    ],
    KUSTOMIZATIONS["katib"]: [
        obj("v1", "Namespace", "kubeflow", None),
        obj("apps/v1", "Deployment", "katib-controller"),
    ],
    KUSTOMIZATIONS["poddefaults"]: [
        obj("cert-manager.io/v1", "Issuer", "admission-webhook-selfsigned-issuer"),
        obj("apps/v1", "Deployment", "admission-webhook-deployment"),
    ],
}


def build(version: str = seldon.VERSION) -> Rendering:
    def program() -> None:
        import pulumi_kubernetes as k8s

        namespace = k8s.core.v1.Namespace("kubeflow-namespace", metadata={"name": "kubeflow"})
        secret = k8s.core.v1.Secret("kfp-secret", metadata={"name": S3_SECRET_NAME, "namespace": "kubeflow"})
        platform = Platform("platform", PlatformArgs(seldon_version=version, prerequisites=[namespace, secret]))
        import pulumi

        k8s.core.v1.ConfigMap("needs-platform", metadata={"name": "after", "namespace": "kubeflow"},
                              opts=pulumi.ResourceOptions(depends_on=platform.ready))

    return record(program, kustomize=lambda directory: [dict(item) for item in UPSTREAM.get(directory, [])])


def test_every_upstream_reference_is_pinned_to_the_facts_version() -> None:
    rendering = build()
    directories = {arguments["directory"] for token, arguments in rendering.invokes
                   if token == "kubernetes:kustomize:directory"}
    assert directories == {
        f"https://github.com/{kfp.REPO}/tree/{kfp.VERSION}/{kfp.CLUSTER_SCOPED.value}",
        f"https://github.com/{kfp.REPO}/tree/{kfp.VERSION}/{kfp.K8S_NATIVE.value}",
        f"https://github.com/{katib.REPO}/tree/{katib.VERSION}/{katib.STANDALONE.value}",
        f"https://github.com/{kubeflow.REPO}/tree/{kubeflow.VERSION}/{kubeflow.PODDEFAULT_WEBHOOK.value}",
    }
    for directory in directories:
        ref = re.search(r"^https://github.com/[^/]+/[^/]+/tree/([^/]+)/", directory)
        assert ref, directory
        assert RELEASE_TAG.match(ref.group(1)), directory
    releases = {resource.inputs["chart"]: (resource.inputs["name"], resource.inputs["version"])
                for resource in rendering.of_type("kubernetes:helm.sh/v3:Release")}
    assert releases == {"cert-manager": (cert_manager.RELEASE, cert_manager.VERSION),
                        "seldon-core-operator": ("seldon-core", seldon.VERSION)}


def test_objects_kfops_creates_itself_are_left_out_of_the_installs() -> None:
    rendering = build()
    names = {(r.inputs.get("kind"), r.inputs["metadata"]["name"]) for r in rendering.resources
             if r.is_kubernetes_object and r.name.startswith("platform-")}
    assert ("Namespace", "kubeflow") not in names
    assert ("Secret", S3_SECRET_NAME) not in names
    assert ("Deployment", "ml-pipeline") in names


def dependencies_of(rendering: Rendering, kind: str, name: str) -> set[str]:
    [resource] = [r for r in rendering.resources if r.is_kubernetes_object and r.inputs["kind"] == kind
                  and r.inputs["metadata"]["name"] == name and r.name.startswith("platform-")]
    return resource.depends_on


def test_kfp_starts_after_its_secret_cert_manager_and_its_cluster_scoped_resources() -> None:
    rendering = build()
    for kind, name in (("Deployment", "ml-pipeline"), ("Deployment", "seaweedfs"),
                       ("Certificate", "kfp-api-webhook-cert")):
        needs = dependencies_of(rendering, kind, name)
        assert {"kfp-secret", "kubeflow-namespace", "platform-cert-manager"} <= needs, (kind, name, needs)
        assert any("workflows.argoproj.io" in need for need in needs), needs


def test_the_poddefault_webhooks_certificates_wait_for_cert_manager() -> None:
    assert "platform-cert-manager" in dependencies_of(build(), "Issuer", "admission-webhook-selfsigned-issuer")


def test_what_needs_the_platform_waits_for_every_object_of_every_install() -> None:
    needs = build().named("needs-platform").depends_on
    for name in ("ml-pipeline", "seaweedfs", "katib-controller", "admission-webhook-deployment"):
        assert any(need.endswith(name) for need in needs), (name, needs)
    assert {"platform-cert-manager", "platform-seldon-core"} <= needs


def test_seldon_operator_follows_the_stack_version() -> None:
    [operator] = [resource for resource in build("1.16.0").of_type("kubernetes:helm.sh/v3:Release")
                  if resource.inputs["chart"] == "seldon-core-operator"]
    assert operator.inputs["version"] == "1.16.0"
    assert operator.inputs["values"]["usageMetrics"] == {"enabled": False}


@pytest.mark.parametrize(
    ("item", "dropped"),
    [
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": S3_SECRET_NAME}}, True),
        ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other"}}, False),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": S3_SECRET_NAME}}, False),
    ],
)
def test_the_drop_transformation(item: dict, dropped: bool) -> None:
    drop(("Secret", S3_SECRET_NAME))(item, None)  # type: ignore[arg-type]
    assert (item == {"apiVersion": "v1", "kind": "List", "items": []}) is dropped
