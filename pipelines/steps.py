"""The workflow's steps as KFP lightweight components.

Each body is a few lines that call the tested library functions in this repository; KFP embeds the body in the
compiled workflow, and on a cluster it runs in the project image (which contains this repository and every
dependency), so no step installs anything at run time. Locally the KFP SubprocessRunner runs the same bodies in
this environment.
"""


from collections.abc import Callable  # KFP reads real annotations: no `from __future__ import annotations` here
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from kfops.base.contract import PROJECT_IMAGE


def _component(func: Callable[..., object]) -> Callable[..., dsl.PipelineTask]:
    return dsl.component(func, base_image=PROJECT_IMAGE, install_kfp_package=False)


@_component
def ingest(recipe: str, dataset_url: str, offline: bool, raw: Output[Dataset]) -> None:
    """Fetch the dataset (the recipe's URL unless one is given) into the ``raw`` artifact."""
    from pathlib import Path

    from components.ingest import fetch
    from kfops.base.recipes import get_recipe

    selected = get_recipe(recipe, "ingest")
    url = dataset_url or selected.dataset_url(offline=offline)
    result = fetch(url, Path(raw.path))
    raw.metadata.update({"url": url, "bytes": result.size, "sha256": result.sha256, "format": selected.format})
    print(f"ingested {url}: {result.size} bytes, sha256 {result.sha256[:16]}")


@_component
def clean(recipe: str, raw: Input[Dataset], cleaned: Output[Dataset], stats: Output[Metrics]) -> None:
    """Parse, validate and clean the raw file into a numeric parquet table; report row and column stats."""
    from pathlib import Path

    from components.clean import clean_file
    from kfops.base.recipes import get_recipe

    result = clean_file(Path(raw.path), get_recipe(recipe, "clean"), Path(cleaned.path))
    for name, value in result.as_metrics().items():
        stats.log_metric(name, value)
    cleaned.metadata.update({"features": result.features, "dropped_columns": result.dropped_columns})
    print(f"cleaned: {result.rows_out} rows x {result.columns_out} columns "
          f"({len(result.dropped_columns)} columns and {result.dropped_rows} rows dropped)")


@_component
def store(recipe: str, cleaned: Input[Dataset], bucket: str) -> str:
    """Upload the cleaned table to the object store; return its ``s3://`` URI (content-addressed)."""
    from pathlib import Path

    from components.store import store_dataset

    uri = store_dataset(Path(cleaned.path), bucket, f"{recipe}/cleaned")
    print(f"stored {uri}")
    return uri


@_component
def tune(recipe: str, dataset_uri: str, executor: str, max_trials: int, parallel_trials: int,
         max_failed_trials: int, algorithm: str, timeout_minutes: int, run_id: str,
         experiment: Output[Artifact], metrics: Output[Metrics]) -> None:
    """Run the recipe's Katib Experiment (on Katib, or locally) and save the result in Katib's status shape."""
    import json
    from pathlib import Path

    from components.katib.results import best_trial, summary
    from components.tune import build_tuning_experiment
    from kfops.base.recipes import get_recipe
    from pipelines.targets import experiment_namespace, run_experiment

    def report(kind: str, trial: object) -> None:
        if kind == "finished":
            record = trial.to_dict(())  # type: ignore[attr-defined]
            print("kfops-trial: " + json.dumps({key: record[key] for key in ("name", "condition", "reason")}
                                               | {"params": trial.assignments,  # type: ignore[attr-defined]
                                                  "observed": trial.observed}), flush=True)  # type: ignore[attr-defined]

    spec = build_tuning_experiment(recipe, dataset_uri, max_trials=max_trials, parallel_trials=parallel_trials,
                                   max_failed_trials=max_failed_trials, algorithm=algorithm, run_id=run_id,
                                   namespace=experiment_namespace(executor))
    result = run_experiment(executor, spec, timeout=timeout_minutes * 60, workdir=Path(experiment.path).parent,
                            on_trial=report)
    Path(experiment.path).write_text(json.dumps(result, indent=2))
    outcome = summary(result)
    for key in ("trials", "succeeded", "failed", "killed"):
        metrics.log_metric(key, outcome[key])
    experiment.metadata.update(outcome)
    print(f"tuning: {outcome['outcome']} ({outcome['reason']}), {outcome['succeeded']}/{outcome['trials']} "
          f"trials succeeded")
    best_trial(result, get_recipe(recipe, "tune").objective_metric, step="tune")


@_component
def best_params(recipe: str, experiment: Input[Artifact]) -> NamedTuple(
        "BestParams", [("params", str), ("objective", float), ("summary", str)]):
    """Turn the tuning result into the best hyperparameters (JSON) and their objective value."""
    import json
    from collections import namedtuple
    from pathlib import Path

    from components.katib.results import best_trial, summary
    from kfops.base.recipes import get_recipe

    result = json.loads(Path(experiment.path).read_text())
    metric = get_recipe(recipe, "best_params").objective_metric
    params, value = best_trial(result, metric)
    report = {**summary(result), "best_params": params, "objective_metric": metric, "objective": value}
    print(f"best {metric}={value:.6g} with {params}")
    return namedtuple("BestParams", ["params", "objective", "summary"])(
        json.dumps(params, sort_keys=True), value, json.dumps(report))


@_component
def train(recipe: str, dataset_uri: str, params: str, model_name: str, mlflow_experiment: str) -> NamedTuple(
        "Trained", [("version", str), ("summary", str)]):
    """Fit with the best hyperparameters, log to MLflow and register a new version with alias ``challenger``."""
    import json
    from collections import namedtuple

    from kfops.base.recipes import get_recipe
    from trainer.train import registered_model_name, train_and_register

    result = train_and_register(get_recipe(recipe, "train"), dataset_uri, json.loads(params),
                                model_name=registered_model_name(model_name, recipe), experiment=mlflow_experiment)
    report = {"model": result.name, "version": result.version, "run_id": result.run_id, "source": result.source,
              "params": result.params, "test_metrics": result.test_metrics}
    print(f"registered {result.name} v{result.version} (alias challenger): {result.test_metrics}")
    return namedtuple("Trained", ["version", "summary"])(result.version, json.dumps(report))


@_component
def register_and_promote(recipe: str, model_name: str, version: str, dataset_uri: str) -> NamedTuple(
        "Promoted", [("champion_uri", str), ("decision", str)]):
    """Move alias ``champion`` to the new version only if it beats the current champion on held-out data."""
    import json
    from collections import namedtuple

    from components.promote import register_and_promote as promote
    from trainer.train import registered_model_name

    decision = promote(recipe, registered_model_name(model_name, recipe), version, dataset_uri)
    print(f"{'promoted' if decision.promoted else 'kept champion'}: {decision.reason}")
    return namedtuple("Promoted", ["champion_uri", "decision"])(decision.champion_uri, json.dumps(decision.as_dict()))


@_component
def deploy(champion_uri: str, target: str, protocol: str, manifests: Output[Artifact]) -> NamedTuple(
        "Deployed", [("endpoints", str), ("summary", str)]):
    """Serve the champion: SeldonDeployments on a cluster, or the same runtimes locally; write the manifests."""
    import json
    import os
    from collections import namedtuple
    from pathlib import Path

    import yaml

    from components.deploy import ServingSettings, parse_protocols
    from pipelines.targets import deploy

    result = deploy(target, champion_uri, protocols=parse_protocols(protocol),
                    settings=ServingSettings.from_env(dict(os.environ)))
    Path(manifests.path).write_text(yaml.safe_dump_all(result.manifests, sort_keys=False))
    for warning in result.warnings:
        print(f"WARNING: {warning}")
    report = {"model": result.model_name, "version": result.version, "target": result.target,
              "endpoints": result.endpoints, "warnings": result.warnings}
    print(f"serving {result.model_name} v{result.version}: {result.endpoints}")
    return namedtuple("Deployed", ["endpoints", "summary"])(json.dumps(result.endpoints), json.dumps(report))
