"""Storing datasets, registering and promoting models against a real SeaweedFS and MLflow server."""

from __future__ import annotations

import os
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


def test_concurrent_promotions_leave_the_best_version_champion(dataset_uri: str, model_name: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs promote at the same time: the one that finishes last must not put a worse model back in place.

    The interleaving that loses an update without the lease is forced: the better version's run reads the champion,
    then waits until the middling version's run has either read the champion too (no lease: both compared with the
    old champion, and the middling one writes the alias last) or is waiting for the lease.
    """
    import threading

    import mlflow

    import components.promote as promote

    first = train_and_register(WINE_QUALITY, dataset_uri, WORSE, model_name=model_name, experiment="tests")
    assert register_and_promote("winequality", model_name, first.version, dataset_uri).promoted
    better = train_and_register(WINE_QUALITY, dataset_uri, GOOD, model_name=model_name, experiment="tests")
    middling = train_and_register(WINE_QUALITY, dataset_uri, {"alpha": "0.2", "l1_ratio": "0.5"},
                                  model_name=model_name, experiment="tests")
    better_read, middling_blocked_or_read, better_recorded = threading.Event(), threading.Event(), threading.Event()
    real_champion, real_record = promote._champion, promote._record

    def champion(client: object, name: str) -> str | None:
        found = real_champion(client, name)
        if threading.current_thread().name == "better":
            better_read.set()
            assert middling_blocked_or_read.wait(120), "the middling run neither waited for the lease nor read"
        else:
            middling_blocked_or_read.set()
            assert better_recorded.wait(120)
        return found

    def record(*args: object) -> None:
        real_record(*args)  # type: ignore[arg-type]
        if threading.current_thread().name == "better":
            better_recorded.set()

    def report(message: str) -> None:
        if threading.current_thread().name == "middling" and message.startswith("waiting for the promotion lease"):
            middling_blocked_or_read.set()

    monkeypatch.setattr(promote, "_champion", champion)
    monkeypatch.setattr(promote, "_record", record)
    monkeypatch.setattr(promote, "_report", report)
    errors: list[BaseException] = []

    def promote_version(version: str) -> None:
        try:
            register_and_promote("winequality", model_name, version, dataset_uri)
        except BaseException as error:  # collected: the test thread asserts
            errors.append(error)
            better_read.set()
            middling_blocked_or_read.set()
            better_recorded.set()

    first_run = threading.Thread(target=promote_version, args=(better.version,), name="better")
    first_run.start()
    assert better_read.wait(120)
    second_run = threading.Thread(target=promote_version, args=(middling.version,), name="middling")
    second_run.start()
    for thread in (first_run, second_run):
        thread.join(180)
    assert not errors, errors
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(model_name, CHAMPION).version == better.version
    assert client.get_model_version(model_name, middling.version).tags["kfops.compared_with"] == better.version


HOLD_THE_LEASE = """
import sys, time
import mlflow
from components.promote import promotion_lease
with promotion_lease(mlflow.MlflowClient(), sys.argv[1], ttl=3600):
    print("holding", flush=True)
    time.sleep(3600)
"""


def test_a_lease_whose_holder_was_killed_is_taken_over_at_once(local_platform: LocalPlatform,
                                                               model_name: str) -> None:
    """A run SIGKILLed while promoting leaves its lease (an hour long here): the next run on this host sees that
    the holder is gone and takes the lease over at once, saying so; ``doctor`` reports the stale lease meanwhile."""
    import subprocess
    import sys

    import mlflow

    from components.promote import LEASE_TAG, promotion_lease, read_lease
    from infra.local.doctor import check_leases

    client = mlflow.MlflowClient()
    client.create_registered_model(model_name)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LEASE, model_name], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "holding"
    lease = read_lease(client, model_name)
    assert lease is not None
    assert lease.holder is not None
    assert lease.holder.pid == holder.pid
    holder.kill()
    holder.wait()

    [stale] = [check for check in check_leases(local_platform) if model_name in check.message]
    assert stale.status == "warn"
    assert f"pid {holder.pid}" in stale.message
    # The fix doctor prints works as printed (in a shell whose PATH has the venv).
    left = client.get_registered_model(model_name).tags[LEASE_TAG]
    fix = stale.fix.split("to clear it now: ", 1)[1]
    shell = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", fix], env=shell, check=True, capture_output=True, timeout=120)
    assert LEASE_TAG not in client.get_registered_model(model_name).tags
    client.set_registered_model_tag(model_name, LEASE_TAG, left)  # as the killed run left it

    said: list[str] = []
    # With an hour-long lease and a minute's patience, only recognising the dead holder gets in.
    with promotion_lease(client, model_name, wait=60, report=said.append):
        assert read_lease(client, model_name).holder.pid == os.getpid()  # type: ignore[union-attr]
    assert len(said) == 1, said
    assert said[0].startswith(f"taking over the promotion lease of {model_name!r}")
    assert f"pid {holder.pid}" in said[0]
    assert LEASE_TAG not in client.get_registered_model(model_name).tags


def test_a_lease_held_on_another_host_is_waited_for_until_it_expires(local_platform: LocalPlatform,
                                                                     model_name: str) -> None:
    import time

    import mlflow

    from components.promote import LEASE_TAG, Lease, promotion_lease
    from infra.local.doctor import check_leases
    from kfops.base.liveness import ProcessIdentity

    client = mlflow.MlflowClient()
    client.create_registered_model(model_name)
    elsewhere = Lease("other", time.time() + 3600, ProcessIdentity("another-host", 1, 1.0))
    client.set_registered_model_tag(model_name, LEASE_TAG, elsewhere.to_tag())
    [held] = [check for check in check_leases(local_platform) if model_name in check.message]
    assert held.status == "ok"
    said: list[str] = []
    with (pytest.raises(KfopsError, match="another run has been promoting"),
          promotion_lease(client, model_name, settle=0.05, wait=0.2, report=said.append)):
        pass
    assert said
    assert said[0].startswith("waiting for the promotion lease"), said
    assert "pid 1 on another-host" in said[0]

    expired = Lease("other", time.time() - 1, ProcessIdentity("another-host", 1, 1.0))
    client.set_registered_model_tag(model_name, LEASE_TAG, expired.to_tag())
    with promotion_lease(client, model_name, settle=0.05, wait=5, report=said.append):
        pass
    assert LEASE_TAG not in client.get_registered_model(model_name).tags
