"""Custom scorers stay off on every MLflow server kfops starts, whatever the starting shell says.

A registered ``@scorer`` carries Python source that an MLflow server with ``MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS``
set ``exec()``s (``mlflow.environment_variables``); local services inherit the caller's ``MLFLOW_*`` variables, so
``kfops.base.tracking.SERVER_ENV`` sets it to false for the local and the cluster server alike (docs/security.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.platform import LocalPlatform
from kfops.base.storage import S3Credentials
from kfops.base.tracking import SERVER_ENV
from tests.conftest import started_platform_in

#: What a decorator scorer's serialized form holds: the source MLflow would exec() to rebuild it.
CUSTOM_SCORER = json.dumps({"name": "kfops_probe", "call_source": "return 1", "call_signature": "(outputs)",
                            "original_func_name": "kfops_probe", "mlflow_version": "3.17.2",
                            "serialization_version": 1})


@pytest.mark.unit
def test_every_mlflow_server_environment_turns_custom_scorers_off(tmp_path: Path) -> None:
    from infra.local.services import mlflow_spec
    from infra.local.settings import LocalSettings

    assert SERVER_ENV["MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS"] == "false"
    spec = mlflow_spec(LocalSettings(state_dir=tmp_path), tmp_path, S3Credentials("key", "secret"), "http://127.0.0.1:1")
    assert spec.env["MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS"] == "false"


@pytest.fixture(scope="module")
def shell_enabling_scorers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """A real platform started from a shell that asks for custom scorers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS", "true")
        yield from started_platform_in(tmp_path_factory.mktemp("kfops-scorers"))


@pytest.mark.integration
def test_a_real_server_refuses_to_register_a_custom_scorer(shell_enabling_scorers: LocalPlatform) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking._tracking_service.utils import _get_store

    store = _get_store()
    with pytest.raises(MlflowException) as refused:
        store.register_scorer("0", "kfops_probe", CUSTOM_SCORER)
    assert "MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS" in str(refused.value)
