from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kfops.base import defaults
from kfops.base.contract import (
    MLFLOW_CONFIG_KEYS,
    MLFLOW_CONFIG_MAP,
    S3_CONFIG_KEYS,
    S3_CONFIG_MAP,
    S3_SECRET_ENV,
    S3_SECRET_NAME,
    SERVING_CONFIG_MAP,
)
from pipelines.compile import WORKFLOW_FILE, compile_workflow

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden" / WORKFLOW_FILE
STEPS = {"ingest", "clean", "store", "tune", "best-params", "train", "register-and-promote", "deploy"}


@pytest.fixture(scope="module")
def compiled() -> str:
    return compile_workflow()


def test_compiled_workflow_matches_the_golden_file(compiled: str) -> None:
    diff = "".join(difflib.unified_diff(GOLDEN.read_text().splitlines(True), compiled.splitlines(True),
                                        "golden", "compiled", n=2))
    assert not diff, ("the compiled workflow changed; review the diff, then regenerate the golden file with "
                      "`.venv/bin/kfops pipeline compile --out tests/pipelines/golden`:\n" + diff[:6000])


def test_compile_is_deterministic(compiled: str) -> None:
    assert compile_workflow() == compiled


def test_cli_writes_the_same_bytes(compiled: str, tmp_path: Path) -> None:
    subprocess.run([str(Path(sys.executable).parent / "kfops"), "pipeline", "compile", "--out", str(tmp_path)],
                   check=True, capture_output=True)
    assert (tmp_path / WORKFLOW_FILE).read_text() == compiled


def test_every_step_gets_the_s3_secret_and_both_config_maps(compiled: str) -> None:
    documents = list(yaml.safe_load_all(compiled))
    pipeline, platform = documents
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == len(STEPS)
    for name, config in executors.items():
        [secret] = config["secretAsEnv"]
        assert secret["secretName"] == S3_SECRET_NAME, name
        assert {m["envVar"]: m["secretKey"] for m in secret["keyToEnv"]} == S3_SECRET_ENV
        assert "podMetadata" not in config, "no step may depend on the PodDefault webhook"
        maps = {m["configMapName"]: {k["configMapKey"]: k["envVar"] for k in m["keyToEnv"]}
                for m in config["configMapAsEnv"]}
        assert maps[S3_CONFIG_MAP] == {key: key for key in S3_CONFIG_KEYS}, name
        assert maps[MLFLOW_CONFIG_MAP] == {key: key for key in MLFLOW_CONFIG_KEYS}, name
    tasks = pipeline["root"]["dag"]["tasks"]
    assert set(tasks) == STEPS
    [deploy_config] = [config for name, config in executors.items() if "deploy" in name]
    [config_map] = [m for m in deploy_config["configMapAsEnv"] if m["configMapName"] == SERVING_CONFIG_MAP]
    assert config_map["optional"] is True
    assert all(task["cachingOptions"] == {} for task in tasks.values()), "caching must stay off"
    images = {e["container"]["image"] for e in pipeline["deploymentSpec"]["executors"].values()}
    assert len(images) == 1
    assert not images.pop().endswith(":latest")


def test_no_credential_or_machine_path_in_the_compiled_workflow(compiled: str) -> None:
    assert not re.search(r"AKIA[0-9A-Z]{16}|KF[0-9A-Z]{18}|aws_secret_access_key\s*[:=]\s*\S", compiled,
                         re.IGNORECASE)
    assert "pip install" not in compiled, "steps must not install packages at run time"
    assert "/work/" not in compiled
    assert "/tmp/" not in compiled
    assert str(Path.home()) not in compiled


def test_defaults_are_the_cluster_target_and_the_shared_run_defaults(compiled: str) -> None:
    parameters = next(yaml.safe_load_all(compiled))["root"]["inputDefinitions"]["parameters"]
    assert parameters["target"]["defaultValue"] == "cluster"
    assert parameters["recipe"]["defaultValue"] == defaults.RECIPE
    assert parameters["max_trials"]["defaultValue"] == defaults.MAX_TRIALS
    assert parameters["parallel_trials"]["defaultValue"] == defaults.PARALLEL_TRIALS
    assert parameters["max_failed_trials"]["defaultValue"] == defaults.MAX_FAILED_TRIALS
    assert parameters["serving_protocol"]["defaultValue"] == defaults.SERVING_PROTOCOL
    assert parameters["offline"]["defaultValue"] is defaults.OFFLINE
