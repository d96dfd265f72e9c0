"""Checks that need the nightly job's kind cluster (``make e2e-kind``); deselected by ``make test``.

They run after the e2e suite (which runs the workflow there), against the same session's cluster.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT
from tests.kind.harness import KindEnvironment
from tests.kind.names import NAMESPACE

pytestmark = pytest.mark.kind


def kubectl(environment: KindEnvironment, *args: str) -> str:
    return subprocess.run([environment.kubectl, *args], env={"KUBECONFIG": str(environment.kubeconfig)},
                          capture_output=True, text=True, check=True).stdout


def test_workflow_pods_run_as_the_projects_service_account(kind_env: KindEnvironment) -> None:
    pods = json.loads(kubectl(kind_env, "-n", NAMESPACE, "get", "pods", "-l", "workflows.argoproj.io/workflow",
                              "-o", "json"))["items"]
    assert pods, "the e2e suite ran no workflow on this cluster"
    assert {pod["spec"].get("serviceAccountName") for pod in pods} == {PIPELINE_SERVICE_ACCOUNT}


def test_katib_trials_ran_in_the_namespace_with_their_env_from_the_stack(kind_env: KindEnvironment) -> None:
    trials = json.loads(kubectl(kind_env, "-n", NAMESPACE, "get", "trials", "-o", "json"))["items"]
    assert trials
    assert all(any(c["type"] == "Succeeded" and c["status"] == "True" for c in t["status"]["conditions"])
               for t in trials)


def test_the_doctor_finds_nothing_wrong_after_up(kind_env: KindEnvironment) -> None:
    report = json.loads((Path(kind_env.logs) / "doctor.json").read_text())
    failed = [check for check in report["checks"] if check["status"] == "fail"]
    assert not failed, failed
