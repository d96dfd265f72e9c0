"""Importing MLServer the way kfops does prints nothing but what matters."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # starts an interpreter that imports MLServer (seconds)


def test_mlserver_imports_without_the_starlette_deprecation_warning() -> None:
    pytest.importorskip("mlserver")
    code = ("from kfops_serving.quiet import mlserver_import_warnings_silenced\n"
            "with mlserver_import_warnings_silenced():\n"
            "    import mlserver.cli.main, mlserver.settings, kfops_serving.mlserver_runtime\n")
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120,
                          check=True)
    assert "deprecated" not in done.stderr, done.stderr
