"""Run the workflow on a cluster: submit the compiled workflow to the KFP API, follow the run, collect its outcome.

``kfops pipeline run --cluster`` and the nightly e2e tests use this. The run executes under the project's
ServiceAccount (``kfops-pipeline-runner``), the one whose RBAC the Pulumi program grants. KFP's API reports the state
of each task, not the parameters the steps output, so the outcome is read back from where the steps recorded it:
the Katib Experiment of the run, the MLflow model version tagged with the run id (with its promotion decision), and
the SeldonDeployments serving the champion.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from components.deploy import PROTOCOLS, ServingSettings, cluster_endpoints
from components.katib.results import best_trial, summary
from components.promote import DECISION_TAG
from components.summary import RunSummary, ServingOutcome, TrainingOutcome, TuningOutcome
from components.tune import experiment_name
from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT
from kfops.base.errors import KfopsError, Step
from kfops.base.events import Event
from kfops.base.recipes import get_recipe

#: KFP run states after which a run does not change any more.
FINAL_RUN_STATES = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")


class ClusterRunSettings(BaseSettings):
    """How to reach the cluster's KFP API. Each field is read from ``KFOPS_<FIELD NAME>``."""

    model_config = SettingsConfigDict(env_prefix="KFOPS_", extra="ignore", use_attribute_docstrings=True)

    kfp_host: str = "http://localhost:8888"
    """KFP API base URL, e.g. through ``kubectl -n kubeflow port-forward svc/ml-pipeline 8888``."""

    kfp_token: SecretStr | None = None
    """Bearer token for a KFP API that needs one (e.g. ``kubectl create token``)."""

    namespace: str = "kubeflow"
    """Namespace runs execute in (standalone KFP: ``kubeflow``; multi-user: the profile's namespace)."""

    service_account: str = PIPELINE_SERVICE_ACCOUNT
    """ServiceAccount the run's pods use: the project's, whose RBAC the Pulumi program grants."""

    run_timeout_minutes: int = Field(120, gt=0)
    """How long to follow a run before giving up (the run itself goes on)."""

    poll_seconds: float = Field(10.0, gt=0)
    """Seconds between reads of the run's state."""


def kfp_client(settings: ClusterRunSettings) -> Any:
    """A ``kfp.Client`` for the configured API, once its health check answers.

    Raises:
        KfopsError: The API does not answer within seconds (``kfp.Client`` itself would retry for half a minute).
    """
    import kfp
    import requests

    token = settings.kfp_token.get_secret_value() if settings.kfp_token else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        requests.get(f"{settings.kfp_host.rstrip('/')}/apis/v2beta1/healthz", headers=headers,
                     timeout=5).raise_for_status()
    except requests.RequestException as error:
        raise KfopsError(f"the KFP API at {settings.kfp_host} does not answer ({type(error).__name__})",
                         "port-forward it (`kubectl -n kubeflow port-forward svc/ml-pipeline 8888`) or set "
                         "KFOPS_KFP_HOST; a KFP behind authentication needs KFOPS_KFP_TOKEN") from error
    return kfp.Client(host=settings.kfp_host, namespace=settings.namespace, existing_token=token)


def _state(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def submit(package_yaml: str, arguments: dict[str, Any], settings: ClusterRunSettings, client: Any,
           run_name: str) -> str:
    """Create a run of the compiled workflow; return its id.

    Raises:
        KfopsError: The KFP API is unreachable or refuses the run.
    """
    with tempfile.TemporaryDirectory() as folder:
        package = Path(folder) / "kfops_pipeline.yaml"
        package.write_text(package_yaml, encoding="utf-8")
        try:
            result = client.create_run_from_pipeline_package(
                str(package), arguments=arguments, run_name=run_name, experiment_name="kfops",
                namespace=settings.namespace, service_account=settings.service_account)
        except Exception as error:  # the KFP client raises urllib3, ApiException or ValueError
            raise KfopsError(f"the KFP API at {settings.kfp_host} refused the run: {type(error).__name__}: "
                             f"{str(error)[:300]}",
                             "check KFOPS_KFP_HOST (port-forward svc/ml-pipeline 8888) and KFOPS_KFP_TOKEN") from error
    return str(result.run_id)


def follow(run_id: str, settings: ClusterRunSettings, client: Any,
           on_event: Callable[[Event], None] = lambda _event: None) -> Any:
    """Wait for run ``run_id`` to end, reporting each task's start and end; return the final run.

    Raises:
        KfopsError: The run failed (naming the failed task and KFP's error), or did not end in time.
    """
    deadline = time.monotonic() + settings.run_timeout_minutes * 60
    seen: dict[str, str] = {}
    while True:
        run = client.get_run(run_id)
        for task in (getattr(run.run_details, "task_details", None) or []) if run.run_details else []:
            name, state = task.display_name or "", _state(task.state)
            if name not in {step.value for step in Step} or seen.get(name) == state:
                continue
            if name not in seen:
                on_event(Event("step-started", name))
            seen[name] = state
            if state == "SUCCEEDED":
                on_event(Event("step-finished", name))
            elif state in FINAL_RUN_STATES:
                message = getattr(task.error, "message", "") if task.error else ""
                on_event(Event("step-failed", name, {"cause": message or state, "fix": "read the task's logs"}))
        state = _state(run.state)
        if state == "SUCCEEDED":
            return run
        if state in FINAL_RUN_STATES:
            failed = [t for t in (run.run_details.task_details or []) if _state(t.state) == "FAILED"] \
                if run.run_details else []
            where = failed[0].display_name if failed else "the run"
            message = (getattr(failed[0].error, "message", "") if failed and failed[0].error else "") or \
                (getattr(run.error, "message", "") if run.error else "")
            raise KfopsError(f"KFP run {run_id} ended {state} in {where}: {message or 'no message'}",
                             f"read the logs of {where} in the KFP UI (run {run_id})",
                             step=where if failed else "pipeline run")
        if time.monotonic() > deadline:
            raise KfopsError(f"KFP run {run_id} did not end within {settings.run_timeout_minutes} minutes",
                             "follow it in the KFP UI; raise KFOPS_RUN_TIMEOUT_MINUTES")
        time.sleep(settings.poll_seconds)


def collect(run_id: str, arguments: dict[str, Any], namespace: str, *, kube: Any = None,
            mlflow_client: Any = None) -> dict[str, Any]:
    """The run's outcome in the shape of the pipeline's outputs (``tuning``, ``training``, ``decision``, ``serving``).

    Args:
        run_id: The KFP run id.
        arguments: The run's pipeline arguments (recipe, model name, protocol).
        namespace: Where the run executed.
        kube: A ``kubernetes.client.CustomObjectsApi``; from the local kube config when omitted.
        mlflow_client: An ``mlflow.MlflowClient``; for ``MLFLOW_TRACKING_URI`` when omitted.

    Raises:
        KfopsError: A record the run should have left is missing.
    """
    import mlflow

    from infra.cluster.katib import read_result
    from infra.cluster.kube import custom_objects_api
    from kfops.base import defaults
    from trainer.train import RUN_ID_TAG, registered_model_name

    kube = kube or custom_objects_api()
    client = mlflow_client or mlflow.MlflowClient()
    recipe = get_recipe(arguments.get("recipe") or defaults.RECIPE)

    result = read_result(kube, namespace, experiment_name(recipe.name, run_id))
    params, value = best_trial(result, recipe.objective_metric)
    tuning = TuningOutcome.from_dict({**summary(result), "best_params": params,
                                      "objective_metric": recipe.objective_metric, "objective": value})

    model = registered_model_name(arguments.get("model_name", ""), recipe.name)
    versions = [v for v in client.search_model_versions(f"name='{model}'") if v.tags.get(RUN_ID_TAG) == run_id]
    if not versions:
        raise KfopsError(f"no version of model {model!r} is tagged {RUN_ID_TAG}={run_id}",
                         "check that the run's train step succeeded and MLFLOW_TRACKING_URI is the cluster's MLflow")
    version = versions[0]
    run = client.get_run(version.run_id)
    training = TrainingOutcome(
        model=model, version=str(version.version), run_id=version.run_id,
        source=client.get_model_version_download_uri(model, version.version),
        dataset_uri=version.tags.get("kfops.dataset", ""),
        params={k: run.data.params[k] for k in params if k in run.data.params},
        test_metrics={k.removeprefix("test_"): v for k, v in run.data.metrics.items() if k.startswith("test_")})
    decision = json.loads(version.tags.get(DECISION_TAG) or "null")
    if decision is None:
        raise KfopsError(f"model {model!r} version {version.version} has no {DECISION_TAG} tag",
                         "check that the run's register-and-promote step succeeded")

    protocols = PROTOCOLS if arguments.get("serving_protocol", defaults.SERVING_PROTOCOL) == "both" \
        else (arguments["serving_protocol"],)
    settings = ServingSettings()
    endpoints = cluster_endpoints(protocols, model, settings, namespace)
    serving = ServingOutcome(model=model, version=str(decision["champion_version"]), target="seldon",
                             endpoints=endpoints)
    return {"tuning": tuning.as_dict(), "training": training.as_dict(), "decision": decision,
            "serving": serving.as_dict()}


def run_on_cluster(package_yaml: str, arguments: dict[str, Any], settings: ClusterRunSettings, *,
                   client: Any = None, on_event: Callable[[Event], None] = lambda _event: None,
                   collect_outcome: Callable[..., dict[str, Any]] = collect) -> RunSummary:
    """Submit, follow and summarise one run.

    Raises:
        KfopsError: The run could not be created, failed, or left no outcome to read.
    """
    client = client or kfp_client(settings)
    began = time.monotonic()
    run_id = submit(package_yaml, {**arguments, "target": "cluster"}, settings, client,
                    run_name=f"kfops {arguments.get('recipe', '')} {time.strftime('%Y-%m-%d %H:%M:%S')}".strip())
    follow(run_id, settings, client, on_event)
    outputs = collect_outcome(run_id, arguments, settings.namespace)
    return RunSummary.from_outputs(outputs, target="cluster", location=f"{settings.kfp_host}/#/runs/details/{run_id}",
                                   seconds=time.monotonic() - began)
