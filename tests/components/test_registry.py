"""Storing datasets, registering and promoting models against a real SeaweedFS and MLflow server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from components.ingest import fetch
from components.promote import register_and_promote
from components.store import store_dataset
from infra.local.platform import LocalPlatform
from infra.local.processes import free_port
from kfops.base.errors import KfopsError
from kfops.base.recipes import RECIPES, WINE_QUALITY
from tests.datasets import SKLEARN_IRIS, cleaned_wine, write_churn_arff
from trainer.train import CHALLENGER, CHAMPION, train_and_register

pytestmark = pytest.mark.integration

GOOD = {"alpha": "0.0005", "l1_ratio": "0.5"}
#: Heavily regularised: ElasticNet predicts little more than the mean, a deliberately worse model.
WORSE = {"alpha": "0.9", "l1_ratio": "1.0"}


@pytest.fixture
def dataset_uri(local_platform: LocalPlatform, tmp_path: Path) -> str:
    return store_dataset(cleaned_wine(tmp_path), "datasets", "tests/winequality")


@pytest.fixture
def model_name() -> str:
    return f"test-wine-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("recipe", "raw", "params"), [
    ("iris", lambda tmp: SKLEARN_IRIS, {"n_estimators": "10", "max_depth": "3"}),
    ("churn", lambda tmp: write_churn_arff(tmp / "churn.arff"), {"n_estimators": "10", "max_depth": "2",
                                                                 "learning_rate": "0.1"}),
])
def test_every_classifier_family_registers_and_loads_back(local_platform: LocalPlatform, tmp_path: Path,
                                                           recipe: str, raw: Callable[[Path], Path],
                                                           params: dict[str, str]) -> None:
    # Tree models are saved with skops, which loads only the types it is told to trust.
    import mlflow.pyfunc

    from components.clean import clean_file
    from trainer.data import load_frame, split

    clean_file(raw(tmp_path), RECIPES[recipe], tmp_path / "cleaned.parquet")
    uri = store_dataset(tmp_path / "cleaned.parquet", "datasets", f"tests/{recipe}")
    model = train_and_register(RECIPES[recipe], uri, params, model_name=f"test-{recipe}-{uuid.uuid4().hex[:8]}",
                               experiment="tests")
    parts = split(load_frame(uri), RECIPES[recipe].target_column, "classification")
    predicted = mlflow.pyfunc.load_model(model.uri).predict(parts.x_test)
    assert set(predicted) <= set(parts.y_test.unique())


def test_store_is_content_addressed_and_idempotent(local_platform: LocalPlatform, tmp_path: Path) -> None:
    path = cleaned_wine(tmp_path)
    first = store_dataset(path, "scratch-bucket", "tests/store")
    assert first.startswith("s3://scratch-bucket/tests/store/")
    assert first.endswith(".parquet")
    assert store_dataset(path, "scratch-bucket", "tests/store") == first
    fetched = fetch(first, tmp_path / "back.parquet")
    assert fetched.path.read_bytes() == path.read_bytes()


def test_s3_ingest_of_a_missing_object(local_platform: LocalPlatform, tmp_path: Path) -> None:
    with pytest.raises(KfopsError, match="does not exist"):
        fetch("s3://datasets/no/such/object.csv", tmp_path / "raw", retries=0)


def test_registered_version_has_params_metrics_signature_and_alias(dataset_uri: str, model_name: str) -> None:
    import mlflow

    model = train_and_register(WINE_QUALITY, dataset_uri, GOOD, model_name=model_name, experiment="tests")
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(model_name, CHALLENGER)
    assert version.version == model.version
    run = client.get_run(model.run_id)
    assert run.data.params["alpha"] == "0.0005"
    assert run.data.params["recipe"] == "winequality"
    assert {"test_rmse", "test_mae", "test_r2"} <= set(run.data.metrics)
    assert version.tags["kfops.dataset"] == dataset_uri
    info = mlflow.models.get_model_info(model.uri)
    assert [c["name"] for c in info.signature.inputs.to_dict()][:2] == ["fixed_acidity", "volatile_acidity"]
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert model.source.startswith("s3://mlflow/")


def test_champion_alias_moves_only_for_a_better_model(dataset_uri: str, model_name: str) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    first = train_and_register(WINE_QUALITY, dataset_uri, WORSE, model_name=model_name, experiment="tests")
    decision = register_and_promote("winequality", model_name, first.version, dataset_uri)
    assert decision.promoted
    assert decision.reason == "no champion yet"
    assert client.get_model_version_by_alias(model_name, CHAMPION).version == first.version

    better = train_and_register(WINE_QUALITY, dataset_uri, GOOD, model_name=model_name, experiment="tests")
    decision = register_and_promote("winequality", model_name, better.version, dataset_uri)
    assert decision.promoted
    assert decision.challenger_value < decision.champion_value  # rmse: smaller is better
    assert client.get_model_version_by_alias(model_name, CHAMPION).version == better.version
    assert client.get_model_version(model_name, better.version).tags["kfops.compared_with"] == first.version

    worse = train_and_register(WINE_QUALITY, dataset_uri, WORSE, model_name=model_name, experiment="tests")
    decision = register_and_promote("winequality", model_name, worse.version, dataset_uri)
    assert not decision.promoted
    assert decision.challenger_value > decision.champion_value
    assert client.get_model_version_by_alias(model_name, CHAMPION).version == better.version
    tags = client.get_model_version(model_name, worse.version).tags
    assert tags["kfops.decision"] == "rejected"
    assert tags["kfops.compared_with"] == better.version


def test_unreachable_mlflow_fails_fast_before_writing(dataset_uri: str, model_name: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    tracking = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(KfopsError, match=r"\[train\] MLflow tracking server .* is unreachable"):
        train_and_register(WINE_QUALITY, dataset_uri, GOOD, model_name=model_name, experiment="tests")
    with pytest.raises(KfopsError, match=r"\[register-and-promote\] MLflow tracking server .* is unreachable"):
        register_and_promote("winequality", model_name, "1", dataset_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    assert not mlflow.MlflowClient().search_model_versions(f"name='{model_name}'")


def test_object_store_down_mid_run_leaves_no_version(dataset_uri: str, model_name: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    import mlflow

    from trainer.data import load_frame

    load_frame(dataset_uri)  # the data was read before the store went away
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    boto3.DEFAULT_SESSION = None
    with pytest.raises(KfopsError, match=r"\[train\] logging or registering model .* failed"):
        train_and_register(WINE_QUALITY, dataset_uri, GOOD, model_name=model_name, experiment="tests")
    assert not mlflow.MlflowClient().search_model_versions(f"name='{model_name}'")


def test_a_registration_that_fails_after_the_version_exists_is_deleted(dataset_uri: str, model_name: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    import trainer.train

    # MLflow reserves aliases of the form v<number> for versions: the real server refuses this one, after the
    # version was created, which is the failure the clean-up exists for.
    monkeypatch.setattr(trainer.train, "CHALLENGER", "v1")
    with pytest.raises(KfopsError, match=r"\[train\] logging or registering model .* failed"):
        train_and_register(WINE_QUALITY, dataset_uri, GOOD, model_name=model_name, experiment="tests")
    assert mlflow.MlflowClient().search_model_versions(f"name='{model_name}'") == []


def test_promoting_a_missing_version(dataset_uri: str, model_name: str) -> None:
    with pytest.raises(KfopsError, match="has no version '42'"):
        register_and_promote("winequality", model_name, "42", dataset_uri)


def test_concurrent_promotions_leave_the_best_version_champion(dataset_uri: str, model_name: str) -> None:
    """Two runs promote at the same time: whichever finishes last must not put a worse model back in place."""
    import threading

    import mlflow

    first = train_and_register(WINE_QUALITY, dataset_uri, WORSE, model_name=model_name, experiment="tests")
    assert register_and_promote("winequality", model_name, first.version, dataset_uri).promoted
    better = train_and_register(WINE_QUALITY, dataset_uri, GOOD, model_name=model_name, experiment="tests")
    middling = train_and_register(WINE_QUALITY, dataset_uri, {"alpha": "0.2", "l1_ratio": "0.5"},
                                  model_name=model_name, experiment="tests")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def promote(version: str) -> None:
        start.wait()
        try:
            register_and_promote("winequality", model_name, version, dataset_uri)
        except BaseException as error:  # collected: the test thread asserts
            errors.append(error)

    threads = [threading.Thread(target=promote, args=(v,)) for v in (better.version, middling.version)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(model_name, CHAMPION).version == better.version
