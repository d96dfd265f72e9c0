"""``make demo`` runs the workflow on the recipe it is given (``make demo RECIPE=iris``), the CLI's default else."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit


def _demo_run_line(repo_root: Path, *variables: str) -> str:
    # -n: print the commands without running them (nothing is installed or started).
    printed = subprocess.run(["make", "-n", "--no-print-directory", "demo", *variables], cwd=repo_root,
                             capture_output=True, text=True, check=True, timeout=60).stdout
    [line] = [line for line in printed.splitlines() if " pipeline run " in line]
    return line


def test_make_demo_runs_the_recipe_it_is_given(repo_root: Path) -> None:
    assert re.search(r"kfops pipeline run --local --recipe iris$", _demo_run_line(repo_root, "RECIPE=iris"))


def test_make_demo_without_a_recipe_leaves_the_choice_to_the_cli(repo_root: Path) -> None:
    assert _demo_run_line(repo_root).endswith("kfops pipeline run --local")
