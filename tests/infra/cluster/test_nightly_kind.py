"""The nightly kind workflow cannot run here: check that it is a valid GitHub workflow (tests/kind: what it runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kfops.base.paths import REPO_ROOT

pytestmark = pytest.mark.unit

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "nightly-kind.yaml"


def test_workflow_matches_the_github_schema() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
