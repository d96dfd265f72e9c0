"""The nightly kind workflow cannot run here; check that it is a valid GitHub workflow that runs the right steps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kfops.base.paths import REPO_ROOT

pytestmark = pytest.mark.unit

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "nightly-kind.yaml"


def test_workflow_matches_the_github_schema() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_stands_up_tests_and_always_tears_down() -> None:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["e2e"]["steps"]
    runs = [step.get("run", "") for step in steps]
    order = ["kind create cluster", "kind load docker-image", "pulumi up --stack kind",
             '-m "e2e or kind" --target kind', "pulumi destroy --stack kind"]
    positions = [next(index for index, run in enumerate(runs) if text in run) for text in order]
    assert positions == sorted(positions)
    for step in steps:
        if "pulumi destroy" in step.get("run", "") or "kind delete cluster" in step.get("run", ""):
            assert step.get("if") == "always()"
