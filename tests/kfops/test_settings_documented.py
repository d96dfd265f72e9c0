"""Every ``KFOPS_`` variable the product reads is a field of one settings class, documented where it is defined."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from infra.cluster.runner import ClusterRunSettings
from infra.local.processes import SERVICE_NAME_ENV, SERVICE_STATE_DIR_ENV
from infra.local.settings import LocalSettings
from infra.local.step_client import SERVER_ENV as STEP_SERVER_ENV
from kfops.base.events import EVENTS_ENV
from kfops.base.failpoints import FAILPOINTS_ENV
from kfops.base.paths import REPO_ROOT
from kfops.cli.app import CliSettings
from loadtest.payloads import LoadtestSettings

pytestmark = pytest.mark.unit

#: The settings classes; docs/local.md ("Settings") names each.
SETTINGS: tuple[type[BaseSettings], ...] = (LocalSettings, ClusterRunSettings, LoadtestSettings, CliSettings)
#: Variables kfops sets for its own processes, never for users to set: each has its one definition in the code.
INTERNAL = {EVENTS_ENV: "the local runner tells the steps where to write their events (kfops/base/events.py)",
            "KFOPS_BUCKETS": "the bucket Job's list of buckets (infra/cluster/object_store.py)",
            STEP_SERVER_ENV: "the local runner tells each step's client where its warm step server listens "
                             "(infra/local/step_client.py)",

            FAILPOINTS_ENV: "fault tests name the points where a process stops itself (kfops/base/failpoints.py)",
            SERVICE_STATE_DIR_ENV: "marks a local service's processes with their state dir (infra/local/processes.py)",
            SERVICE_NAME_ENV: "marks a local service's processes with the service's name (infra/local/processes.py)"}
PRODUCT = ("kfops", "infra", "pipelines", "components", "trainer", "loadtest", "serving/src")
_VARIABLE = re.compile(r"\bKFOPS_[A-Z][A-Z0-9_]*")


def variables(settings: type[BaseSettings]) -> dict[str, str]:
    prefix = settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper(): field.description or "" for name, field in settings.model_fields.items()}


def used_in_product() -> set[str]:
    found: set[str] = set()
    for folder in PRODUCT:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            found |= set(_VARIABLE.findall(path.read_text()))
    return found


def test_every_variable_the_product_names_is_a_documented_setting() -> None:
    documented: dict[str, list[str]] = {}
    for settings in SETTINGS:
        for name, description in variables(settings).items():
            assert description, f"{settings.__name__}: {name} has no docstring"
            documented.setdefault(name, []).append(settings.__name__)
    assert {name: owners for name, owners in documented.items() if len(owners) > 1} == {}, "documented twice"
    assert used_in_product() - set(documented) - set(INTERNAL) == set()


def test_the_docs_point_at_every_settings_class() -> None:
    docs = (REPO_ROOT / "docs" / "local.md").read_text()
    for settings in SETTINGS:
        assert settings.__name__ in docs, settings.__name__


def test_the_variables_are_really_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KFOPS_LOADTEST_BATCH", "7")
    monkeypatch.setenv("KFOPS_KFP_HOST", "http://kfp.example:8888")
    monkeypatch.setenv("KFOPS_STATE_DIR", str(tmp_path))
    assert LoadtestSettings().loadtest_batch == 7
    assert ClusterRunSettings().kfp_host == "http://kfp.example:8888"
    assert LocalSettings().state_dir == tmp_path
