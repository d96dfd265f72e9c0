"""The whole program (infra/__main__.py) under the mock runtime: how the components fit together."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import pytest

from infra.cluster.mock_runtime import Rendering
from infra.cluster.validate import validate_all
from kfops.base.contract import (
    MLFLOW_CONFIG_KEYS,
    MLFLOW_CONFIG_MAP,
    PIPELINE_SERVICE_ACCOUNT,
    S3_CONFIG_KEYS,
    S3_CONFIG_MAP,
    S3_SECRET_ENV,
)
from kfops.base.paths import REPO_ROOT

from .conftest import CLUSTER_CONFIG

pytestmark = pytest.mark.unit

#: Everything the workflow may do with the Kubernetes API (issue 5): Katib Experiments and Trials, SeldonDeployments,
#: the two secrets it is given. As (apiGroup, resource, verb).
ALLOWED = {
    *(("kubeflow.org", "experiments", verb) for verb in ("create", "get", "list", "watch")),
    *(("kubeflow.org", "trials", verb) for verb in ("get", "list", "watch")),
    *(("machinelearning.seldon.io", "seldondeployments", verb)
      for verb in ("create", "get", "list", "watch", "update", "patch", "delete")),
    ("", "secrets", "get"),
    # KFP 2.17's root driver reads ConfigMap kfp-launcher and only tolerates NotFound, not Forbidden.
    ("", "configmaps", "get"),
    # Argo's executor records each step's outputs as WorkflowTaskResults.
    *(("argoproj.io", "workflowtaskresults", verb) for verb in ("create", "patch")),
    # The deploy step waits for the new model version's pods to be Ready.
    ("", "pods", "get"), ("", "pods", "list"),
}


def test_every_object_is_valid_and_in_the_workspace_namespace(cluster_rendering: Rendering) -> None:
    manifests = cluster_rendering.manifests()
    validate_all(manifests)
    assert {obj["metadata"].get("namespace") for obj in manifests if obj["kind"] != "Namespace"} == {"team-ml"}


def test_rbac_grants_nothing_beyond_what_the_workflow_does(cluster_rendering: Rendering) -> None:
    manifests = cluster_rendering.manifests()
    assert not [obj for obj in manifests if obj["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    grants = {(group, resource, verb) for obj in manifests if obj["kind"] == "Role" for rule in obj["rules"]
              for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert grants == ALLOWED
    named = {(rule["resources"][0], name) for obj in manifests if obj["kind"] == "Role" for rule in obj["rules"]
             for name in rule.get("resourceNames") or ()}
    assert ("configmaps", "kfp-launcher") in named
    assert ("secrets", "mlpipeline-minio-artifact") in named
    assert all(rule.get("resourceNames") for obj in manifests if obj["kind"] == "Role" for rule in obj["rules"]
               if rule["resources"] in (["secrets"], ["configmaps"]))
    subjects = {json.dumps(subject, sort_keys=True) for obj in manifests if obj["kind"] == "RoleBinding"
                for subject in obj["subjects"]}
    assert subjects == {json.dumps({"kind": "ServiceAccount", "name": PIPELINE_SERVICE_ACCOUNT,
                                    "namespace": "team-ml"}, sort_keys=True)}


def keys_of(rendering: Rendering, kind: str, name: str) -> set[str]:
    obj = rendering.find(kind, name)
    return set(obj.get("data") or {}) | set(obj.get("stringData") or {})


def test_pipeline_steps_read_only_keys_the_program_creates(real_rendering: Rendering) -> None:
    # The real workflow as the program deploys it: the references come from pipelines/workflow.py, the objects from
    # the Pulumi components; neither side is taken from the other here.
    version = next(obj for obj in real_rendering.manifests() if obj["kind"] == "PipelineVersion")
    executors = version["spec"]["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == 8
    for executor in executors.values():
        assert "podMetadata" not in executor, "a run must not depend on the PodDefault webhook"
        for secret in executor["secretAsEnv"]:
            assert {m["secretKey"] for m in secret["keyToEnv"]} <= keys_of(real_rendering, "Secret",
                                                                              secret["secretName"])
        for config_map in executor["configMapAsEnv"]:
            if config_map.get("optional"):
                continue
            assert {m["configMapKey"] for m in config_map["keyToEnv"]} <= keys_of(
                real_rendering, "ConfigMap", config_map["configMapName"])
        assert {c["configMapName"] for c in executor["configMapAsEnv"]} >= {S3_CONFIG_MAP, MLFLOW_CONFIG_MAP}


def test_katib_trials_read_only_keys_the_program_creates(real_rendering: Rendering) -> None:
    from components.tune import build_tuning_experiment

    experiment = build_tuning_experiment("winequality", "s3://datasets/x.parquet", max_trials=2, parallel_trials=1,
                                         max_failed_trials=0, namespace="team-ml")
    pod = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
    labels = pod["metadata"].get("labels") or {}
    for default in (obj for obj in real_rendering.manifests() if obj["kind"] == "PodDefault"):
        wanted = default["spec"]["selector"]["matchLabels"]
        assert not wanted.items() <= labels.items(), "a trial must not depend on a PodDefault"
    [container] = pod["spec"]["containers"]
    names = {env["name"] for env in container["env"]}
    assert names == {*S3_SECRET_ENV, *S3_CONFIG_KEYS}
    for env in container["env"]:
        source = env["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            assert ref["key"] in keys_of(real_rendering, "Secret", ref["name"])
        else:
            ref = source["configMapKeyRef"]
            assert ref["key"] in keys_of(real_rendering, "ConfigMap", ref["name"])


def test_config_maps_point_at_the_in_cluster_services(real_rendering: Rendering) -> None:
    s3 = real_rendering.find("ConfigMap", S3_CONFIG_MAP)["data"]
    mlflow = real_rendering.find("ConfigMap", MLFLOW_CONFIG_MAP)["data"]
    assert set(s3) == set(S3_CONFIG_KEYS)
    assert set(mlflow) == set(MLFLOW_CONFIG_KEYS)
    assert mlflow["MLFLOW_S3_ENDPOINT_URL"] == s3["AWS_ENDPOINT_URL_S3"]


def test_secrets_exist_before_the_workloads_that_read_them(cluster_rendering: Rendering) -> None:
    secret = "object-store-kfp-artifact"
    assert secret in cluster_rendering.named("tracking-server").depends_on
    assert secret in cluster_rendering.named("buckets-job").depends_on
    assert secret in cluster_rendering.named("workflow-version").depends_on


def test_namespaced_objects_wait_for_the_namespace(cluster_rendering: Rendering) -> None:
    for resource in cluster_rendering.resources:
        if resource.is_kubernetes_object and resource.inputs["kind"] != "Namespace":
            assert "workspace-namespace" in resource.depends_on, resource.name


def test_credentials_are_exported_only_as_secrets(cluster_rendering: Rendering) -> None:
    outputs = cluster_rendering.outputs
    assert outputs["s3AccessKey"] == (CLUSTER_CONFIG["kfops:s3AccessKey"], True)
    assert outputs["s3SecretKey"][1] is True
    plain = json.dumps({name: value for name, (value, secret) in outputs.items() if not secret})
    assert CLUSTER_CONFIG["kfops:s3SecretKey"] not in plain
    assert CLUSTER_CONFIG["kfops:s3AccessKey"] not in plain
    assert {"namespace", "s3Endpoint", "buckets", "mlflowUrl", "pipelineId", "pipelineVersionId",
            "seldonEndpoint"} <= outputs.keys()


def test_generated_credentials_never_reach_manifests_or_plain_outputs(
        render_program: Callable[..., Rendering]) -> None:
    rendering = render_program({"kfops:installPlatform": "true", "kfops:namespace": "kubeflow",
                                }, ())
    generated, is_secret = rendering.outputs["s3SecretKey"]
    assert is_secret
    assert len(generated) == 40
    assert generated not in json.dumps(rendering.manifests())
    assert generated not in json.dumps({name: value for name, (value, secret) in rendering.outputs.items()
                                        if not secret})


def test_bad_config_stops_the_program_before_any_resource(render_program: Callable[..., Rendering]) -> None:
    from kfops.base.errors import KfopsError

    with pytest.raises(KfopsError, match="kfops:kfpApiUrl"):
        render_program({**CLUSTER_CONFIG, "kfops:kfpMode": "api"})


def test_no_program_module_shadows_a_module_it_imports() -> None:
    """Pulumi runs infra/ as the program directory, first on sys.path: infra/platform.py would hide `platform`."""
    program_dir = REPO_ROOT / "infra"
    names = {path.stem for path in program_dir.glob("*.py") if path.stem != "__main__"}
    names |= {path.name for path in program_dir.iterdir() if (path / "__init__.py").is_file()}
    top_level_packages = {"kfops", "infra", "pipelines", "components", "trainer", "serving", "loadtest", "yaml",
                          "pulumi", "pulumi_kubernetes", "pulumi_random", "kfp", "kubernetes", "jsonschema"}
    assert names & (set(sys.stdlib_module_names) | top_level_packages) == set()
