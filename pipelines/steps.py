"""The workflow's steps as KFP lightweight components.

Each body is one call into :mod:`pipelines.tasks`, where the step's logic lives as ordinary tested code. KFP embeds
the body in the compiled workflow; on a cluster it runs in the project image (which contains this repository and
every dependency), so no step installs anything at run time. Locally the KFP SubprocessRunner runs the same bodies
in this environment. Steps hand each other typed data: artifacts (``Dataset``, ``Model``, ``Metrics``) and ``dict``
parameters in the shapes of :mod:`components.summary`.
"""


from collections.abc import Callable  # KFP reads real annotations: no `from __future__ import annotations` here
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from kfops.base.contract import PROJECT_IMAGE


def _component(func: Callable[..., object]) -> Callable[..., dsl.PipelineTask]:
    return dsl.component(func, base_image=PROJECT_IMAGE, install_kfp_package=False)


@_component
def ingest(recipe: str, dataset_url: str, offline: bool, raw: Output[Dataset]) -> None:
    """Fetch the dataset (the recipe's URL unless one is given) into the ``raw`` artifact."""
    from pipelines import tasks

    tasks.ingest(recipe, dataset_url, offline, raw)


@_component
def clean(recipe: str, raw: Input[Dataset], cleaned: Output[Dataset], stats: Output[Metrics]) -> None:
    """Parse, validate and clean the raw file into a numeric parquet table; report row and column stats."""
    from pipelines import tasks

    tasks.clean(recipe, raw, cleaned, stats)


@_component
def store(recipe: str, cleaned: Input[Dataset], bucket: str) -> str:
    """Upload the cleaned table to the object store; return its ``s3://`` URI (content-addressed)."""
    from pipelines import tasks

    return tasks.store(recipe, cleaned, bucket)


@_component
def tune(recipe: str, dataset_uri: str, target: str, max_trials: int, parallel_trials: int,
         max_failed_trials: int, algorithm: str, timeout_minutes: int, run_id: str,
         experiment: Output[Artifact], metrics: Output[Metrics], report: Output[HTML]) -> None:
    """Run the recipe's Katib Experiment on the target; save the result in Katib's status shape and its report."""
    from pipelines import tasks

    tasks.tune(recipe, dataset_uri, target, max_trials, parallel_trials, max_failed_trials, algorithm,
               timeout_minutes, run_id, experiment, metrics, report)


@_component
def best_params(recipe: str, experiment: Input[Artifact]) -> NamedTuple(
        "BestParams", [("params", dict), ("objective", float), ("tuning", dict)]):
    """The best hyperparameters, their objective value and the tuning outcome."""
    from collections import namedtuple

    from pipelines import tasks

    return namedtuple("BestParams", ["params", "objective", "tuning"])(*tasks.best_params(recipe, experiment))


@_component
def train(recipe: str, dataset_uri: str, params: dict, model_name: str, mlflow_experiment: str, run_id: str,
          model: Output[Model]) -> dict:
    """Fit with the best hyperparameters, log to MLflow and register a new version with alias ``challenger``."""
    from pipelines import tasks

    return tasks.train(recipe, dataset_uri, params, model_name, mlflow_experiment, run_id, model)


@_component
def register_and_promote(recipe: str, model: Input[Model], dataset_uri: str, metrics: Output[Metrics],
                         comparison: Output[HTML]) -> NamedTuple(
        "Promoted", [("champion_uri", str), ("decision", dict)]):
    """Move alias ``champion`` to the new version only if it beats the current champion on held-out data."""
    from collections import namedtuple

    from pipelines import tasks

    promoted = namedtuple("Promoted", ["champion_uri", "decision"])
    return promoted(*tasks.register_and_promote(recipe, model, dataset_uri, metrics, comparison))


@_component
def deploy(champion_uri: str, target: str, protocol: str, manifests: Output[Artifact]) -> dict:
    """Serve the champion on the target; write the SeldonDeployments that describe it."""
    from pipelines import tasks

    return tasks.deploy(champion_uri, target, protocol, manifests)
