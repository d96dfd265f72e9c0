"""The serving package's own tests under the seldon-core wrapper's Python (3.12, ``.venv-seldon``).

``serving/tests`` also run in this session under Python 3.11 with MLServer; the seldon-core ones need seldon-core,
which only the wrapper's venv has. Run from here, they share the two cores with the rest of ``make test`` (and fill
the time its other workers spend waiting for services) instead of running alone before it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_serving_package_passes_its_tests_under_the_wrappers_python(repo_root: Path) -> None:
    pytest_bin = repo_root / ".venv-seldon" / "bin" / "pytest"
    assert pytest_bin.exists(), f"{pytest_bin} is missing: `make venv` creates the wrapper's venv"
    result = subprocess.run([str(pytest_bin), "--rootdir", "serving", "serving/tests", "-q", "-rs", "-p",
                             "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
                            cwd=repo_root, capture_output=True, text=True, timeout=540, check=False)
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    assert result.returncode == 0, f"{summary}\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert " passed" in summary, summary
    # Only the MLServer tests may skip there (they run in this session, under Python 3.11).
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("'mlserver'" in line for line in skipped), skipped
