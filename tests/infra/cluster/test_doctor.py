"""``kfops doctor --stack``'s cluster checks, through the real Kubernetes client, against a fake API server that
answers with the shapes the Kubernetes API documents: a healthy cluster, then each failure and its message."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from infra.cluster.doctor import CRDS, SELDON_OPERATOR, WEBHOOKS, StackScope, run_checks
from kfops.base.checks import Check, report
from kfops.base.contract import (
    ACCESS_MINIO_PODDEFAULT,
    MLFLOW_CONFIG_KEYS,
    MLFLOW_CONFIG_MAP,
    MLFLOW_PODDEFAULT,
    PIPELINE_SERVICE_ACCOUNT,
    S3_CONFIG_KEYS,
    S3_CONFIG_MAP,
    S3_SECRET_NAME,
    SELDON_S3_SECRET_NAME,
    SERVING_CONFIG_KEYS,
    SERVING_CONFIG_MAP,
)
from kfops.base.upstream import katib
from tests.fakes.kube_api import FakeKubeApi, serve

pytestmark = pytest.mark.unit

NS = "kubeflow"
CORE = f"/api/v1/namespaces/{NS}"


def data(*keys: str) -> dict[str, str]:
    return {key: base64.b64encode(b"x").decode() for key in keys}


def healthy() -> FakeKubeApi:
    """A cluster after `pulumi up --stack kind`."""
    api = FakeKubeApi()
    api.put("/version", {"major": "1", "minor": "33", "gitVersion": "v1.33.1", "gitCommit": "8adc0f041b8e",
                         "gitTreeState": "clean", "buildDate": "2025-05-15T08:19:08Z", "goVersion": "go1.24.2",
                         "compiler": "gc", "platform": "linux/amd64"})
    for name, version in CRDS.items():
        group = name.split(".", 1)[1]
        api.put(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": name.split(".")[0], "kind": "X"},
                     "versions": [{"name": version, "served": True, "storage": True}]}})
    for service in WEBHOOKS.values():
        api.put(f"/api/v1/namespaces/{service.namespace}/endpoints/{service.name}", {
            "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": service.name},
            "subsets": [{"addresses": [{"ip": "10.244.0.7"}], "ports": [{"port": 8443}]}]})
    api.put(f"/api/v1/namespaces/{NS}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": NS, "labels": {**katib.INJECTION_LABEL.value, "pipelines.kubeflow.org/enabled": "true"}}})
    api.put(f"{CORE}/secrets/{S3_SECRET_NAME}", {"kind": "Secret", "metadata": {"name": S3_SECRET_NAME},
                                                "data": data("accesskey", "secretkey")})
    rclone = [f"RCLONE_CONFIG_S3_{key}" for key in ("TYPE", "PROVIDER", "ENV_AUTH", "ACCESS_KEY_ID",
                                                    "SECRET_ACCESS_KEY", "ENDPOINT")]
    api.put(f"{CORE}/secrets/{SELDON_S3_SECRET_NAME}", {"kind": "Secret", "metadata": {"name": SELDON_S3_SECRET_NAME},
                                                       "data": data(*rclone)})
    for name, keys in ((S3_CONFIG_MAP, S3_CONFIG_KEYS), (MLFLOW_CONFIG_MAP, MLFLOW_CONFIG_KEYS),
                       (SERVING_CONFIG_MAP, SERVING_CONFIG_KEYS)):
        api.put(f"{CORE}/configmaps/{name}", {"kind": "ConfigMap", "metadata": {"name": name},
                                              "data": {key: "v" for key in keys}})
    api.put(f"{CORE}/serviceaccounts/{PIPELINE_SERVICE_ACCOUNT}", {"kind": "ServiceAccount",
                                                                  "metadata": {"name": PIPELINE_SERVICE_ACCOUNT}})
    for name in (ACCESS_MINIO_PODDEFAULT, MLFLOW_PODDEFAULT):
        api.put(f"/apis/kubeflow.org/v1alpha1/namespaces/{NS}/poddefaults/{name}",
                {"apiVersion": "kubeflow.org/v1alpha1", "kind": "PodDefault", "metadata": {"name": name}})
    seldon_operator("docker.io/seldonio/seldon-core-operator:1.17.1", api)
    return api


def seldon_operator(image: str, api: FakeKubeApi) -> None:
    api.put("/apis/apps/v1/namespaces/seldon-system/deployments", {
        "apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": [{
            "metadata": {"name": SELDON_OPERATOR, "namespace": "seldon-system"},
            "spec": {"selector": {"matchLabels": {"app": "seldon"}}, "template": {
                "metadata": {"labels": {"app": "seldon"}},
                "spec": {"containers": [{"name": "manager", "image": image}]}}}}]})


def checks(api: FakeKubeApi, kfp_mode: str = "kubernetes") -> list[Check]:
    from kubernetes import client

    with serve(api) as url:
        configuration = client.Configuration()
        configuration.host = url
        return run_checks(client.ApiClient(configuration), StackScope(NS, kfp_mode), probe=True)


def by_name(found: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in found}


@pytest.fixture
def cluster() -> FakeKubeApi:
    return healthy()


def test_a_healthy_cluster_passes_every_check(cluster: FakeKubeApi) -> None:
    found = checks(cluster)
    assert [c for c in found if c.status != "ok"] == []
    assert report(found)["ok"] is True
    names = {check.name for check in found}
    assert {f"CRD {name}" for name in CRDS} <= names
    assert len([name for name in names if name.startswith("webhook ")]) == len(WEBHOOKS)
    # One SubjectAccessReview per thing the run does, for the runner's ServiceAccount, in the namespace.
    assert {(r["verb"], r["resource"]) for r in cluster.reviews} >= {("get", "configmaps"), ("create", "experiments"),
                                                                    ("patch", "seldondeployments")}
    assert all(r["namespace"] == NS for r in cluster.reviews)
    assert any(path.startswith(f"/apis/batch/v1/namespaces/{NS}/jobs/kfops-doctor-") for path in cluster.deleted), \
        "the probe Job is deleted"


def fails(found: list[Check], name: str) -> Check:
    check = by_name(found)[name]
    assert check.status == "fail", check
    assert check.fix
    return check


def test_a_missing_crd_and_one_at_the_wrong_version(cluster: FakeKubeApi) -> None:
    del cluster.objects["/apis/apiextensions.k8s.io/v1/customresourcedefinitions/experiments.kubeflow.org"]
    crd = cluster.objects["/apis/apiextensions.k8s.io/v1/customresourcedefinitions/poddefaults.kubeflow.org"]
    crd["spec"]["versions"] = [{"name": "v1beta1", "served": True, "storage": True}]
    found = checks(cluster)
    assert "not installed" in fails(found, "CRD experiments.kubeflow.org").message
    assert fails(found, "CRD poddefaults.kubeflow.org").message == "serves v1beta1, not v1alpha1"


def test_kfp_api_mode_needs_no_pipeline_crds(cluster: FakeKubeApi) -> None:
    del cluster.objects["/apis/apiextensions.k8s.io/v1/customresourcedefinitions/pipelines.pipelines.kubeflow.org"]
    assert by_name(checks(cluster, kfp_mode="api"))["CRD pipelines.pipelines.kubeflow.org"].status == "ok"


def test_a_webhook_without_ready_endpoints(cluster: FakeKubeApi) -> None:
    service = WEBHOOKS["Katib (Experiments, trial pods)"]
    cluster.objects[f"/api/v1/namespaces/{service.namespace}/endpoints/{service.name}"]["subsets"] = [
        {"notReadyAddresses": [{"ip": "10.244.0.9"}], "ports": [{"port": 8443}]}]
    check = fails(checks(cluster), "webhook Katib (Experiments, trial pods)")
    assert "no ready endpoint (1 not ready)" in check.message


def test_the_namespace_without_katibs_label(cluster: FakeKubeApi) -> None:
    cluster.objects[f"/api/v1/namespaces/{NS}"]["metadata"]["labels"] = {}
    found = checks(cluster)
    check = fails(found, "namespace label katib.kubeflow.org/metrics-collector-injection")
    assert "kubectl label namespace kubeflow katib.kubeflow.org/metrics-collector-injection=enabled" in check.fix
    assert by_name(found)["namespace label pipelines.kubeflow.org/enabled"].status == "warn"


@pytest.mark.parametrize(("path", "change", "name", "says"), [
    (f"{CORE}/secrets/{S3_SECRET_NAME}", {"data": data("accesskey")}, f"Secret {S3_SECRET_NAME}",
     "lacks key(s) secretkey"),
    (f"{CORE}/configmaps/{S3_CONFIG_MAP}", None, f"ConfigMap {S3_CONFIG_MAP}", "does not exist"),
    (f"{CORE}/serviceaccounts/{PIPELINE_SERVICE_ACCOUNT}", None, f"ServiceAccount {PIPELINE_SERVICE_ACCOUNT}",
     "runs cannot use it"),
])
def test_missing_objects_and_keys(cluster: FakeKubeApi, path: str, change: dict[str, Any] | None, name: str,
                                  says: str) -> None:
    if change is None:
        del cluster.objects[path]
    else:
        cluster.objects[path].update(change)
    assert says in fails(checks(cluster), name).message


def test_a_missing_poddefault_is_only_a_warning(cluster: FakeKubeApi) -> None:
    del cluster.objects[f"/apis/kubeflow.org/v1alpha1/namespaces/{NS}/poddefaults/{ACCESS_MINIO_PODDEFAULT}"]
    found = checks(cluster)
    assert by_name(found)[f"PodDefault {ACCESS_MINIO_PODDEFAULT}"].status == "warn"
    assert report(found)["ok"] is True


def test_a_runner_that_may_not_read_the_launcher_config(cluster: FakeKubeApi) -> None:
    cluster.policy = lambda attributes: attributes["resource"] != "configmaps"
    check = fails(checks(cluster), "runner may get configmaps/kfp-launcher")
    assert "denied to kfops-pipeline-runner" in check.message


def test_a_probe_that_cannot_reach_the_store(cluster: FakeKubeApi) -> None:
    cluster.job_outcome = "failed"
    check = fails(checks(cluster), "object store and MLflow from the namespace")
    assert check.fix.startswith("kubectl -n kubeflow logs job/kfops-doctor-")


def test_a_bsl_seldon_operator_is_a_warning_and_a_missing_one_a_failure(cluster: FakeKubeApi) -> None:
    seldon_operator("docker.io/seldonio/seldon-core-operator:1.18.1", cluster)
    check = by_name(checks(cluster))["Seldon Core"]
    assert check.status == "warn"
    assert "Business Source License" in check.message
    del cluster.objects["/apis/apps/v1/namespaces/seldon-system/deployments"]
    assert by_name(checks(cluster))["Seldon Core"].status == "fail"


def test_an_unreachable_api_server_is_one_failure() -> None:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # nothing listens on the discard port
    configuration.retries = False
    found = run_checks(client.ApiClient(configuration), StackScope(NS), probe=False)
    assert [check.name for check in found] == ["API server"]
    assert found[0].status == "fail"
