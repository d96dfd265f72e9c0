"""The platform install, on upstream's own objects: each kustomization is answered with its pinned ``built/`` bundle
and each Helm release rendered from its pinned chart (:mod:`tests.upstream.world`), so the program's transformations
and dependencies are exercised on exactly what ``pulumi up`` will meet."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from infra.cluster.mock_runtime import Rendering, record
from infra.cluster.platform import DROPPED, KUSTOMIZATIONS, WAIT_FOR, Platform, PlatformArgs, drop, seldon_values
from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT, S3_SECRET_NAME
from kfops.base.upstream import cert_manager, katib, kfp, kubeflow, seldon
from tests.upstream import data
from tests.upstream.world import HELM_RELEASE, World, bundle, kind_world

pytestmark = pytest.mark.unit

RELEASE_TAG = re.compile(r"^v?\d+\.\d+\.\d+$")


@pytest.fixture(scope="module")
def world() -> World:
    return kind_world()


def build(version: str) -> Rendering:
    """The Platform component alone (no upstream objects: only its references are looked at)."""

    def program() -> None:
        Platform("platform", PlatformArgs(seldon_version=version))

    return record(program)


def test_every_upstream_reference_is_pinned_to_the_facts_version(world: World) -> None:
    directories = {arguments["directory"] for token, arguments in world.rendering.invokes
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
                for resource in world.rendering.of_type(HELM_RELEASE)}
    assert releases == {"cert-manager": (cert_manager.RELEASE, cert_manager.VERSION),
                        "seldon-core-operator": ("seldon-core", seldon.VERSION)}


@pytest.mark.parametrize("part", sorted(DROPPED))
def test_what_an_install_leaves_out_is_in_upstreams_bundle(part: str) -> None:
    """A drop that names nothing (upstream renamed the object) would silently install upstream's copy too."""
    present = {(obj["kind"], obj["metadata"]["name"]) for obj in bundle(KUSTOMIZATIONS[part])}
    assert set(DROPPED[part]) <= present, set(DROPPED[part]) - present


def test_objects_kfops_creates_itself_are_left_out_of_the_installs(world: World) -> None:
    upstream = {(p.kind, p.name) for p in world.objects(origin="upstream")}
    assert ("Namespace", kfp.NAMESPACE) not in upstream
    assert ("Secret", S3_SECRET_NAME) not in upstream
    assert ("Deployment", "katib-ui") not in upstream
    assert ("Deployment", "ml-pipeline") in upstream
    assert world.find("Secret", S3_SECRET_NAME, kfp.NAMESPACE).origin == "kfops"


def test_kfp_starts_after_its_secret_cert_manager_and_its_cluster_scoped_resources(world: World) -> None:
    crds = {p.resource for p in world.objects("CustomResourceDefinition") if p.name == "workflows.argoproj.io"}
    for kind, name in (("Deployment", "ml-pipeline"), ("Deployment", "seaweedfs"),
                       ("Certificate", "kfp-api-webhook-cert")):
        placed = world.find(kind, name, kfp.NAMESPACE)
        assert placed.resource is not None
        needs = world.dependencies(placed.resource)
        assert {"object-store-kfp-artifact", "workspace-namespace", "platform-cert-manager"} <= needs, (kind, name)
        assert crds & needs, needs


def test_what_needs_the_platform_waits_for_every_object_of_every_install(world: World) -> None:
    installed = {p.resource for p in world.objects(origin="upstream") if p.resource and p.resource.startswith(
        "platform-")}
    assert len(installed) > 80
    for name in ("workflow-pipeline", "tracking-server", "buckets-job", "poddefaults-access-minio"):
        needs = world.dependencies(name)
        assert installed <= needs, (name, installed - needs)


def test_seldon_operator_follows_the_stack_version() -> None:
    [operator] = [resource for resource in build("1.16.0").of_type(HELM_RELEASE)
                  if resource.inputs["chart"] == "seldon-core-operator"]
    assert operator.inputs["version"] == "1.16.0"


def keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    found = set()
    for key, value in values.items():
        found.add(prefix + key)
        if isinstance(value, dict):
            found |= keys(value, f"{prefix}{key}.")
    return found


def test_every_seldon_chart_value_kfops_sets_is_a_value_of_the_chart() -> None:
    chart = yaml.safe_load(data.text(f"SeldonIO/seldon-core/v{seldon.VERSION}/helm-charts/seldon-core-operator/"
                                     "values.yaml"))
    assert keys(seldon_values(istio=False)) <= keys(chart), keys(seldon_values(istio=False)) - keys(chart)


def test_seldons_executor_requests_fit_a_kind_node_next_to_two_predictors_and_a_surge(world: World) -> None:
    [operator] = [p for p in world.objects("Deployment") if p.name == "seldon-controller-manager"]
    env = {item["name"]: item.get("value") for item in operator.obj["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EXECUTOR_DEFAULT_CPU_REQUEST"] == "100m"
    assert env["EXECUTOR_DEFAULT_MEMORY_REQUEST"] == "128Mi"


def test_katibs_pod_mutator_selects_only_pods_that_opt_in_and_fails_closed(world: World) -> None:
    configuration, name = katib.POD_MUTATOR.value
    [webhook] = [w for w in world.find("MutatingWebhookConfiguration", configuration).obj["webhooks"]
                 if w["name"] == name]
    assert webhook["objectSelector"] == {"matchLabels": katib.TRIAL_POD_LABEL.value}
    assert webhook["failurePolicy"] == "Fail"


def test_katib_gives_its_collector_the_trials_security_context(world: World) -> None:
    name, key = katib.CONFIG.value
    config = yaml.safe_load(world.find("ConfigMap", name, katib.NAMESPACE).obj["data"][key])
    assert config["init"]["controller"]["injectSecurityContext"] is True
    assert config["runtime"]["suggestions"], "the rest of katib-config is kept"


def test_pulumi_waits_for_the_ca_cert_manager_injects(world: World) -> None:
    injected = [p for p in world.placed if p.kind.endswith("WebhookConfiguration") and p.origin == "upstream"
                and p.resource and p.resource.startswith("platform-") and not p.resource.endswith("seldon-core")
                and "cert-manager.io/inject-ca-from" in (p.obj["metadata"].get("annotations") or {})]
    assert {p.name for p in injected} >= {kfp.WEBHOOK_CONFIGURATION, "admission-webhook-mutating-webhook-configuration"}
    for placed in injected:
        assert placed.obj["metadata"]["annotations"][WAIT_FOR] == "jsonpath={.webhooks[0].clientConfig.caBundle}"
        assert all("caBundle" not in w["clientConfig"] for w in placed.obj["webhooks"]), placed.name


def test_runs_started_without_a_service_account_run_as_the_projects(world: World) -> None:
    [api] = world.find("Deployment", kfp.API.name, kfp.NAMESPACE).obj["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in api["env"]}
    assert env[kfp.RUNNER_ACCOUNT_SETTING.value] == PIPELINE_SERVICE_ACCOUNT


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


def test_a_cold_kind_node_gets_time_to_pull_every_image(world: World) -> None:
    import pulumi

    from infra.cluster.platform import INSTALL_TIMEOUT_MINUTES, patient

    options = pulumi.ResourceOptions()
    patient({}, options)
    assert options.custom_timeouts.create == f"{INSTALL_TIMEOUT_MINUTES}m"
    for release in world.rendering.of_type(HELM_RELEASE):
        assert release.inputs["timeout"] == INSTALL_TIMEOUT_MINUTES * 60 > 300
