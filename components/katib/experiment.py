"""Build the Katib ``Experiment`` for a recipe: the one spec both tuning executors run.

The cluster executor hands it to Katib unchanged; the local executor reads the same fields (objective, algorithm,
parameters, trial counts, trial template) and executes them on this machine. Nothing else describes a tuning run.
"""

from __future__ import annotations

import re
from typing import Any

from kubeflow_katib_api.models import (
    V1beta1AlgorithmSetting,
    V1beta1AlgorithmSpec,
    V1beta1CollectorSpec,
    V1beta1Experiment,
    V1beta1ExperimentSpec,
    V1beta1FeasibleSpace,
    V1beta1MetricsCollectorSpec,
    V1beta1ObjectiveSpec,
    V1beta1ParameterSpec,
    V1beta1TrialParameterSpec,
    V1beta1TrialTemplate,
)

from components.katib.algorithms import ALGORITHMS, validate_settings
from kfops.base.contract import (
    PROJECT_IMAGE,
    PROJECT_IMAGE_USER,
    S3_CONFIG_KEYS,
    S3_CONFIG_MAP,
    S3_SECRET_ENV,
    S3_SECRET_NAME,
)
from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.pod_security import restricted_container, restricted_pod
from kfops.base.recipes import Recipe, SearchParameter
from kfops.base.upstream import katib

API_VERSION = "kubeflow.org/v1beta1"
#: Name of the trial container; Katib injects the metrics collector next to it.
TRIAL_CONTAINER = "training"
#: Katib's own conditions for a batch/v1 Job trial (its defaults, spelled out so the local executor reads them).
JOB_SUCCEEDED = katib.JOB_SUCCEEDED.value
JOB_FAILED = katib.JOB_FAILED.value
#: Katib's own pattern for Experiment names, anchored at the end as a DNS label must be.
_DNS_LABEL = re.compile(katib.NAME_PATTERN.value + "$")


def _feasible_space(parameter: SearchParameter) -> V1beta1FeasibleSpace:
    if parameter.type in ("categorical", "discrete"):
        return V1beta1FeasibleSpace(list=list(parameter.values))
    as_text = (lambda v: str(int(v))) if parameter.type == "int" else repr
    return V1beta1FeasibleSpace(
        min=as_text(parameter.min), max=as_text(parameter.max),
        step=as_text(parameter.step) if parameter.step is not None else None,
        distribution="logUniform" if parameter.log else None,
    )


def trial_command(recipe: Recipe, dataset_uri: str) -> list[str]:
    """The trainer command of a trial, with one ``${trialParameters.<name>}`` placeholder per hyperparameter."""
    return ["python", "-m", "trainer", "--recipe", recipe.name, "--data", dataset_uri,
            *(f"--{p.name}=${{trialParameters.{p.name}}}" for p in recipe.search_space)]


def trial_env() -> list[dict[str, Any]]:
    """A trial's S3 credentials, endpoint and region, from the Secret and ConfigMap the Pulumi program creates."""
    return [*({"name": env, "valueFrom": {"secretKeyRef": {"name": S3_SECRET_NAME, "key": key}}}
              for env, key in S3_SECRET_ENV.items()),
            *({"name": key, "valueFrom": {"configMapKeyRef": {"name": S3_CONFIG_MAP, "key": key}}}
              for key in S3_CONFIG_KEYS)]


@in_step(Step.TUNE)
def build_experiment(recipe: Recipe, *, name: str, namespace: str, dataset_uri: str, max_trials: int,
                     parallel_trials: int, max_failed_trials: int, algorithm: str | None = None,
                     algorithm_settings: dict[str, str] | None = None, image: str = PROJECT_IMAGE,
                     trial_timeout_seconds: int = 1800) -> dict[str, Any]:
    """The ``kubeflow.org/v1beta1`` Experiment, as the dict the Kubernetes API takes.

    Args:
        recipe: Search space, objective metric and goal come from here.
        name: Experiment name (a DNS label: lower-case letters, digits, dashes).
        namespace: Namespace it runs in.
        dataset_uri: ``s3://`` URI of the cleaned dataset every trial reads.
        max_trials: ``maxTrialCount``.
        parallel_trials: ``parallelTrialCount``.
        max_failed_trials: ``maxFailedTrialCount`` (the experiment fails once more trials than this failed).
        algorithm: Katib algorithm name; the recipe's default when not given.
        algorithm_settings: Katib ``algorithmSettings`` for that algorithm.
        image: Image of the trial container.
        trial_timeout_seconds: ``activeDeadlineSeconds`` of each trial Job.

    Raises:
        KfopsError: Invalid name, counts, algorithm or settings.
    """
    algorithm = algorithm or recipe.algorithm
    settings = algorithm_settings or {}
    # What Katib's validating webhook refuses (kfops.base.upstream.katib): the Experiment would never start.
    if len(name) > katib.NAME_MAX_LENGTH.value or not _DNS_LABEL.match(name):
        raise KfopsError(f"experiment name {name!r} is not a DNS label of at most {katib.NAME_MAX_LENGTH.value} "
                         "characters (Katib's limit)", "use lower-case letters, digits and dashes, starting with a "
                         f"letter, at most {katib.NAME_MAX_LENGTH.value} characters")
    if max_trials < 1 or parallel_trials < 1 or max_failed_trials < 0:
        raise KfopsError(f"invalid trial counts (max={max_trials}, parallel={parallel_trials}, "
                         f"max failed={max_failed_trials})", "use max >= 1, parallel >= 1 and max failed >= 0")
    if parallel_trials > max_trials or max_failed_trials > max_trials:
        raise KfopsError(f"invalid trial counts (max={max_trials}, parallel={parallel_trials}, "
                         f"max failed={max_failed_trials}): Katib refuses more parallel or allowed failed trials "
                         "than trials", f"use parallel and max failed of at most {max_trials}")
    if algorithm not in ALGORITHMS:
        raise KfopsError(f"unknown tuning algorithm {algorithm!r}", f"choose one of: {', '.join(ALGORITHMS)}")
    validate_settings(algorithm, settings, recipe.search_space, max_trials)

    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": trial_timeout_seconds,
            "template": {
                # An Istio sidecar would keep the Job from ever completing. The label opts the trial's pods in to
                # Katib's metrics collector injection (the only pods kfops sends to that webhook).
                "metadata": {"annotations": {"sidecar.istio.io/inject": "false"},
                             "labels": dict(katib.TRIAL_POD_LABEL.value)},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": restricted_pod(PROJECT_IMAGE_USER, PROJECT_IMAGE_USER),
                    "containers": [{
                        "name": TRIAL_CONTAINER,
                        "image": image,
                        "command": trial_command(recipe, dataset_uri),
                        "env": trial_env(),
                        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                      "limits": {"cpu": "1", "memory": "2Gi"}},
                        # Katib copies it to its metrics collector (katib-config injectSecurityContext, set by the
                        # platform), which then runs as the same non-root user.
                        "securityContext": restricted_container(PROJECT_IMAGE_USER),
                    }],
                },
            },
        },
    }
    experiment = V1beta1Experiment(
        api_version=API_VERSION,
        kind="Experiment",
        metadata={"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "kfops",
                                                                      "kfops.recipe": recipe.name}},
        spec=V1beta1ExperimentSpec(
            objective=V1beta1ObjectiveSpec(
                type=recipe.goal,
                goal=recipe.objective_goal,
                objective_metric_name=recipe.objective_metric,
                additional_metric_names=list(recipe.metrics[1:]),
            ),
            algorithm=V1beta1AlgorithmSpec(
                algorithm_name=algorithm,
                algorithm_settings=[V1beta1AlgorithmSetting(name=k, value=str(v)) for k, v in sorted(settings.items())]
                or None,
            ),
            parallel_trial_count=parallel_trials,
            max_trial_count=max_trials,
            max_failed_trial_count=max_failed_trials,
            parameters=[V1beta1ParameterSpec(name=p.name, parameter_type=p.type, feasible_space=_feasible_space(p))
                        for p in recipe.search_space],
            metrics_collector_spec=V1beta1MetricsCollectorSpec(collector=V1beta1CollectorSpec(kind="StdOut")),
            trial_template=V1beta1TrialTemplate(
                primary_container_name=TRIAL_CONTAINER,
                retain=False,
                success_condition=JOB_SUCCEEDED,
                failure_condition=JOB_FAILED,
                trial_parameters=[V1beta1TrialParameterSpec(name=p.name, reference=p.name,
                                                            description=f"{recipe.model} {p.name}")
                                  for p in recipe.search_space],
                trial_spec=job,
            ),
        ),
    )
    return experiment.to_dict()
