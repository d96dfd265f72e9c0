from __future__ import annotations

import re
from typing import Any

import pytest

from components.katib.experiment import JOB_FAILED, JOB_SUCCEEDED, TRIAL_CONTAINER, build_experiment
from infra.cluster.validate import validate_manifest
from kfops.base.contract import S3_CONFIG_MAP, S3_SECRET_NAME
from kfops.base.errors import KfopsError
from kfops.base.recipes import RECIPES, WINE_QUALITY
from kfops.base.upstream import katib

pytestmark = pytest.mark.unit

DATASET = "s3://datasets/winequality/cleaned/abc.parquet"


def build(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"name": "kfops-winequality-1", "namespace": "team-a", "dataset_uri": DATASET,
                               "max_trials": 8, "parallel_trials": 2, "max_failed_trials": 3}
    options.update(overrides)
    return build_experiment(WINE_QUALITY, **options)


def test_experiment_fields() -> None:
    experiment = build(algorithm="tpe", algorithm_settings={"random_state": "3"})
    assert experiment["apiVersion"] == "kubeflow.org/v1beta1"
    assert experiment["kind"] == "Experiment"
    assert experiment["metadata"] == {"name": "kfops-winequality-1", "namespace": "team-a",
                                      "labels": {"app.kubernetes.io/part-of": "kfops", "kfops.recipe": "winequality"}}
    spec = experiment["spec"]
    assert spec["objective"] == {"type": "minimize", "objectiveMetricName": "rmse",
                                 "additionalMetricNames": ["mae", "r2"]}
    assert spec["algorithm"] == {"algorithmName": "tpe",
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
    # Only the label that opts the trial in to Katib's metrics collector; nothing a PodDefault selects.
    assert pod["metadata"]["labels"] == katib.TRIAL_POD_LABEL.value
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
    # What Katib v0.19.0's webhook and suggestion services refuse (kfops.base.upstream.katib):
    ("name over Katib's 40", {"name": "kfops-" + "w" * 35}, "at most 40 characters"),
    ("name starting with a digit", {"name": "1-wine"}, "is not a DNS label"),
    ("more parallel than trials", {"max_trials": 2, "parallel_trials": 3}, "more parallel or allowed failed"),
    ("more failures than trials", {"max_trials": 2, "max_failed_trials": 3}, "more parallel or allowed failed"),
    ("optuna's tpe setting on hyperopt's tpe", {"algorithm": "tpe", "algorithm_settings": {"n_startup_trials": "5"}},
     "has no setting 'n_startup_trials'"),
    ("lower-case n_ei_candidates on tpe", {"algorithm": "tpe", "algorithm_settings": {"n_ei_candidates": "5"}},
     "has no setting 'n_ei_candidates'"),
    ("tpe gamma out of range", {"algorithm": "tpe", "algorithm_settings": {"gamma": "1.5"}}, "must be in \\(0, 1\\)"),
    ("negative random_state", {"algorithm": "random", "algorithm_settings": {"random_state": "-1"}}, "must be >= 0"),
    ("cmaes restart strategy 'None'", {"algorithm": "cmaes", "algorithm_settings": {"restart_strategy": "None"}},
     "ipop, bipop or none"),
    ("bayesian optimization on a double from 0", {"algorithm": "bayesianoptimization"}, "needs a minimum above 0"),
])
def test_invalid_requests(case: str, overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(KfopsError, match=expected) as raised:
        build(**overrides)
    assert raised.value.step == "tune"


@pytest.mark.parametrize(("algorithm", "settings"), [
    ("tpe", {"gamma": "0.25", "n_EI_candidates": "24", "prior_weight": "1.0", "random_state": "7"}),
    ("multivariate-tpe", {"n_startup_trials": "5", "n_ei_candidates": "24", "random_state": "7"}),
    ("cmaes", {"restart_strategy": "ipop", "sigma": "0.3", "random_state": "1"}),
    ("bayesianoptimization", {"base_estimator": "GP", "acq_func": "EI", "n_initial_points": "3"}),
])
def test_every_setting_katib_accepts_is_accepted(algorithm: str, settings: dict[str, str]) -> None:
    # bayesianoptimization needs doubles above 0: churn's only double starts at 0.01.
    recipe = RECIPES["churn"] if algorithm == "bayesianoptimization" else WINE_QUALITY
    build_experiment(recipe, name="kfops-ok", namespace="n", dataset_uri=DATASET, max_trials=4, parallel_trials=2,
                     max_failed_trials=1, algorithm=algorithm, algorithm_settings=settings)


def test_grid_refuses_more_trials_than_combinations() -> None:
    from kfops.base.recipes import SearchParameter

    recipe = WINE_QUALITY.model_copy(update={"search_space": (
        SearchParameter(name="alpha", type="double", min=0.1, max=0.3, step=0.1),
        SearchParameter(name="l1_ratio", type="double", min=0.0, max=1.0, step=0.5))})
    build_experiment(recipe, name="g", namespace="n", dataset_uri=DATASET, max_trials=9, parallel_trials=1,
                     max_failed_trials=0, algorithm="grid")
    with pytest.raises(KfopsError, match="grid search has 9 combinations but maxTrialCount is 10"):
        build_experiment(recipe, name="g", namespace="n", dataset_uri=DATASET, max_trials=10, parallel_trials=1,
                         max_failed_trials=0, algorithm="grid")


def test_the_tune_step_fits_parallelism_and_failures_to_the_trial_count() -> None:
    from components.tune import build_tuning_experiment

    spec = build_tuning_experiment("winequality", DATASET, max_trials=2, parallel_trials=3, max_failed_trials=5)["spec"]
    assert (spec["maxTrialCount"], spec["parallelTrialCount"], spec["maxFailedTrialCount"]) == (2, 2, 2)


def test_the_trial_command_survives_katibs_collector_wrapping() -> None:
    """Katib's StdOut collector runs ``sh -c "<command and args joined by spaces>"`` (katib.COMMAND_WRAPPING), and
    without an explicit command it asks the image's registry for the entrypoint (a kind-loaded image is in none)."""
    [container] = build()["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert container["command"]
    for part in (*container["command"], *container.get("args", [])):
        # Katib substitutes ${trialParameters.x} before wrapping: what remains must need no quoting in sh.
        plain = re.sub(r"\$\{trialParameters\.[A-Za-z0-9_]+\}", "", part)
        assert not any(character in plain for character in " \t\n'\"\\$`;&|<>"), part
