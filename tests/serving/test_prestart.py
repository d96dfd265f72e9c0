"""The serving runtimes started idle at ``kfops local up`` (``KFOPS_PRESTART_SERVING``, on by default): the first
deploy loads the champion into the running processes instead of starting them, and serves it exactly."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import requests

from components.store import store_dataset
from infra.local.doctor import check_services
from infra.local.serving import LocalServing
from infra.local.target import LocalTarget
from kfops.base.recipes import WINE_QUALITY
from kfops_serving.protocols import open_inference_v2, seldon_v1
from tests.conftest import _forget_cached_credentials, new_settings
from tests.datasets import cleaned_wine
from trainer.data import load_frame, split
from trainer.train import train_and_register

pytestmark = pytest.mark.integration

NAME = "prestarted-wine"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTarget]:
    """A platform started as `kfops local up` starts it: the runtimes too, with no model."""
    local = LocalTarget(new_settings(tmp_path_factory.mktemp("kfops-prestart"), seldon_workers=2,
                                     prestart_serving=True))
    try:
        local.up()
        with pytest.MonkeyPatch.context() as patch:
            for name, value in local.platform.env().items():
                patch.setenv(name, value)
            _forget_cached_credentials()
            yield local
        _forget_cached_credentials()
    finally:
        local.platform.down()


def test_up_starts_both_runtimes_with_no_model_and_doctor_says_so(target: LocalTarget) -> None:
    states = {status.name: status.state for status in target.platform.status()}
    assert states == {"seaweedfs": "running", "mlflow": "running", "mlserver": "running", "seldon": "running"}
    records = target.platform.records()
    assert not records["mlserver"].details
    assert not records["seldon"].details
    checks = {check.name: check for check in check_services(target.platform)}
    for service in ("mlserver", "seldon"):
        assert checks[service].status == "ok", checks[service]
        assert "no model yet" in checks[service].message


def test_the_first_deploy_loads_into_the_running_runtimes_and_serves_the_model_exactly(
        target: LocalTarget, tmp_path_factory: pytest.TempPathFactory) -> None:
    import mlflow.pyfunc
    import pandas as pd

    before = {name: record.pid for name, record in target.platform.records().items()}
    dataset = store_dataset(cleaned_wine(tmp_path_factory.mktemp("data")), "datasets", "tests/prestart")
    version = train_and_register(WINE_QUALITY, dataset, {"alpha": "0.001", "l1_ratio": "0.5"}, model_name=NAME,
                                 experiment="prestart-tests").version
    serving = LocalServing(target.platform)
    model = serving.fetch(NAME, version)
    endpoints = serving.deploy(model)

    after = target.platform.records()
    assert {name: after[name].pid for name in ("mlserver", "seldon")} == \
        {name: before[name] for name in ("mlserver", "seldon")}, "a runtime was restarted instead of loaded"
    assert after["mlserver"].details == {"model": NAME, "version": version}
    # Ready now means the model is ready, no longer only that the server answers.
    assert after["mlserver"].ready_url.endswith(f"/v2/models/{NAME}/ready")
    assert after["seldon"].ready_url.endswith("/health/status")

    pyfunc = mlflow.pyfunc.load_model(model.path)
    rows = split(load_frame(dataset), WINE_QUALITY.target_column, WINE_QUALITY.task).x_test.head(50)
    columns = pyfunc.metadata.get_input_schema().input_names()
    rows = rows.to_numpy().tolist()
    expected = np.asarray(pyfunc.predict(pd.DataFrame(rows, columns=columns))).ravel().tolist()
    v2 = requests.post(endpoints["v2"], data=open_inference_v2(rows), timeout=30,
                       headers={"Content-Type": "application/json"})
    v1 = requests.post(endpoints["v1"], data=seldon_v1(rows), timeout=30,
                       headers={"Content-Type": "application/json"})
    assert v2.json()["outputs"][0]["data"] == expected
    assert v1.json()["data"]["ndarray"] == expected


def test_without_prestart_up_starts_no_runtime(tmp_path_factory: pytest.TempPathFactory) -> None:
    local = LocalTarget(new_settings(tmp_path_factory.mktemp("kfops-no-prestart"), prestart_serving=False))
    try:
        local.up()
        assert {status.name for status in local.platform.status()} == {"seaweedfs", "mlflow"}
    finally:
        local.platform.down()
