"""Fixtures shared by every test: isolated local-platform settings and a running platform."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.local.platform import LocalPlatform
from infra.local.processes import free_port
from infra.local.settings import LocalSettings

#: Environment prefixes a developer's shell may carry that would point tests at the wrong services.
_LEAKY_PREFIXES = ("KFOPS_", "AWS_", "MLFLOW_")


def new_settings(state_dir: Path, **overrides: object) -> LocalSettings:
    """Settings with free ports in ``state_dir``, so tests never touch a user's platform or each other's."""
    values: dict[str, object] = {
        "state_dir": state_dir,
        "s3_port": free_port(),
        "mlflow_port": free_port(),
        "mlserver_port": free_port(),
        "seldon_port": free_port(),
        "stop_timeout": 3.0,
    }
    values.update(overrides)
    return LocalSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def make_settings(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., LocalSettings]:
    """Factory of isolated settings, one fresh temp state dir per call."""
    return lambda **overrides: new_settings(tmp_path_factory.mktemp("kfops-state"), **overrides)


@pytest.fixture(scope="session", autouse=True)
def _isolated_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(_LEAKY_PREFIXES):
                patch.delenv(name)
        yield


def _forget_cached_credentials() -> None:
    # boto3's default session resolves credentials from the environment once and keeps them; MLflow's S3 client
    # uses that session. Tests switch between platforms with different keys inside one process, users never do.
    import boto3

    boto3.DEFAULT_SESSION = None


def started_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """Start a platform in its own state dir, export its env to this process, stop it afterwards."""
    platform = LocalPlatform(new_settings(tmp_path_factory.mktemp("kfops-platform")))
    try:
        platform.up()
        with pytest.MonkeyPatch.context() as patch:
            for name, value in platform.env().items():
                patch.setenv(name, value)
            _forget_cached_credentials()
            yield platform
        _forget_cached_credentials()
    finally:
        platform.down()


@pytest.fixture(scope="session")
def local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """One real platform (SeaweedFS + MLflow) shared by the tests that only use it, never stop or restart it."""
    yield from started_platform(tmp_path_factory)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout under test."""
    return Path(__file__).resolve().parent.parent
