"""Every fact kfops keeps about an upstream component, checked against the upstream file it cites.

A fact in :mod:`kfops.base.upstream` names its source (repository, tag, path). Where that source is a data file in the
pinned upstream data (manifests, charts, CRDs: :mod:`tests.upstream.data`), a check below reads that file, or the
built install it ends up in, and compares. A fact that disagrees with its own source fails here; a fact citing a data
file nobody checks fails :func:`test_every_fact_citing_pinned_data_is_checked_against_it`; and a pin moved to a tag
whose data is absent fails :func:`test_every_pinned_install_has_its_upstream_data`.

Mutations these tests were seen to catch (issue 17): ``kfp.OBJECT_STORE``'s port changed from 9000 to 9001
(:func:`check_kfp_object_store`); the KFP pin bumped to 2.17.3 in pyproject, ``kfp.VERSION`` and ``SDK_VERSION``
without upstream data (:func:`test_every_pinned_install_has_its_upstream_data`, and every fact's source).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from kfops.base.upstream import Fact, Grant, Service, Source, cert_manager, katib, kfp, kubeflow, mlserver, seldon
from tests.upstream import data

pytestmark = pytest.mark.unit

MODULES = (kfp, katib, seldon, kubeflow, cert_manager, mlserver)
DATA_SUFFIXES = (".yaml", ".yml", ".json", ".env", ".tpl")
KFP_NATIVE = "built/kfp-k8s-native.yaml"
KFP_CLUSTER = "built/kfp-cluster-scoped.yaml"
KATIB = "built/katib.yaml"
PODDEFAULTS = "built/poddefaults.yaml"
SELDON_CHART = f"SeldonIO/seldon-core/v{seldon.VERSION}/helm-charts/seldon-core-operator"

#: Facts whose cited file is a data file the pinned data does not hold, and why they are trusted anyway.
NOT_IN_PINNED_DATA = {
    "cert_manager.CHART": "the chart's repository URL is in cert-manager's install docs, not in a chart file",
    "cert_manager.CRDS_VALUE": "deploy/charts/cert-manager/values.yaml is not in the pinned data (only deploy/crds, "
                               "whose gate line `.Values.crds.enabled` check_cert_manager_crds_value reads)",
    "cert_manager.STARTUP_API_CHECK": "deploy/charts/cert-manager/values.yaml is not in the pinned data",
    "cert_manager.WEBHOOK": "the chart's templates are not in the pinned data",
    "kubeflow.PROFILE_NAMESPACE_LABELS": "apps/profiles/upstream/base/namespace-labels.yaml is not in the pinned data "
                                         "(only the profiles CRD is)",
}

CHECKS: dict[str, Callable[[], None]] = {}


def checks(*facts: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a check as the one that verifies ``facts`` (``module.NAME``) against upstream data."""

    def register(check: Callable[[], None]) -> Callable[[], None]:
        for fact in facts:
            assert fact not in CHECKS, f"{fact} is checked twice"
            CHECKS[fact] = check
        return check

    return register


def objects(bundle: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in data.documents(bundle) if doc.get("kind") == kind]


def one(bundle: str, kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in objects(bundle, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{bundle} has {len(found)} {kind} named {name}"
    return found[0]


def service_port(bundle: str, service: Service) -> None:
    obj = one(bundle, "Service", service.name)
    assert obj["metadata"].get("namespace") == service.namespace, (service, obj["metadata"])
    assert service.port in [port["port"] for port in obj["spec"]["ports"]], (service, obj["spec"]["ports"])


def containers(bundle: str, deployment: str) -> list[dict[str, Any]]:
    return list(one(bundle, "Deployment", deployment)["spec"]["template"]["spec"]["containers"])


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def references_secret(value: Any, name: str) -> bool:
    if isinstance(value, dict):
        if value.get("name") == name and ("key" in value or "optional" in value or len(value) == 1):
            return True
        if value.get("secretName") == name:
            return True
        return any(references_secret(item, name) for item in value.values())
    if isinstance(value, list):
        return any(references_secret(item, name) for item in value)
    return False


def has_kustomization(repo: str, tag: str, directory: str) -> bool:
    return data.has(data.at(repo, tag, f"{directory}/kustomization.yaml"))


# --- Kubeflow Pipelines -------------------------------------------------------------------------------------------


@checks("kfp.CLUSTER_SCOPED", "kfp.K8S_NATIVE")
def check_kfp_installs() -> None:
    for install in (kfp.CLUSTER_SCOPED, kfp.K8S_NATIVE):
        assert has_kustomization(kfp.REPO, kfp.VERSION, install.value), install
        assert (kfp.REPO, kfp.VERSION, install.value) in data.BUILT.values(), install
    # The Pipeline CRDs come with the Kubernetes-native install, not the cluster-scoped one.
    assert {crd["spec"]["names"]["kind"] for crd in objects(KFP_NATIVE, "CustomResourceDefinition")} >= {
        "Pipeline", "PipelineVersion"}


@checks("kfp.NAMESPACE", "kfp.NAMESPACE_LABELS")
def check_kfp_namespace() -> None:
    namespace = one(KFP_CLUSTER, "Namespace", kfp.NAMESPACE)
    assert namespace["metadata"]["labels"].items() >= kfp.NAMESPACE_LABELS.value.items()
    namespaced = [doc for doc in data.documents(KFP_NATIVE) if doc["metadata"].get("namespace")]
    assert {doc["metadata"]["namespace"] for doc in namespaced} == {kfp.NAMESPACE}


@checks("kfp.OBJECT_STORE")
def check_kfp_object_store() -> None:
    """Catches the mutation of issue 17: OBJECT_STORE's port 9000 -> 9001."""
    service_port(KFP_NATIVE, kfp.OBJECT_STORE)
    # KFP's own API server is configured with the same host and port.
    [api] = containers(KFP_NATIVE, kfp.API.name)
    env = env_of(api)
    assert env["OBJECTSTORECONFIG_HOST"] in (kfp.OBJECT_STORE.name, f"{kfp.OBJECT_STORE.name}.{kfp.NAMESPACE}")
    assert env["OBJECTSTORECONFIG_PORT"] == str(kfp.OBJECT_STORE.port)


@checks("kfp.API", "kfp.UI")
def check_kfp_api_and_ui() -> None:
    service_port(KFP_NATIVE, kfp.API)
    service_port(KFP_NATIVE, kfp.UI)


@checks("kfp.PIPELINE_VERSION_WEBHOOK", "kfp.WEBHOOK_CONFIGURATION")
def check_kfp_webhooks() -> None:
    service_port(KFP_NATIVE, kfp.PIPELINE_VERSION_WEBHOOK)
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        configuration = one(KFP_NATIVE, kind, kfp.WEBHOOK_CONFIGURATION)
        for webhook in configuration["webhooks"]:
            target = webhook["clientConfig"]["service"]
            assert (target["name"], target["namespace"], target["port"]) == (
                kfp.PIPELINE_VERSION_WEBHOOK.name, kfp.PIPELINE_VERSION_WEBHOOK.namespace,
                kfp.PIPELINE_VERSION_WEBHOOK.port)
            assert {r for rule in webhook["rules"] for r in rule["resources"]} == {"pipelineversions"}


@checks("kfp.ARTIFACT_SECRET", "kfp.ARTIFACT_SECRET_READERS")
def check_kfp_artifact_secret() -> None:
    name, keys = kfp.ARTIFACT_SECRET.value
    secret = one(KFP_NATIVE, "Secret", name)
    assert set(secret.get("stringData") or secret.get("data") or {}) == set(keys)
    readers = {doc["metadata"]["name"] for doc in objects(KFP_NATIVE, "Deployment")
               if references_secret(doc["spec"]["template"], name)}
    assert readers == set(kfp.ARTIFACT_SECRET_READERS.value)
    [api] = containers(KFP_NATIVE, kfp.API.name)
    used_keys = {value["secretKeyRef"]["key"] for value in env_of(api).values()
                 if isinstance(value, dict) and value.get("secretKeyRef", {}).get("name") == name}
    assert used_keys == set(keys)


@checks("kfp.LAUNCHER_CONFIG_MAP", "kfp.DEFAULT_RUNNER_SERVICE_ACCOUNT")
def check_kfp_launcher_and_runner() -> None:
    one(KFP_NATIVE, "ConfigMap", kfp.LAUNCHER_CONFIG_MAP.value)
    one(KFP_NATIVE, "ServiceAccount", kfp.DEFAULT_RUNNER_SERVICE_ACCOUNT.value)


@checks("kfp.RUNNER_GRANTS")
def check_kfp_runner_grants() -> None:
    # The grants whose source is upstream's own pipeline-runner Role: that Role allows them.
    role = one(KFP_NATIVE, "Role", kfp.DEFAULT_RUNNER_SERVICE_ACCOUNT.value)
    for grant in kfp.RUNNER_GRANTS:
        if grant.source.path.endswith(DATA_SUFFIXES):
            assert any(grant.api_group in rule["apiGroups"] and grant.resource in rule["resources"]
                       and (grant.verb in rule["verbs"] or "*" in rule["verbs"]) for rule in role["rules"]), grant


@checks("kfp.PIPELINES_API")
def check_kfp_pipelines_api() -> None:
    group, version = kfp.PIPELINES_API.value.split("/")
    for crd in objects(KFP_NATIVE, "CustomResourceDefinition"):
        if crd["spec"]["names"]["kind"] in ("Pipeline", "PipelineVersion"):
            assert crd["spec"]["group"] == group
            assert any(v["name"] == version and v["served"] and v["storage"] for v in crd["spec"]["versions"])


def check_kfp_version() -> None:
    """The manifests' tag is the release whose images the install runs."""
    [api] = containers(KFP_NATIVE, kfp.API.name)
    assert api["image"].endswith(f":{kfp.VERSION}"), api["image"]


# --- Katib --------------------------------------------------------------------------------------------------------


def katib_webhooks() -> dict[str, dict[str, Any]]:
    return {webhook["name"]: webhook for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
            for configuration in objects(KATIB, kind) for webhook in configuration["webhooks"]}


@checks("katib.STANDALONE", "katib.NAMESPACE")
def check_katib_install() -> None:
    assert has_kustomization(katib.REPO, katib.VERSION, katib.STANDALONE.value)
    assert (katib.REPO, katib.VERSION, katib.STANDALONE.value) in data.BUILT.values()
    namespaced = [doc for doc in data.documents(KATIB) if doc["metadata"].get("namespace")]
    assert {doc["metadata"]["namespace"] for doc in namespaced} == {katib.NAMESPACE}
    assert one(KATIB, "Namespace", katib.NAMESPACE)["metadata"]["labels"].items() >= katib.INJECTION_LABEL.value.items()


@checks("katib.WEBHOOK")
def check_katib_webhook_service() -> None:
    service_port(KATIB, katib.WEBHOOK)
    for webhook in katib_webhooks().values():
        target = webhook["clientConfig"]["service"]
        assert (target["name"], target["namespace"], target.get("port", 443)) == (
            katib.WEBHOOK.name, katib.WEBHOOK.namespace, katib.WEBHOOK.port)


@checks("katib.INJECTION_LABEL", "katib.POD_MUTATOR")
def check_katib_pod_mutator() -> None:
    configuration, name = katib.POD_MUTATOR.value
    mutator = katib_webhooks()[name]
    assert one(KATIB, "MutatingWebhookConfiguration", configuration)
    assert mutator["namespaceSelector"]["matchLabels"] == katib.INJECTION_LABEL.value
    assert {r for rule in mutator["rules"] for r in rule["resources"]} == {"pods"}
    # What the fact says upstream does, and kfops corrects (infra/cluster/platform.py): no failurePolicy (Fail) and no
    # objectSelector.
    assert "failurePolicy" not in mutator
    assert "objectSelector" not in mutator


@checks("katib.CLIENT_GRANTS")
def check_katib_client_grants() -> None:
    [source] = {grant.source.path for grant in katib.CLIENT_GRANTS}
    roles = data.documents(data.at(katib.REPO, katib.VERSION, source))
    edit = next(role for role in roles if role["metadata"]["name"] == "kubeflow-katib-edit")
    for grant in katib.CLIENT_GRANTS:
        assert any(grant.api_group in rule["apiGroups"] and grant.resource in rule["resources"]
                   and grant.verb in rule["verbs"] for rule in edit["rules"]), grant


def katib_config() -> dict[str, Any]:
    return dict(yaml.safe_load(one(KATIB, "ConfigMap", "katib-config")["data"]["katib-config.yaml"]))


@checks("katib.CONFIG")
def check_katib_config() -> None:
    name, key = katib.CONFIG.value
    assert key in one(KATIB, "ConfigMap", name)["data"]
    kustomization = yaml.safe_load(data.text(data.at(katib.REPO, katib.VERSION, katib.CONFIG.source.path)))
    assert {g["name"]: g["files"] for g in kustomization["configMapGenerator"]}[name] == [key]
    # Upstream leaves the collector's securityContext off (kfops turns it on: infra/cluster/platform.py).
    assert "injectSecurityContext" not in katib_config()["init"]["controller"]


@checks("katib.ALGORITHMS")
def check_katib_algorithms() -> None:
    config = katib_config()
    images = {item["algorithmName"]: item["image"] for item in config["runtime"]["suggestions"]}
    for name, algorithm in katib.ALGORITHMS.items():
        assert name in images, f"{name} is not an algorithm of the standalone katib-config"
        assert images[name].rsplit("/", 1)[-1] == f"{algorithm.service}:{katib.VERSION}", (name, images[name])
    assert "StdOut" in {item["kind"] for item in config["runtime"]["metricsCollectors"]}


# --- Seldon Core and MLServer -------------------------------------------------------------------------------------


def seldon_values() -> dict[str, Any]:
    return dict(yaml.safe_load(data.text(f"{SELDON_CHART}/values.yaml")))


@checks("seldon.CHART")
def check_seldon_chart() -> None:
    chart = yaml.safe_load(data.text(f"{SELDON_CHART}/Chart.yaml"))
    assert (chart["name"], chart["version"]) == (seldon.CHART.value[0], seldon.VERSION)


@checks("seldon.WEBHOOK")
def check_seldon_webhook() -> None:
    from tests.upstream.helm import template

    rendered = template(SELDON_CHART, "seldon-core", seldon.WEBHOOK.namespace, {})
    [service] = [o for o in rendered if o["kind"] == "Service" and o["metadata"]["name"] == seldon.WEBHOOK.name]
    assert service["metadata"]["namespace"] == seldon.WEBHOOK.namespace
    assert [port["port"] for port in service["spec"]["ports"]] == [seldon.WEBHOOK.port]
    [configuration] = [o for o in rendered if o["kind"] == "ValidatingWebhookConfiguration"]
    for webhook in configuration["webhooks"]:
        target = webhook["clientConfig"]["service"]
        assert (target["name"], target["namespace"]) == (seldon.WEBHOOK.name, seldon.WEBHOOK.namespace)


@checks("seldon.STORAGE_INITIALIZER")
def check_seldon_storage_initializer() -> None:
    assert seldon_values()["storageInitializer"]["image"] == seldon.STORAGE_INITIALIZER.value


def check_seldon_ports_and_user() -> None:
    """Facts from the operator's Go code that the chart's values also carry."""
    values = seldon_values()
    assert values["predictiveUnit"]["httpPort"] == seldon.NODE_HTTP_PORT.value
    assert values["predictiveUnit"]["grpcPort"] == seldon.NODE_GRPC_PORT.value
    assert values["executor"]["port"] == seldon.PREDICTOR_SERVICE_PORT.value
    assert int(values["defaultUserID"]) == seldon.DEFAULT_USER_ID.value


# --- Kubeflow's PodDefault webhook, cert-manager ------------------------------------------------------------------


@checks("kubeflow.PODDEFAULT_WEBHOOK", "kubeflow.PODDEFAULT_NAMESPACE")
def check_poddefault_install() -> None:
    assert has_kustomization(kubeflow.REPO, kubeflow.VERSION, kubeflow.PODDEFAULT_WEBHOOK.value)
    assert (kubeflow.REPO, kubeflow.VERSION, kubeflow.PODDEFAULT_WEBHOOK.value) in data.BUILT.values()
    assert not objects(PODDEFAULTS, "Namespace"), "the install would bring its own Namespace"
    namespaced = [doc for doc in data.documents(PODDEFAULTS) if doc["metadata"].get("namespace")]
    assert {doc["metadata"]["namespace"] for doc in namespaced} == {kubeflow.PODDEFAULT_NAMESPACE}


@checks("kubeflow.PODDEFAULT_NAMESPACE_LABEL", "kubeflow.PODDEFAULT_SERVICE")
def check_poddefault_webhook() -> None:
    service_port(PODDEFAULTS, kubeflow.PODDEFAULT_SERVICE)
    [configuration] = objects(PODDEFAULTS, "MutatingWebhookConfiguration")
    [webhook] = configuration["webhooks"]
    assert webhook["namespaceSelector"]["matchLabels"] == kubeflow.PODDEFAULT_NAMESPACE_LABEL.value
    assert webhook["failurePolicy"] == "Fail"
    assert "objectSelector" not in webhook
    assert webhook["clientConfig"]["service"]["name"] == kubeflow.PODDEFAULT_SERVICE.name


def check_cert_manager_crds_value() -> None:
    """The CRDs are rendered only with ``crds.enabled`` (or the deprecated ``installCRDs``): their gate line."""
    crds = list(data.tree(cert_manager.REPO, cert_manager.VERSION, "deploy/crds"))
    assert crds
    key = next(iter(cert_manager.CRDS_VALUE.value))
    for name in crds:
        gate = next(line for line in data.text(name).splitlines() if line.startswith("# START crd"))
        assert f".Values.{key}.enabled" in gate, (name, gate)


EXTRA_CHECKS = (check_kfp_version, check_seldon_ports_and_user, check_cert_manager_crds_value)


@pytest.mark.parametrize("check", [*dict.fromkeys(CHECKS.values()), *EXTRA_CHECKS],
                         ids=lambda check: check.__name__)
def test_a_fact_agrees_with_its_upstream_source(check: Callable[[], None]) -> None:
    check()


def facts() -> Iterator[tuple[str, Source]]:
    """``(module.NAME, source)`` of every fact, Service and Grant (a tuple of grants is one fact)."""
    for module in MODULES:
        short = module.__name__.rsplit(".", 1)[-1]
        for name, value in vars(module).items():
            if isinstance(value, Fact | Service | Grant):
                yield f"{short}.{name}", value.source
            elif isinstance(value, tuple) and value and all(isinstance(item, Grant) for item in value):
                for grant in value:
                    yield f"{short}.{name}", grant.source
        if module is katib:
            for algorithm in katib.ALGORITHMS.values():
                yield "katib.ALGORITHMS", algorithm.source


def test_every_fact_citing_pinned_data_is_checked_against_it() -> None:
    unchecked = []
    for name, source in facts():
        if not source.path.endswith(DATA_SUFFIXES):
            continue  # code: reviewed at the tag, see docs/cluster-review.md
        relative = data.at(source.repo, source.ref, source.path)
        if data.has(relative):
            if name not in CHECKS:
                unchecked.append(f"{name} cites {relative}")
        elif name not in NOT_IN_PINNED_DATA and name not in CHECKS:
            unchecked.append(f"{name} cites {relative}, which the pinned data does not hold")
    assert not unchecked, "facts that nothing checks against upstream:\n" + "\n".join(unchecked)


def test_every_pinned_install_has_its_upstream_data() -> None:
    """A pin moved to a tag nobody read fails here: its installs, charts and cited files must be in the data."""
    from infra.cluster.platform import KUSTOMIZATIONS
    from tests.upstream.world import bundle

    for directory in KUSTOMIZATIONS.values():
        assert bundle(directory), directory
    assert data.has(f"{SELDON_CHART}/Chart.yaml"), f"no pinned data for Seldon Core {seldon.VERSION}"
    assert list(data.tree(cert_manager.REPO, cert_manager.VERSION, "deploy/crds")), cert_manager.VERSION
    for name, source in facts():
        if source.path.endswith(DATA_SUFFIXES) and name not in NOT_IN_PINNED_DATA:
            assert data.has(data.at(source.repo, source.ref, source.path)), f"{name}: {source} is not in the data"
