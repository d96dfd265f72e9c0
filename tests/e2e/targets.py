"""Where the e2e suites run the workflow: the local platform here, a kind cluster in nightly CI.

Both targets return the same :class:`Outcome`, so every assertion is written once. The kind target reaches the
cluster through port-forwards the nightly workflow opens (``KFOPS_KFP_HOST``, ``MLFLOW_TRACKING_URI``,
``MLFLOW_S3_ENDPOINT_URL``, ``KFOPS_V2_URL``, ``KFOPS_V1_URL`` and the S3 key pair from the stack outputs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Outcome:
    """What one workflow run produced, in the shape of the local run summary."""

    tuning: dict[str, Any]
    training: dict[str, Any]
    decision: dict[str, Any]
    dataset_uri: str
    endpoints: dict[str, str]


class Target(Protocol):
    """Runs the workflow with pipeline parameters and reports the outcome."""

    def run(self, **parameters: Any) -> Outcome:
        """Run the workflow once."""
        ...


class LocalTarget:
    """The embedded default: KFP's local runner against ``kfops local``."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.runs = 0

    def run(self, **parameters: Any) -> Outcome:
        """See :class:`Target`."""
        from pipelines.run_local import run_locally

        self.runs += 1
        run = run_locally(self.env, self.workdir / f"run-{self.runs}", **parameters)
        return Outcome(run.tuning, run.training, run.decision, dataset_uri=_dataset_of(run.training),
                       endpoints=run.serving["endpoints"])


class KindTarget:
    """A kind cluster set up by ``pulumi up --stack kind``; tuning runs on Katib."""

    def __init__(self) -> None:
        import kfp

        self.namespace = os.environ.get("KFOPS_NAMESPACE", "kubeflow")
        self.client = kfp.Client(host=os.environ.get("KFOPS_KFP_HOST", "http://localhost:8888"))

    def run(self, **parameters: Any) -> Outcome:
        """See :class:`Target`: submit the compiled workflow, wait, read Katib and the MLflow registry."""
        import tempfile

        import mlflow
        from kubernetes import client as k8s
        from kubernetes import config

        from components.katib.results import best_trial, summary
        from components.tune import experiment_name
        from pipelines.compile import compile_workflow
        from trainer.train import registered_model_name

        arguments = {"tuning_executor": "katib", "deploy_target": "seldon", **parameters}
        arguments.pop("offline", None)  # the project image carries the bundled dataset; the default URL needs egress
        arguments["dataset_url"] = arguments.get("dataset_url") or "file:///app/data/winequality-red.csv"
        for name in ("max_trials", "parallel_trials", "max_failed_trials"):
            if name in arguments:
                arguments[name] = int(arguments[name])
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as package:
            package.write(compile_workflow())
            package.flush()
            run = self.client.create_run_from_pipeline_package(package.name, arguments=arguments,
                                                               namespace=self.namespace)
        finished = self.client.wait_for_run_completion(run.run_id, timeout=3600)
        assert finished.state == "SUCCEEDED", f"run {run.run_id} ended {finished.state}"

        config.load_kube_config()
        recipe = arguments.get("recipe", "winequality")
        name = experiment_name(recipe, run.run_id)
        api = k8s.CustomObjectsApi()
        experiment = api.get_namespaced_custom_object("kubeflow.org", "v1beta1", self.namespace, "experiments", name)
        trials = api.list_namespaced_custom_object("kubeflow.org", "v1beta1", self.namespace, "trials",
                                                   label_selector=f"katib.kubeflow.org/experiment={name}")
        from infra.cluster.katib import trial_record

        result = {"executor": "katib", "experiment": experiment,
                  "trials": [trial_record(t) for t in trials["items"]]}
        params, value = best_trial(result)
        tuning = {**summary(result), "best_params": params, "objective": value,
                  "objective_metric": experiment["spec"]["objective"]["objectiveMetricName"]}

        model = registered_model_name(arguments.get("model_name", ""), recipe)
        client = mlflow.MlflowClient()
        version = max(client.search_model_versions(f"name='{model}'"), key=lambda v: int(v.version))
        run_data = client.get_run(version.run_id).data
        training = {"model": model, "version": version.version, "run_id": version.run_id,
                    "params": {k: run_data.params[k] for k in params},
                    "test_metrics": {k.removeprefix("test_"): v for k, v in run_data.metrics.items()
                                     if k.startswith("test_")},
                    "source": client.get_model_version_download_uri(model, version.version),
                    "tags": version.tags}
        champion = client.get_model_version_by_alias(model, "champion").version
        decision = {"model_name": model, "challenger_version": version.version,
                    "promoted": version.tags.get("kfops.decision") == "promoted", "champion_version": champion,
                    "champion_uri": f"models:/{model}@champion"}
        # The SeldonDeployments' services, port-forwarded by the nightly workflow.
        endpoints = {"v2": f"{os.environ['KFOPS_V2_URL']}/v2/models/{model}/infer",
                     "v1": f"{os.environ['KFOPS_V1_URL']}/api/v1.0/predictions"}
        return Outcome(tuning, training, decision, dataset_uri=version.tags["kfops.dataset"], endpoints=endpoints)


def _dataset_of(training: dict[str, Any]) -> str:
    import mlflow

    version = mlflow.MlflowClient().get_model_version(training["model"], training["version"])
    return str(version.tags["kfops.dataset"])
