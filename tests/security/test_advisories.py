"""The served stack against its known advisories (``advisories.toml``, analysed in ``docs/security.md``).

Each environment that serves requests is read as installed: the project's (this interpreter: ``.venv``, the project
image's pins) and the v1 wrapper's (``.venv-seldon``, run as its own interpreter). A row marked ``fixed`` fails the
suite when an installed version falls back into its affected range; a ``mitigated`` row must name the test that shows
the mitigation. ``pip check`` may report only the pins the overrides break on purpose.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLE = Path(__file__).with_name("advisories.toml")
#: The v1 wrapper's interpreter, where tests/serving/test_seldon_environment.py finds it.
SELDON_PYTHON = REPO_ROOT / ".venv-seldon" / "bin" / "python"
VERDICTS = {"fixed", "mitigated", "not-applicable", "open"}
#: What `pip check` may say: the pins the override files break on purpose (docs/security.md), nothing else.
ALLOWED_CONFLICTS = {
    "project": [re.compile(r"^mlserver 1\.7\.1 has requirement fastapi[^ ]*<0\.116\.0[^ ]*, but you have fastapi "
                           r"0\.165\.0\.$")],
    "wrapper": [re.compile(r"^seldon-core 1\.17\.1 has requirement gunicorn[^ ]*<20\.2\.0[^ ]*, but you have "
                           r"gunicorn 23\.0\.0\.$")],
}


def advisories() -> list[dict]:
    return tomllib.loads(TABLE.read_text())["advisory"]


@cache
def installed(environment: str) -> dict[str, str]:
    """Installed distributions of ``environment``, by lower-case name."""
    if environment == "project":
        from importlib.metadata import distributions

        return {dist.metadata["Name"].lower(): dist.version for dist in distributions()}
    if not SELDON_PYTHON.exists():
        pytest.skip(f"no {SELDON_PYTHON}: run `make venv`")
    script = ("import json, importlib.metadata as m; "
              "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))")
    out = subprocess.run([str(SELDON_PYTHON), "-c", script], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def affected(row: dict, installed_version: str) -> bool:
    return Version(installed_version) in SpecifierSet(row["affected"])


@pytest.mark.parametrize("row", advisories(), ids=lambda row: f"{row['package']}-{row['id']}")
def test_no_applicable_advisory_affects_what_is_installed(row: dict) -> None:
    assert row["verdict"] in VERDICTS, row["id"]
    for key in ("reason", "source", "served"):
        assert row[key].strip(), (row["id"], key)
    for environment in row["environments"]:
        found = installed(environment).get(row["package"])
        if found is None:
            continue
        if row["verdict"] == "fixed":
            assert not affected(row, found), (
                f"{row['package']} {found} in {environment} is affected by {row['id']} ({row['affected']}): "
                f"install {row['fixed']} or later ({row['reason']})")


@pytest.mark.parametrize("row", [r for r in advisories() if r["verdict"] == "mitigated"], ids=lambda row: row["id"])
def test_each_mitigation_names_a_test_that_exists(row: dict) -> None:
    path, _, name = row["test"].partition("::")
    assert f"def {name}(" in (REPO_ROOT / path).read_text(), row["test"]


@pytest.mark.parametrize("row", [r for r in advisories() if r["verdict"] in ("mitigated", "open")],
                         ids=lambda row: row["id"])
def test_rows_kept_open_or_mitigated_are_still_affected(row: dict) -> None:
    """When a pin finally moves past the range, the row becomes ``fixed`` instead of staying an excuse."""
    versions = [installed(env).get(row["package"]) for env in row["environments"]]
    assert any(v is not None and affected(row, v) for v in versions), (
        f"{row['id']}: no environment has an affected {row['package']} any more: mark it fixed")


def test_the_starlette_under_mlserver_and_mlflow_is_past_the_host_header_fix() -> None:
    assert Version(version("starlette")) >= Version("1.0.1")
    for served_by in ("mlserver", "mlflow"):
        try:
            version(served_by)
        except PackageNotFoundError:  # pragma: no cover - both are pinned
            pytest.fail(f"{served_by} is not installed in {sys.prefix}")


@pytest.mark.parametrize(("environment", "python"), [("project", Path(sys.executable)), ("wrapper", SELDON_PYTHON)])
def test_pip_check_reports_only_the_pins_overridden_on_purpose(environment: str, python: Path) -> None:
    if not python.exists():
        pytest.skip(f"no {python}: run `make venv`")
    out = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.strip() and line != "No broken requirements found."]
    unexpected = [line for line in lines if not any(p.match(line) for p in ALLOWED_CONFLICTS[environment])]
    assert not unexpected, f"pip check in {environment}: {unexpected}"
