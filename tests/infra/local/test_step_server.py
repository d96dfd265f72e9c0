"""The warm step server: a step forked from it runs as the subprocess it replaces would, and no longer than its run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from infra.local import step_client
from infra.local.runner import warm_steps
from kfops.base.paths import REPO_ROOT

pytestmark = pytest.mark.integration

CLIENT = [sys.executable, "-I", "-S", str(Path(step_client.__file__))]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    # One server for the module's steps (each one a connection of its own): its imports take seconds.
    with warm_steps(tmp_path_factory.mktemp("steps")) as env:
        socket = Path(env[step_client.SERVER_ENV])
        deadline = time.monotonic() + 120
        while not socket.exists():  # the server binds its socket once it has finished its imports
            assert time.monotonic() < deadline, "the step server never got ready"
            time.sleep(0.1)
        yield env


def run_step(env: dict[str, str], request: dict[str, object], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLIENT, "-m", "tests.infra.local.step_probe", "--flag", "x y"],
                          input=json.dumps(request) + "\n", capture_output=True, text=True, cwd=cwd, timeout=60,
                          env={**os.environ, **env, "STEP_PROBE": "seen", "PYTHONPATH": str(REPO_ROOT)})


def test_a_step_is_forked_from_the_server_with_its_own_arguments_streams_env_directory_and_exit_code(
        server: dict[str, str], tmp_path: Path) -> None:
    done = run_step(server, {"code": 3}, tmp_path)
    assert done.returncode == 3
    report = json.loads(done.stdout)
    assert report["argv"] == ["--flag", "x y"]
    assert report["cwd"] == str(tmp_path)
    assert report["env"] == "seen"
    assert report["stdin"] == {"code": 3}
    assert done.stderr.strip() == "to stderr"
    # Forked by the server, not started by the client: its parent is the step server.
    assert psutil.Process(report["ppid"]).cmdline()[1:3] == ["-m", "infra.local.step_server"]


def test_without_a_server_the_client_runs_the_step_itself(tmp_path: Path) -> None:
    done = run_step({step_client.SERVER_ENV: str(tmp_path / "absent.sock")}, {"code": 0}, tmp_path)
    assert done.returncode == 0
    assert json.loads(done.stdout)["env"] == "seen"


def test_a_step_whose_run_is_stopped_is_stopped_too(server: dict[str, str], tmp_path: Path) -> None:
    client = subprocess.Popen([*CLIENT, "-m", "tests.infra.local.step_probe"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={**os.environ, **server, "PYTHONPATH": str(REPO_ROOT)})
    assert client.stdin is not None
    assert client.stdout is not None
    client.stdin.write(json.dumps({"sleep": 60}) + "\n")
    client.stdin.flush()
    step = psutil.Process(json.loads(client.stdout.readline())["pid"])
    client.kill()
    client.wait()
    psutil.wait_procs([step], timeout=10)
    assert not step.is_running() or step.status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("work", ["model", "tune"])
def test_a_step_finds_what_it_imports_already_imported(server: dict[str, str], work: str, tmp_path: Path) -> None:
    # What steps paid before, each: skops' import (it walks every loaded module) and MLflow's map of installed
    # packages (it reads every distribution's file list) in train, register-and-promote and deploy, about 1 s each;
    # hyperopt and the local Katib executor in tune, about 1 s.
    done = subprocess.run([*CLIENT, "-m", "tests.infra.local.model_probe", work, str(tmp_path / "model")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, **server, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["imported"] == [], "imported by the step itself, not once by the server"
    assert report["requirements_map_ready"], "MLflow's package map is built once, in the server"
