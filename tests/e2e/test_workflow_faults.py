"""Fault injection on the local target, with real processes: services SIGKILLed at each phase of a run.

Then ``kfops local up`` (the local target's ``up``: platform, then the last deployment's runtimes) and the same run
again must succeed, and nothing is lost: every dataset object (by content hash), every registered version, and the
aliases point at versions that exist and load. While the deploy step fails, the previous champion keeps answering.
At the end, two runs at once on the same platform and registry both finish and leave the better model champion.

It runs on the session's platform after the workflow suite (``test_workflow.py``), whose served champion is the one
nothing may take away, and leaves every service running again. Local target only: the nightly kind job has no
processes to kill.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from components.summary import RunSummary
from infra.local.platform import LocalPlatform
from infra.local.target import LocalTarget
from kfops.base.errors import KfopsError
from kfops.base.events import Event
from kfops_serving.protocols import open_inference_v2, seldon_v1
from pipelines.run import RunOptions, run_local

pytestmark = pytest.mark.e2e

MODEL = "e2e-winequality"  # the workflow suite's model
OPTIONS = {"recipe": "winequality", "max_trials": 2, "parallel_trials": 2, "max_failed_trials": 1,
           "model_name": MODEL, "offline": True, "serving_protocol": "both"}
ROW = [5.6, 0.31, 0.37, 1.4, 0.074, 12.0, 96.0, 0.9954, 3.32, 0.58, 9.2]
#: (services killed, step they are killed in): each phase of a run, each service at least once. The wrapper dies
#: while a new model trains (the deploy must bring it back), MLServer in the middle of the deploy that rolls it.
FAULTS = [(("seaweedfs",), "tune"), (("mlflow", "seldon"), "train"), (("mlflow",), "register-and-promote"),
          (("mlserver",), "deploy")]


@pytest.fixture(scope="module")
def platform(target: str, local_platform: LocalPlatform) -> LocalPlatform:
    if target != "local":
        pytest.skip("fault injection kills local processes: local target only")
    return local_platform


def run(platform: LocalPlatform, run_dir: Path, on_event: Any = lambda _event: None) -> RunSummary:
    return run_local(RunOptions(**OPTIONS), env=platform.env(), run_dir=run_dir, on_event=on_event)


@pytest.fixture(scope="module")
def baseline(platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A served champion the faults must not take away: the workflow suite's, or a run's when this runs alone."""
    if set(answers(platform)) != {"v2", "v1"}:
        run(platform, tmp_path_factory.mktemp("baseline"))


def snapshot(platform: LocalPlatform) -> dict[str, Any]:
    """Every dataset object's content hash and every registered version of the model."""
    import mlflow

    from kfops.base.storage import s3_client

    client = s3_client(env=platform.env())
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="datasets"):
        for item in page.get("Contents", []):
            body = _read(client, item["Key"])
            objects[item["Key"]] = hashlib.sha256(body).hexdigest()
    versions = {v.version for v in mlflow.MlflowClient().search_model_versions(f"name='{MODEL}'")}
    return {"objects": objects, "versions": versions}


def _read(client: Any, key: str, patience: float = 30.0) -> bytes:
    """An object's bytes; a missing object fails at once.

    Once in four CI runs, a read right after SeaweedFS's crash restart got InternalError: its gateway answered before
    every volume was registered again. ``up`` now waits for that (``wait_for_volumes``, tested on its own in
    tests/infra/local/test_platform.py); as that one failure was never reproduced on demand, an InternalError is
    still retried here for up to ``patience`` seconds rather than reported as a loss."""
    import time

    from botocore.exceptions import ClientError

    deadline = time.monotonic() + patience
    while True:
        try:
            return bytes(client.get_object(Bucket="datasets", Key=key)["Body"].read())
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "InternalError" or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def answers(platform: LocalPlatform) -> dict[str, float]:
    """The served champion's prediction for one row, per protocol that answers."""
    from infra.local.serving import LocalServing

    urls = LocalServing(platform).endpoints(MODEL)
    found = {}
    for protocol, body in (("v2", open_inference_v2([ROW])), ("v1", seldon_v1([ROW]))):
        try:
            response = requests.post(urls[protocol], data=body, headers={"Content-Type": "application/json"},
                                     timeout=10)
        except (KeyError, requests.RequestException):
            continue
        if response.status_code == 200:
            payload = response.json()
            found[protocol] = payload["outputs"][0]["data"][0] if protocol == "v2" else payload["data"]["ndarray"][0]
    return found


def kill(platform: LocalPlatform, service: str) -> None:
    record = platform.records()[service]
    os.killpg(record.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(record.pid)], timeout=10) if psutil.pid_exists(record.pid) else None


@pytest.fixture(scope="module")
def before(platform: LocalPlatform, baseline: None) -> dict[str, Any]:
    """What the baseline left: nothing of it may be lost, whatever is killed afterwards."""
    return {**snapshot(platform), "answers": answers(platform)}


# One chain of runs, in the order of a run's phases: each fault's run is the run again after the previous fault and
# `up`; the last test runs it twice more, at once, with nothing killed. (A run is ~30 s here: a full run after every
# fault would double the suite's time for no extra check.)
@pytest.mark.parametrize(("services", "phase"), FAULTS, ids=[f"{'+'.join(s)}-during-{p}" for s, p in FAULTS])
def test_a_service_killed_mid_run_loses_nothing(platform: LocalPlatform, before: dict[str, Any],
                                                services: tuple[str, ...], phase: str, tmp_path: Path) -> None:
    import mlflow

    served = answers(platform)
    assert set(served) == {"v2", "v1"}, "the champion is not served after the previous fault and up"
    during: dict[str, Any] = {}

    def on_event(event: Event) -> None:
        if event.kind == "step-started" and event.step == phase and "killed" not in during:
            for service in services:
                kill(platform, service)
            during["killed"] = True
            if phase == "deploy":
                # The other runtime still serves the previous champion while this deploy fails.
                during["answers"] = answers(platform)

    failure: KfopsError | None = None
    try:
        run(platform, tmp_path / "faulty", on_event)
    except KfopsError as error:
        failure = error
    if failure is not None:
        assert failure.step, "a failure names its step"
        assert len(str(failure)) < 600, str(failure)
    assert during.get("killed"), f"the run never reached {phase}"
    if phase == "deploy":
        other = "v1" if "mlserver" in services else "v2"
        assert during["answers"].get(other) == pytest.approx(served[other])

    LocalTarget(platform.settings).up()
    after = snapshot(platform)
    assert before["objects"].items() <= after["objects"].items(), "a dataset object was lost or changed"
    assert before["versions"] <= after["versions"], "a registered version was lost"
    client = mlflow.MlflowClient()
    for alias in ("champion", "challenger"):
        version = client.get_model_version_by_alias(MODEL, alias)
        assert version.version in after["versions"], f"{alias} points at a version that does not exist"
        mlflow.pyfunc.load_model(f"models:/{MODEL}@{alias}")


def test_after_the_faults_two_runs_at_once_both_finish_and_the_better_model_is_champion(
        platform: LocalPlatform, before: dict[str, Any]) -> None:
    """The same run again after the faults, twice at once on one platform and one registry (``kfops pipeline run
    --local`` as a user starts it): both finish, nothing of the baseline is lost, no alias update is lost, and
    ``champion`` ends on the best model by held-out RMSE (the metric both decisions used) and is what is served."""
    import subprocess
    import sys

    import mlflow

    client = mlflow.MlflowClient()
    existing = snapshot(platform)["versions"]
    previous = client.get_model_version_by_alias(MODEL, "champion").version
    command = [str(Path(sys.executable).parent / "kfops"), "pipeline", "run", "--local", "--state-dir",
               str(platform.state_dir), "--trials", "2", "--parallel", "2", "--model-name", MODEL]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=420)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-3000:]
    new = snapshot(platform)["versions"] - existing
    assert len(new) == 2, new
    heldout = {version: float(client.get_model_version(MODEL, version).tags["kfops.heldout_rmse"])
               for version in (*new, previous)}
    champion = client.get_model_version_by_alias(MODEL, "champion").version
    assert heldout[champion] == min(heldout.values()), (champion, heldout)
    after = snapshot(platform)
    assert before["objects"].items() <= after["objects"].items()
    assert before["versions"] <= after["versions"]
    served = answers(platform)
    assert set(served) == {"v2", "v1"}
    assert served["v2"] == pytest.approx(served["v1"])
    from infra.local.serving import LocalServing

    assert LocalServing(platform).deployed()["model"]["version"] == champion
