from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from infra.cluster.validate import SCHEMA_DIR, ManifestError, validate_manifest

pytestmark = pytest.mark.unit

TRIAL_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "spec": {"template": {
        "metadata": {"labels": {"access-minio": "true"}},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "training", "image": "ghcr.io/kfops/kfops:0.1.0",
            "command": ["python", "-m", "trainer", "--learning-rate=${trialParameters.learningRate}"],
        }]},
    }},
}
EXPERIMENT = {
    "apiVersion": "kubeflow.org/v1beta1",
    "kind": "Experiment",
    "metadata": {"name": "kfops-tune", "namespace": "team-ml"},
    "spec": {
        "objective": {"type": "maximize", "goal": 0.99, "objectiveMetricName": "accuracy",
                      "additionalMetricNames": ["f1"]},
        "algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "42"}]},
        "parallelTrialCount": 3, "maxTrialCount": 12, "maxFailedTrialCount": 3,
        "parameters": [
            {"name": "learning_rate", "parameterType": "double",
             "feasibleSpace": {"min": "0.001", "max": "0.3", "distribution": "logUniform"}},
            {"name": "max_depth", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "10", "step": "1"}},
            {"name": "loss", "parameterType": "categorical", "feasibleSpace": {"list": ["log_loss", "exponential"]}},
        ],
        "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
        "trialTemplate": {
            "primaryContainerName": "training", "retain": False,
            "successCondition": 'status.conditions.#(type=="Complete")#|#(status=="True")#',
            "failureCondition": 'status.conditions.#(type=="Failed")#|#(status=="True")#',
            "trialParameters": [{"name": "learningRate", "description": "Learning rate",
                                 "reference": "learning_rate"}],
            "trialSpec": TRIAL_JOB,
        },
    },
}
SELDON = {
    "apiVersion": "machinelearning.seldon.io/v1",
    "kind": "SeldonDeployment",
    "metadata": {"name": "kfops-model", "namespace": "team-ml"},
    "spec": {
        "name": "kfops-model", "protocol": "v2", "annotations": {"seldon.io/no-engine": "true"},
        "predictors": [{
            "name": "default", "replicas": 1, "traffic": 100, "labels": {"version": "3"},
            "annotations": {"seldon.io/svc-name": "kfops-model"},
            "graph": {"name": "classifier", "implementation": "MLFLOW_SERVER", "type": "MODEL",
                      "modelUri": "s3://mlflow/artifacts/1/abc/artifacts/model",
                      "envSecretRefName": "kfops-seldon-s3", "endpoint": {"type": "REST"},
                      "parameters": [{"name": "xtype", "value": "DataFrame", "type": "STRING"}], "children": []},
            "componentSpecs": [{"spec": {"containers": [{"name": "classifier",
                                                          "resources": {"requests": {"cpu": "100m"}}}]}}],
        }],
    },
}
PODDEFAULT = {
    "apiVersion": "kubeflow.org/v1alpha1", "kind": "PodDefault",
    "metadata": {"name": "access-minio", "namespace": "team-ml"},
    "spec": {"desc": "S3", "selector": {"matchLabels": {"access-minio": "true"}},
             "env": [{"name": "AWS_ACCESS_KEY_ID",
                      "valueFrom": {"secretKeyRef": {"name": "mlpipeline-minio-artifact", "key": "accesskey"}}}]},
}
PROFILE = {"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "team-ml"},
           "spec": {"owner": {"kind": "User", "name": "alice@example.com"},
                    "resourceQuotaSpec": {"hard": {"cpu": "8"}}}}
PIPELINE = {"apiVersion": "pipelines.kubeflow.org/v2beta1", "kind": "Pipeline",
            "metadata": {"name": "p", "namespace": "team-ml"}, "spec": {"description": "d"}}
VERSION = {"apiVersion": "pipelines.kubeflow.org/v2beta1", "kind": "PipelineVersion",
           "metadata": {"name": "p-abc", "namespace": "team-ml"},
           "spec": {"pipelineName": "p", "displayName": "p-abc",
                    "pipelineSpec": {"pipelineInfo": {"name": "p"}, "root": {}}}}
CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team-ml"},
              "data": {"a": "b"}}
VALID = [EXPERIMENT, SELDON, PODDEFAULT, PROFILE, PIPELINE, VERSION, CONFIG_MAP]


def changed(obj: dict[str, Any], path: str, value: Any = None, rename: str | None = None) -> dict[str, Any]:
    """A copy of obj with the field at dotted path (list indexes as numbers) set, removed (None) or renamed."""
    copied = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node: Any = copied
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if rename is not None:
        node[rename] = node.pop(key)
    elif value is None:
        del node[key]
    else:
        node[key] = value
    return copied


@pytest.mark.parametrize("obj", VALID, ids=lambda obj: obj["kind"])
def test_objects_as_kfops_builds_them_are_valid(obj: dict[str, Any]) -> None:
    validate_manifest(obj)


@pytest.mark.parametrize(
    ("case", "obj", "path"),
    [
        ("typo in an objective field", changed(EXPERIMENT, "spec.objective.objectiveMetricName",
                                               rename="objectiveMetric"), "spec.objective.objectiveMetric"),
        ("typo in a trial parameter", changed(EXPERIMENT, "spec.trialTemplate.trialParameters.0.reference",
                                              rename="referance"),
         "spec.trialTemplate.trialParameters[0].referance"),
        ("number where the CRD has a string", changed(EXPERIMENT, "spec.parameters.0.feasibleSpace.min", 0.001),
         "spec.parameters[0].feasibleSpace.min"),
        ("unknown algorithm setting key", changed(EXPERIMENT, "spec.algorithm.algorithmSettings.0.name",
                                                  rename="key"), "spec.algorithm.algorithmSettings[0].key"),
        ("unknown collector", changed(EXPERIMENT, "spec.metricsCollectorSpec.collector.kind", "Stdout"),
         "spec.metricsCollectorSpec.collector.kind"),
        ("typo inside the trial Job", changed(EXPERIMENT, "spec.trialTemplate.trialSpec.spec.template.spec."
                                                          "containers.0.image", rename="imagee"),
         "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].imagee"),
        ("typo in a predictor", changed(SELDON, "spec.predictors.0.graph.envSecretRefName",
                                        rename="envSecretRef"), "spec.predictors[0].graph.envSecretRef"),
        ("unknown protocol", changed(SELDON, "spec.protocol", "v3"), "spec.protocol"),
        ("typo in the Seldon pod spec", changed(SELDON, "spec.predictors.0.componentSpecs.0.spec.containers.0."
                                                        "resources", rename="resource"),
         "spec.predictors[0].componentSpecs[0].spec.containers[0].resource"),
        ("typo in a PodDefault env source", changed(PODDEFAULT, "spec.env.0.valueFrom.secretKeyRef",
                                                    rename="secretRef"), "spec.env[0].valueFrom.secretRef"),
        ("PodDefault without selector", changed(PODDEFAULT, "spec.selector"), "spec"),
        ("namespaced Profile", changed(PROFILE, "metadata.namespace", "team-ml"), "metadata"),
        ("bad quota", changed(PROFILE, "spec.resourceQuotaSpec.hard", ["cpu"]), "spec.resourceQuotaSpec.hard"),
        ("Pipeline field only versions have", changed(PIPELINE, "spec.pipelineName", "P"), "spec.pipelineName"),
        ("version without spec", changed(VERSION, "spec.pipelineSpec"), "spec"),
        ("version spec that is not IR", changed(VERSION, "spec.pipelineSpec", {"a": 1}), "spec.pipelineSpec"),
        ("typo in a core object", changed(CONFIG_MAP, "data", rename="dat"), "dat"),
    ],
)
def test_a_bad_field_fails_naming_the_object_and_its_path(case: str, obj: dict[str, Any], path: str) -> None:
    with pytest.raises(ManifestError) as caught:
        validate_manifest(obj)
    assert caught.value.path == path, case
    assert obj["kind"] in str(caught.value)
    assert obj["metadata"]["name"] in str(caught.value)


def test_a_kind_without_schema_fails() -> None:
    with pytest.raises(ManifestError, match="no schema"):
        validate_manifest({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


def test_a_trial_of_a_custom_kind_is_left_to_its_crd() -> None:
    pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"anything": True}}
    validate_manifest(changed(EXPERIMENT, "spec.trialTemplate.trialSpec", pytorch))


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.json")), ids=lambda path: path.name)
def test_schemas_are_closed(path: Any) -> None:
    """Every object with properties rejects unknown ones: that is what makes a typo fail."""

    def open_objects(node: Any, where: str) -> list[str]:
        found = []
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                found.append(where)
            for key, value in node.items():
                found += open_objects(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                found += open_objects(value, f"{where}/{index}")
        return found

    assert open_objects(json.loads(path.read_text()), "") == []
