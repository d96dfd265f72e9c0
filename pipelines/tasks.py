"""What each workflow step does when it runs: the body behind each KFP component in :mod:`pipelines.steps`.

A component's body is one call into this module, so the logic here is ordinary, typed, testable Python, and the
compiled workflow embeds only that call. Each task runs as its :class:`~kfops.base.errors.Step`: errors raised
anywhere below it name the step, and the runner is told when it starts, finishes or fails (:mod:`kfops.base.events`).
Artifacts are KFP's ``Dataset``/``Artifact``/``Metrics``/``Model`` objects (anything with ``path`` and ``metadata``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from kfops.base.disk import disk_space, is_no_space
from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.events import emit
from kfops.base.failpoints import failpoint

F = TypeVar("F", bound=Callable[..., Any])


class ArtifactLike(Protocol):
    """The part of a KFP artifact a task uses."""

    path: str
    metadata: dict[str, Any]


class MetricsLike(Protocol):
    """The part of KFP ``Metrics`` a task uses."""

    def log_metric(self, metric: str, value: float) -> None:
        """Record one scalar."""
        ...


@contextmanager
def _reported(step: Step) -> Iterator[None]:
    with in_step(step):
        emit("step-started", step)
        try:
            failpoint(f"{step}:started")
            yield
        except KfopsError as error:
            emit("step-failed", step, cause=error.cause, fix=error.fix)
            raise
        except OSError as error:
            if not is_no_space(error):
                raise
            # A full disk, whatever wrote: one line naming it, not a traceback.
            where = Path(error.filename or ".")
            space = disk_space(where)
            full = KfopsError(f"no space left on the disk: {space.describe()} (writing {where})",
                              f"free space on {space.mount} and run again")
            emit("step-failed", step, cause=full.cause, fix=full.fix)
            raise full from error
        emit("step-finished", step)


def task(step: Step) -> Callable[[F], F]:
    """Run a function as workflow step ``step`` (see the module docstring)."""

    def decorate(func: F) -> F:
        @wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _reported(step):
                return func(*args, **kwargs)

        return cast(F, run)

    return decorate


@task(Step.INGEST)
def ingest(recipe: str, dataset_url: str, offline: bool, raw: ArtifactLike) -> None:
    """Fetch the dataset (the recipe's URL unless one is given) into ``raw``."""
    from components.ingest import fetch
    from kfops.base.recipes import get_recipe

    selected = get_recipe(recipe)
    url = dataset_url or selected.dataset_url(offline=offline)
    result = fetch(url, Path(raw.path))
    raw.metadata.update({"url": url, "origin": result.origin, "bytes": result.size, "sha256": result.sha256,
                         "format": selected.format})
    read_from = f" (read from {result.origin})" if result.origin != url else ""
    print(f"ingested {url}{read_from}: {result.size} bytes, sha256 {result.sha256[:16]}")


@task(Step.CLEAN)
def clean(recipe: str, raw: ArtifactLike, cleaned: ArtifactLike, stats: MetricsLike) -> None:
    """Parse, validate and clean the raw file into a numeric parquet table; report row and column stats."""
    from components.clean import clean_file
    from kfops.base.recipes import get_recipe

    result = clean_file(Path(raw.path), get_recipe(recipe), Path(cleaned.path))
    for name, value in result.as_metrics().items():
        stats.log_metric(name, value)
    cleaned.metadata.update({"features": result.features, "dropped_columns": result.dropped_columns})
    if result.layout:
        cleaned.metadata["layout"] = result.layout
        print(f"read {raw.metadata.get('url', 'the raw file')} as a {result.layout}")
    print(f"cleaned: {result.rows_out} rows x {result.columns_out} columns "
          f"({len(result.dropped_columns)} columns and {result.dropped_rows} rows dropped)")


@task(Step.STORE)
def store(recipe: str, cleaned: ArtifactLike, bucket: str) -> str:
    """Upload the cleaned table to the object store; return its ``s3://`` URI (content-addressed)."""
    from components.store import store_dataset

    uri = store_dataset(Path(cleaned.path), bucket, f"{recipe}/cleaned")
    print(f"stored {uri}")
    return uri


@task(Step.TUNE)
def tune(recipe: str, dataset_uri: str, target: str, max_trials: int, parallel_trials: int, max_failed_trials: int,
         algorithm: str, timeout_minutes: int, run_id: str, experiment: ArtifactLike, metrics: MetricsLike,
         report: ArtifactLike) -> None:
    """Run the recipe's Katib Experiment on the target; save the result in Katib's status shape and its report."""
    from components.katib.results import best_trial, summary
    from components.reports import tuning_report
    from components.tune import build_tuning_experiment
    from kfops.base.recipes import get_recipe
    from pipelines.targets import select

    chosen = select(target)

    def on_trial(trial: dict[str, Any]) -> None:
        emit("trial", Step.TUNE, **trial)
        observed = {m["name"]: m["latest"] for m in trial["observation"]["metrics"]}
        print(f"trial {trial['name']}: {trial['condition']} {observed}", flush=True)

    spec = build_tuning_experiment(recipe, dataset_uri, max_trials=max_trials, parallel_trials=parallel_trials,
                                   max_failed_trials=max_failed_trials, algorithm=algorithm, run_id=run_id,
                                   namespace=chosen.experiment_namespace())
    result = chosen.tuning_executor().run(spec, timeout=timeout_minutes * 60, workdir=Path(experiment.path).parent,
                                          on_trial=on_trial)
    Path(experiment.path).write_text(json.dumps(result, indent=2))
    # The report first: a failed experiment's page is the first place to look at why.
    Path(report.path).write_text(tuning_report(result))
    outcome = summary(result)
    for key in ("trials", "succeeded", "failed", "killed"):
        metrics.log_metric(key, outcome[key])
    experiment.metadata.update(outcome)
    print(f"tuning: {outcome['outcome']} ({outcome['reason']}), {outcome['succeeded']}/{outcome['trials']} "
          f"trials succeeded; report: {report.path}")
    metric = get_recipe(recipe).objective_metric
    _, best_value = best_trial(result, metric)
    metrics.log_metric(f"best_{metric}", best_value)


@task(Step.BEST_PARAMS)
def best_params(recipe: str, experiment: ArtifactLike) -> tuple[dict[str, str], float, dict[str, Any]]:
    """The best hyperparameters, their objective value and the tuning outcome."""
    from components.katib.results import best_trial, summary
    from components.summary import TuningOutcome
    from kfops.base.recipes import get_recipe

    result = json.loads(Path(experiment.path).read_text())
    metric = get_recipe(recipe).objective_metric
    params, value = best_trial(result, metric)
    outcome = TuningOutcome.from_dict({**summary(result), "best_params": params, "objective_metric": metric,
                                       "objective": value})
    print(f"best {metric}={value:.6g} with {params}")
    return params, value, outcome.as_dict()


@task(Step.TRAIN)
def train(recipe: str, dataset_uri: str, params: dict[str, Any], model_name: str, mlflow_experiment: str,
          run_id: str, model: ArtifactLike) -> dict[str, Any]:
    """Fit with the best hyperparameters, log to MLflow, register a version with alias ``challenger``."""
    from components.summary import TrainingOutcome
    from kfops.base.recipes import get_recipe
    from trainer.train import registered_model_name, train_and_register

    result = train_and_register(get_recipe(recipe), dataset_uri, {k: str(v) for k, v in params.items()},
                                model_name=registered_model_name(model_name, recipe), experiment=mlflow_experiment,
                                pipeline_run_id=run_id)
    outcome = TrainingOutcome(model=result.name, version=result.version, run_id=result.run_id, source=result.source,
                              dataset_uri=dataset_uri, params=result.params, test_metrics=result.test_metrics)
    Path(model.path).write_text(json.dumps(outcome.as_dict(), indent=2))
    model.metadata.update({"registered_model": result.name, "version": result.version, "model_uri": outcome.uri,
                           "source": result.source})
    print(f"registered {result.name} v{result.version} (alias challenger): {result.test_metrics}")
    return outcome.as_dict()


@task(Step.REGISTER_AND_PROMOTE)
def register_and_promote(recipe: str, model: ArtifactLike, dataset_uri: str, metrics: MetricsLike,
                         comparison: ArtifactLike) -> tuple[str, dict[str, Any]]:
    """Move alias ``champion`` to the trained version only if it beats the current champion on held-out data."""
    from components.promote import register_and_promote as promote
    from components.reports import promotion_report
    from components.summary import TrainingOutcome

    trained = TrainingOutcome.from_dict(json.loads(Path(model.path).read_text()))
    decision = promote(recipe, trained.model, trained.version, dataset_uri)
    Path(comparison.path).write_text(promotion_report(decision.as_dict()))
    metrics.log_metric(f"challenger_{decision.metric}", decision.challenger_value)
    if decision.champion_value is not None:
        metrics.log_metric(f"champion_{decision.metric}", decision.champion_value)
    metrics.log_metric("promoted", int(decision.promoted))
    print(f"{'promoted' if decision.promoted else 'kept champion'}: {decision.reason}; comparison: {comparison.path}")
    return decision.champion_uri, decision.as_dict()


@task(Step.DEPLOY)
def deploy(champion_uri: str, target: str, protocol: str, manifests: ArtifactLike) -> dict[str, Any]:
    """Serve the champion on the target; write the SeldonDeployments that describe it."""
    import yaml

    from components.deploy import ServingSettings, parse_protocols
    from components.summary import ServingOutcome
    from kfops.base.tracking import require_tracking_server
    from pipelines.targets import select

    require_tracking_server()
    settings = ServingSettings.from_env(dict(os.environ))
    result = select(target).deployer().deploy(champion_uri, protocols=parse_protocols(protocol), settings=settings)
    Path(manifests.path).write_text(yaml.safe_dump_all(result.manifests, sort_keys=False))
    for warning in result.warnings:
        print(f"WARNING: {warning}")
    print(f"serving {result.model_name} v{result.version}: {result.endpoints}")
    return ServingOutcome(model=result.model_name, version=result.version, target=result.target,
                          endpoints=result.endpoints, warnings=result.warnings).as_dict()
