"""One trial and the final training.

A trial fits on the training rows and scores on the validation rows. The final training fits on both, scores on
the held-out test rows, logs to MLflow and registers the model.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.recipes import Recipe
from kfops.base.storage import endpoint_url
from kfops.base.tracking import require_tracking_server, short_error
from trainer.data import load_frame, split
from trainer.evaluate import evaluate
from trainer.models import SKOPS_TRUSTED_TYPES, build_model, fit, parse_hyperparameters

#: Alias a freshly trained version gets; ``champion`` is only ever moved by the promotion step.
CHALLENGER = "challenger"
CHAMPION = "champion"
#: Tag of a version (and its MLflow run) naming the pipeline run that trained it.
RUN_ID_TAG = "kfops.pipeline_run_id"


def registered_model_name(model_name: str, recipe_name: str) -> str:
    """The registry name to use: the given one, else ``kfops-<recipe>``."""
    return model_name.strip() or f"kfops-{recipe_name}"


def run_trial(recipe: Recipe, data_uri: str, raw_params: dict[str, str]) -> dict[str, float]:
    """Fit on the training rows with ``raw_params`` and return the validation metrics."""
    params = parse_hyperparameters(recipe.model, raw_params)
    parts = split(load_frame(data_uri), recipe.target_column, recipe.task)
    model = fit(build_model(recipe.model, params), parts.x_train, parts.y_train)
    return evaluate(recipe.task, model, parts.x_valid, parts.y_valid)


@dataclass(frozen=True)
class RegisteredModel:
    """A model version the final training registered."""

    name: str
    version: str
    run_id: str
    source: str
    params: dict[str, Any]
    test_metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"


@in_step(Step.TRAIN)
def train_and_register(recipe: Recipe, data_uri: str, raw_params: dict[str, str], *, model_name: str,
                       experiment: str, pipeline_run_id: str = "") -> RegisteredModel:
    """Fit the final model, log it to MLflow and register it as a new version with alias ``challenger``.

    Either the version exists with its alias and tags, or it does not exist at all: if anything after the version's
    creation fails, the version is deleted again before the error is raised.

    Raises:
        KfopsError: MLflow unreachable, bad data or hyperparameters, or the registry refused the version.
    """
    require_tracking_server()
    params = parse_hyperparameters(recipe.model, raw_params)
    parts = split(load_frame(data_uri), recipe.target_column, recipe.task)
    began = time.perf_counter()
    model = fit(build_model(recipe.model, params), parts.x_fit, parts.y_fit)
    fit_seconds = time.perf_counter() - began
    test_metrics = evaluate(recipe.task, model, parts.x_test, parts.y_test)

    import mlflow
    from botocore.exceptions import BotoCoreError, ClientError
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    tags = {"kfops.recipe": recipe.name, "kfops.dataset": data_uri, "kfops.model_family": recipe.model,
            "kfops.objective_metric": recipe.objective_metric, "kfops.goal": recipe.goal,
            f"kfops.test_{recipe.objective_metric}": f"{test_metrics[recipe.objective_metric]:.6g}"}
    if pipeline_run_id:
        # How a run's outcome is found again in the registry (the cluster runner reads it back by this tag).
        tags[RUN_ID_TAG] = pipeline_run_id
    client = mlflow.MlflowClient()
    version = None
    try:
        mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=f"{recipe.name}-train", tags=tags) as run:
            mlflow.log_params({**params, "recipe": recipe.name, "model_family": recipe.model,
                               "rows_fit": len(parts.x_fit), "rows_test": len(parts.x_test)})
            mlflow.log_metrics({f"test_{name}": value for name, value in test_metrics.items()})
            mlflow.log_metric("fit_seconds", fit_seconds)
            example = parts.x_test.head(5)
            info = mlflow.sklearn.log_model(
                model, name="model",
                signature=infer_signature(example, model.predict(example)),
                input_example=example,
                skops_trusted_types=list(SKOPS_TRUSTED_TYPES[recipe.model]) or None,
                # Explicit requirements: inferring them imports the model in a subprocess and costs seconds.
                pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
            )
        version = mlflow.register_model(info.model_uri, model_name, tags=tags).version
        client.set_registered_model_alias(model_name, CHALLENGER, version)
        source = client.get_model_version_download_uri(model_name, version)
    except (MlflowException, OSError, BotoCoreError, ClientError) as error:
        # Artifact uploads go straight to S3, so an unreachable store surfaces as a botocore error.
        if version is not None:
            _delete_quietly(client, model_name, version)
        raise KfopsError(f"logging or registering model {model_name!r} failed: {short_error(error)} "
                         f"(MLflow {os.environ.get('MLFLOW_TRACKING_URI', '')}, S3 {endpoint_url() or 'default'})",
                         "check the MLflow server and the object store (locally: `kfops local status`), "
                         "then run again; no version was left registered") from error
    return RegisteredModel(name=model_name, version=str(version), run_id=run.info.run_id, source=source,
                           params=params, test_metrics=test_metrics, tags=tags)


def _delete_quietly(client: Any, name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    # The server is what failed; the original error is the one to report.
    with contextlib.suppress(MlflowException):
        client.delete_model_version(name, version)
