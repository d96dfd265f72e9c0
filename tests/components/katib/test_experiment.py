from __future__ import annotations

from typing import Any

import pytest

from components.katib.experiment import JOB_FAILED, JOB_SUCCEEDED, TRIAL_CONTAINER, build_experiment
from infra.cluster.validate import validate_manifest
from kfops.base.contract import S3_CONFIG_MAP, S3_SECRET_NAME
from kfops.base.errors import KfopsError
from kfops.base.recipes import RECIPES, WINE_QUALITY

pytestmark = pytest.mark.unit

DATASET = "s3://datasets/winequality/cleaned/abc.parquet"


def build(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"name": "kfops-winequality-1", "namespace": "team-a", "dataset_uri": DATASET,
                               "max_trials": 8, "parallel_trials": 2, "max_failed_trials": 3}
    options.update(overrides)
    return build_experiment(WINE_QUALITY, **options)


def test_experiment_fields() -> None:
    experiment = build(algorithm="bayesianoptimization", algorithm_settings={"random_state": "3"})
    assert experiment["apiVersion"] == "kubeflow.org/v1beta1"
    assert experiment["kind"] == "Experiment"
    assert experiment["metadata"] == {"name": "kfops-winequality-1", "namespace": "team-a",
                                      "labels": {"app.kubernetes.io/part-of": "kfops", "kfops.recipe": "winequality"}}
    spec = experiment["spec"]
    assert spec["objective"] == {"type": "minimize", "objectiveMetricName": "rmse",
                                 "additionalMetricNames": ["mae", "r2"]}
    assert spec["algorithm"] == {"algorithmName": "bayesianoptimization",
                                 "algorithmSettings": [{"name": "random_state", "value": "3"}]}
    assert (spec["maxTrialCount"], spec["parallelTrialCount"], spec["maxFailedTrialCount"]) == (8, 2, 3)
    assert spec["parameters"] == [
        {"name": "alpha", "parameterType": "double",
         "feasibleSpace": {"min": "0.0001", "max": "1.0", "distribution": "logUniform"}},
        {"name": "l1_ratio", "parameterType": "double", "feasibleSpace": {"min": "0.0", "max": "1.0"}},
    ]
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}


def test_trial_template_runs_the_trainer_with_placeholders() -> None:
    template = build()["spec"]["trialTemplate"]
    assert template["primaryContainerName"] == TRIAL_CONTAINER
    assert (template["successCondition"], template["failureCondition"]) == (JOB_SUCCEEDED, JOB_FAILED)
    assert [p["name"] for p in template["trialParameters"]] == ["alpha", "l1_ratio"]
    job = template["trialSpec"]
    assert job["kind"] == "Job"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]
    assert "labels" not in pod["metadata"], "trials must not depend on the PodDefault webhook"
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "trainer", "--recipe", "winequality", "--data", DATASET,
                                    "--alpha=${trialParameters.alpha}", "--l1_ratio=${trialParameters.l1_ratio}"]
    sources = {env["name"]: env["valueFrom"] for env in container["env"]}
    assert all("value" not in env for env in container["env"]), "no literal value: credentials stay in the Secret"
    assert sources["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["name"] == S3_SECRET_NAME
    assert sources["AWS_ENDPOINT_URL_S3"]["configMapKeyRef"]["name"] == S3_CONFIG_MAP


def test_integer_parameters_are_written_as_integers() -> None:
    spec = build_experiment(RECIPES["churn"], name="c", namespace="n", dataset_uri=DATASET, max_trials=2,
                            parallel_trials=1, max_failed_trials=0)["spec"]
    assert spec["parameters"][0]["feasibleSpace"] == {"min": "20", "max": "200"}
    assert spec["objective"]["type"] == "maximize"


def test_experiment_is_a_valid_katib_resource() -> None:
    validate_manifest(build())


@pytest.mark.parametrize(("case", "overrides", "expected"), [
    ("unknown algorithm", {"algorithm": "hyperband"}, "unknown tuning algorithm 'hyperband'"),
    ("unknown setting", {"algorithm": "tpe", "algorithm_settings": {"n_trees": "3"}}, "has no setting 'n_trees'"),
    ("bad setting value", {"algorithm": "random", "algorithm_settings": {"random_state": "x"}}, "not a valid int"),
    ("grid without step", {"algorithm": "grid"}, "grid search needs a step"),
    ("zero trials", {"max_trials": 0}, "invalid trial counts"),
    ("zero parallel", {"parallel_trials": 0}, "invalid trial counts"),
    ("negative failures", {"max_failed_trials": -1}, "invalid trial counts"),
    ("name not a DNS label", {"name": "Wine_Tune"}, "is not a DNS label"),
])
def test_invalid_requests(case: str, overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(KfopsError, match=expected) as raised:
        build(**overrides)
    assert raised.value.step == "tune"
