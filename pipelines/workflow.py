"""The kfops workflow: one Kubeflow Pipelines v2 definition for both targets.

dataset URL -> ingest -> clean -> store (S3) -> tune (Katib Experiment) -> best_params -> train (MLflow, alias
``challenger``) -> register_and_promote (alias ``champion``) -> deploy (Seldon Core). The ``target`` parameter only
says who executes the Experiment and the SeldonDeployments: Katib and Seldon Core on the ``cluster``, or the same
specs on this machine (``local``); see :mod:`pipelines.targets`.
"""


from typing import NamedTuple

from kfp import dsl, kubernetes

from kfops.base import defaults
from kfops.base.contract import (
    DATASETS_BUCKET,
    MLFLOW_CONFIG_KEYS,
    MLFLOW_CONFIG_MAP,
    PIPELINE_NAME,
    PROJECT_IMAGE_USER,
    S3_CONFIG_KEYS,
    S3_CONFIG_MAP,
    S3_SECRET_ENV,
    S3_SECRET_NAME,
    SERVING_CONFIG_KEYS,
    SERVING_CONFIG_MAP,
)
from pipelines import steps

DESCRIPTION = ("Ingest, clean and store a dataset; tune with Katib; train, register and promote in MLflow; serve the "
               "champion with Seldon Core.")


def _for_cluster(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """What every step needs on a cluster; the local runner ignores Kubernetes settings.

    The object store's credentials, endpoint and region and the MLflow server come from the Secret and ConfigMaps the
    Pulumi program creates, written into the pod spec by KFP's driver: no admission webhook is involved.
    """
    kubernetes.use_secret_as_env(task, secret_name=S3_SECRET_NAME,
                                 secret_key_to_env={key: env for env, key in S3_SECRET_ENV.items()})
    for config_map, keys in ((S3_CONFIG_MAP, S3_CONFIG_KEYS), (MLFLOW_CONFIG_MAP, MLFLOW_CONFIG_KEYS)):
        kubernetes.use_config_map_as_env(task, config_map_name=config_map,
                                         config_map_key_to_env={key: key for key in keys})
    # KFP's backend already drops every capability, forbids privilege escalation and sets the runtime's seccomp
    # profile for the step's pod; only runAsNonRoot is left to the pipeline (backend/src/v2/compiler/argocompiler/
    # security_context.go at 2.17.0). The project image runs as this user.
    kubernetes.set_security_context(task, run_as_user=PROJECT_IMAGE_USER, run_as_group=PROJECT_IMAGE_USER,
                                    run_as_non_root=True)
    # Steps read URLs and write to the registry: a cached result would silently skip real work.
    task.set_caching_options(False)
    task.set_cpu_request("250m").set_memory_request("512M").set_memory_limit("4G")
    return task


class Outputs(NamedTuple):
    """What a run returns, in the shapes of :mod:`components.summary`."""

    tuning: dict
    training: dict
    decision: dict
    serving: dict


@dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
def kfops_pipeline(
    recipe: str = defaults.RECIPE,
    dataset_url: str = "",
    offline: bool = defaults.OFFLINE,
    max_trials: int = defaults.MAX_TRIALS,
    parallel_trials: int = defaults.PARALLEL_TRIALS,
    max_failed_trials: int = defaults.MAX_FAILED_TRIALS,
    algorithm: str = "",
    tuning_timeout_minutes: int = defaults.TUNING_TIMEOUT_MINUTES,
    model_name: str = "",
    mlflow_experiment: str = defaults.MLFLOW_EXPERIMENT,
    serving_protocol: str = defaults.SERVING_PROTOCOL,
    target: str = "cluster",
) -> Outputs:
    """Train, register, promote and serve a model for a recipe's dataset.

    Args:
    recipe: Dataset recipe (winequality, churn, iris).
    dataset_url: Dataset URL; empty for the recipe's.
    offline: Use the recipe's bundled copy of the dataset (in the project image) when no URL is given.
    max_trials: Katib maxTrialCount.
    parallel_trials: Katib parallelTrialCount.
    max_failed_trials: Katib maxFailedTrialCount.
    algorithm: Katib algorithm name; empty for the recipe's (tpe for the bundled recipes).
    tuning_timeout_minutes: How long the tune step waits for the Experiment.
    model_name: Registered model name; empty for kfops-<recipe>.
    mlflow_experiment: MLflow experiment of the training run.
    serving_protocol: v2 (MLServer), v1 (Seldon protocol, seldon-core wrapper) or both.
    target: cluster (Katib and Seldon Core execute the specs) or local (the same specs on this machine).
    """
    ingested = _for_cluster(steps.ingest(recipe=recipe, dataset_url=dataset_url, offline=offline))
    cleaned = _for_cluster(steps.clean(recipe=recipe, raw=ingested.outputs["raw"]))
    stored = _for_cluster(steps.store(recipe=recipe, cleaned=cleaned.outputs["cleaned"], bucket=DATASETS_BUCKET))
    tuned = _for_cluster(steps.tune(
        recipe=recipe, dataset_uri=stored.output, target=target, max_trials=max_trials,
        parallel_trials=parallel_trials, max_failed_trials=max_failed_trials, algorithm=algorithm,
        timeout_minutes=tuning_timeout_minutes, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER))
    best = _for_cluster(steps.best_params(recipe=recipe, experiment=tuned.outputs["experiment"]))
    trained = _for_cluster(steps.train(recipe=recipe, dataset_uri=stored.output, params=best.outputs["params"],
                                       model_name=model_name, mlflow_experiment=mlflow_experiment,
                                       run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER))
    promoted = _for_cluster(steps.register_and_promote(recipe=recipe, model=trained.outputs["model"],
                                                       dataset_uri=stored.output))
    deployed = _for_cluster(steps.deploy(champion_uri=promoted.outputs["champion_uri"], target=target,
                                         protocol=serving_protocol))
    # The Pulumi program's ServingConfig: Seldon version, secret and deployment names for the deploy step
    # (optional: without it the step uses the same defaults the Pulumi program does).
    kubernetes.use_config_map_as_env(deployed, config_map_name=SERVING_CONFIG_MAP, optional=True,
                                     config_map_key_to_env={key: key for key in SERVING_CONFIG_KEYS})
    return Outputs(best.outputs["tuning"], trained.outputs["Output"], promoted.outputs["decision"],
                   deployed.outputs["Output"])
