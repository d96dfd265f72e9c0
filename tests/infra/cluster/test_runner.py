"""The cluster runner against a fake KFP API that answers in the shapes KFP 2.17 documents."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infra.cluster.runner import ClusterRunSettings, follow, kfp_client, submit
from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT
from kfops.base.errors import WORKFLOW_STEPS, KfopsError
from kfops.base.events import Event
from pipelines.compile import compile_workflow
from tests.fakes.kfp_api import FakeKfp, failing_run_script, serve

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def package() -> str:
    return compile_workflow()


def settings(fake: FakeKfp) -> ClusterRunSettings:
    return ClusterRunSettings(kfp_host=fake.url, namespace="kubeflow", poll_seconds=0.01, run_timeout_minutes=1)


def test_a_run_is_created_under_the_project_service_account_with_the_compiled_workflow(package: str) -> None:
    with serve(FakeKfp()) as fake:
        run_id = submit(package, {"recipe": "winequality", "target": "cluster"}, settings(fake),
                        kfp_client(settings(fake)), run_name="kfops test")
        [created] = fake.created_runs()
    assert created["service_account"] == PIPELINE_SERVICE_ACCOUNT
    assert created["runtime_config"]["parameters"] == {"recipe": "winequality", "target": "cluster"}
    # With a platform (Kubernetes) document, the client sends both under pipeline_spec.
    pipeline_spec, platform_spec = yaml.safe_load_all(package)
    assert created["pipeline_spec"] == {"pipeline_spec": pipeline_spec, "platform_spec": platform_spec}
    assert created["experiment_id"] in fake.experiments
    assert run_id in fake.runs


def test_following_a_run_reports_every_step_once_in_order() -> None:
    events: list[Event] = []
    with serve(FakeKfp()) as fake:
        client = kfp_client(settings(fake))
        run_id = submit("pipelineInfo: {name: x}\nroot: {}\n", {}, settings(fake), client, run_name="x")
        run = follow(run_id, settings(fake), client, events.append)
    assert str(run.state) == "SUCCEEDED"
    assert [(e.kind, e.step) for e in events] == [(kind, step) for step in WORKFLOW_STEPS
                                                  for kind in ("step-started", "step-finished")]


def test_a_failed_run_names_the_failed_step_and_kfp_error() -> None:
    events: list[Event] = []
    fake = FakeKfp(script=failing_run_script("tune", "Katib refused Experiment: admission webhook denied"))
    with serve(fake):
        client = kfp_client(settings(fake))
        run_id = submit("pipelineInfo: {name: x}\nroot: {}\n", {}, settings(fake), client, run_name="x")
        with pytest.raises(KfopsError, match=r"\[tune\] KFP run .* ended FAILED in tune: Katib refused"):
            follow(run_id, settings(fake), client, events.append)
    assert events[-1].kind == "step-failed"
    assert events[-1].data["cause"].startswith("Katib refused")


def test_an_unreachable_api_fails_in_seconds_with_the_fix(tmp_path: Path) -> None:
    with serve(FakeKfp()) as fake:
        dead = fake.url
    with pytest.raises(KfopsError, match=r"KFP API at http://127\.0\.0\.1:\d+ does not answer.*port-forward"):
        kfp_client(ClusterRunSettings(kfp_host=dead))


@pytest.mark.integration
def test_the_outcome_is_read_back_from_katib_and_the_registry(local_platform: object, tmp_path: Path) -> None:
    from components.katib.results import best_trial
    from components.promote import register_and_promote
    from components.store import store_dataset
    from components.summary import RunSummary
    from components.tune import build_tuning_experiment
    from infra.cluster.katib import GROUP, VERSION
    from infra.cluster.runner import collect
    from infra.local.katib.executor import run_local_experiment
    from kfops.base.contract import DATASETS_BUCKET
    from kfops.base.recipes import WINE_QUALITY
    from tests.datasets import cleaned_wine
    from tests.fakes.kube import FakeCustomObjects, katib_trial
    from trainer.train import train_and_register

    run_id, other_run = "0f2a9c1e-7b44-4d2e-9a51-5c0d8e6f3a10", "9c1e0f2a-4d2e-7b44-9a51-3a105c0d8e6f"
    model = "runner-collect"
    dataset = store_dataset(cleaned_wine(tmp_path), DATASETS_BUCKET, "runner-test")
    # Katib's records of the run: the same Experiment spec, run here, stored as Katib would show it.
    spec = build_tuning_experiment("winequality", dataset, max_trials=2, parallel_trials=1, max_failed_trials=0,
                                   run_id=run_id, namespace="kubeflow")
    result = run_local_experiment(spec, tmp_path / "tuning")
    kube = FakeCustomObjects()
    name = spec["metadata"]["name"]
    kube.put(GROUP, VERSION, "kubeflow", "experiments", result["experiment"])
    for record in result["trials"]:
        kube.put(GROUP, VERSION, "kubeflow", "trials", katib_trial(name, "kubeflow", record))
    params, objective = best_trial(result, "rmse")
    # Another run's version of the same model must not be mistaken for this run's.
    train_and_register(WINE_QUALITY, dataset, params, model_name=model, experiment="tests", pipeline_run_id=other_run)
    trained = train_and_register(WINE_QUALITY, dataset, params, model_name=model, experiment="tests",
                                 pipeline_run_id=run_id)
    decision = register_and_promote("winequality", model, trained.version, dataset)

    outputs = collect(run_id, {"recipe": "winequality", "model_name": model, "serving_protocol": "both"},
                      "kubeflow", kube=kube)
    summary = RunSummary.from_outputs(outputs, target="cluster", location="kfp", seconds=1.0)

    assert (summary.tuning.trials, summary.tuning.succeeded, summary.tuning.executor) == (2, 2, "katib")
    assert (summary.tuning.best_params, summary.tuning.objective) == (params, objective)
    assert summary.training.version == trained.version
    assert summary.training.dataset_uri == dataset
    assert summary.training.test_metrics == pytest.approx(trained.test_metrics)
    assert summary.promotion == decision.as_dict()
    assert summary.serving.endpoints == {
        "v2": f"http://kfops-model-default.kubeflow.svc.cluster.local:8000/v2/models/{model}/infer",
        "v1": "http://kfops-model-v1-default.kubeflow.svc.cluster.local:8000/api/v1.0/predictions",
        "v2-grpc": "grpc://kfops-model-default.kubeflow.svc.cluster.local:5001"}
