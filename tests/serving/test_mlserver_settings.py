"""How MLServer is configured on both targets, checked against MLServer's and uvicorn's own code at the pinned
versions (each setting is read back by MLServer's ``Settings``, as the server reads it at start-up)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.deploy import ServingSettings, seldon_deployment
from infra.local.services import mlserver_spec
from infra.local.settings import LocalSettings

pytestmark = pytest.mark.unit


def cluster_env() -> dict[str, str]:
    manifest = seldon_deployment("v2", model_name="wine", version="3", model_uri="s3://mlflow/m", namespace="ml",
                                 settings=ServingSettings())
    container = manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def local_settings(tmp_path: Path) -> dict[str, object]:
    mlserver_spec(LocalSettings(state_dir=tmp_path / "state"), tmp_path, "wine")
    return json.loads((tmp_path / "settings.json").read_text())


def test_uvicorn_parses_http_with_httptools_not_the_pure_python_fallback() -> None:
    # MLServer leaves uvicorn's `http` at "auto": httptools when importable, else h11 (15% of a request's time).
    from uvicorn.config import Config

    config = Config(app=lambda scope, receive, send: None, http="auto", log_config=None)
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"


def test_gzip_is_off_on_both_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlserver.settings import Settings

    assert Settings(**{k: v for k, v in local_settings(tmp_path).items() if k != "model_repository_root"}
                    ).gzip_enabled is False
    for name, value in cluster_env().items():
        monkeypatch.setenv(name, value)
    assert Settings().gzip_enabled is False  # the container's env, read as MLServer reads it


def test_both_targets_run_inference_in_the_server_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlserver.settings import Settings

    assert local_settings(tmp_path)["parallel_workers"] == 0
    for name, value in cluster_env().items():
        monkeypatch.setenv(name, value)
    assert Settings().parallel_workers == 0
