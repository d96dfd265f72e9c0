"""The seldon-core wrapper's environment, as the deploy step's compatibility check sees it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from kfops_serving.compat import RuntimeEnvironment

pytestmark = pytest.mark.unit


def test_the_seldon_environment_is_queried_for_real(repo_root: Path) -> None:
    runtime = RuntimeEnvironment.of_interpreter("seldon", repo_root / ".venv-seldon" / "bin" / "python")
    pins = RuntimeEnvironment.from_pins("pins", "3.12", tomllib.loads(
        (repo_root / "serving" / "pyproject.toml").read_text())["project"]["optional-dependencies"]["seldon"])
    assert runtime.python == "3.12"
    for package in ("scikit-learn", "mlflow-skinny", "numpy", "pandas", "skops"):
        assert runtime.packages[package] == pins.packages[package], package


def test_the_wrapper_is_the_apache_licensed_seldon_core_by_default(repo_root: Path) -> None:
    import subprocess

    python = repo_root / ".venv-seldon" / "bin" / "python"
    licence = subprocess.run([str(python), "-c", "from importlib.metadata import metadata; "
                              "m = metadata('seldon-core'); print(m['Version'], '|', m['License'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert licence == "1.17.1 | Apache 2.0"
