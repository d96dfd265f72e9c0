"""Fault injection on the local target, with real processes: what each fault must do, as a table.

Each row of :data:`FAULTS` is a fault, the phase it strikes in and its one expected outcome: the step succeeds, or
the run fails with one line matching a pattern (its cause first, and a fix that works). Faults strike while the
step is stopped at a failpoint (right after it started, or at a named point inside it), never after a wait, so each
row does the same thing on every machine. After a fault the fix is applied (``kfops local up`` mostly) and nothing
may be lost: every dataset object (by content hash), every registered version, aliases that point at versions that
exist and load, and the champion served on both protocols.

The suite runs on a platform of its own, on a size-limited tmpfs where the machine allows mounting one (so the disk
really fills), after one real run of the whole workflow. Each row then runs only the step it is about, from that
run's outputs, in a process of its own (:mod:`tests.e2e.steps`): a run per fault would cost half a minute each. Rows
that leave the same fault in place share one recovery. Local target only: the nightly kind job has no processes to
kill.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from infra.local.platform import LocalPlatform
from infra.local.processes import find_strays
from infra.local.serving import LocalServing
from infra.local.target import LocalTarget
from kfops.base.errors import KfopsError, in_step
from kfops_serving.protocols import open_inference_v2, seldon_v1
from pipelines.run import RunOptions, run_local
from tests.conftest import fill, started_platform_in, tmpfs
from tests.e2e.steps import StepRun, StepRunner

pytestmark = pytest.mark.e2e

MODEL = "faults-winequality"
OPTIONS = {"recipe": "winequality", "max_trials": 2, "parallel_trials": 2, "max_failed_trials": 1,
           "model_name": MODEL, "offline": True, "serving_protocol": "both"}
ROW = [5.6, 0.31, 0.37, 1.4, 0.074, 12.0, 96.0, 0.9954, 3.32, 0.58, 9.2]
#: Heavily regularised: a second version whose predictions clearly differ from the tuned one's.
WORSE = {"alpha": "0.9", "l1_ratio": "1.0"}

STOPPED = r"the local platform was stopped during the run \(`kfops local down`\): SeaweedFS and MLflow are not running"
S3_GONE = r"the local platform's SeaweedFS S3 gateway stopped during the run \(crashed or killed\)"
MLFLOW_GONE = (r"the local platform's MLflow tracking server stopped during the run \(crashed or killed\); the step's "
               r"own error: MLflow tracking server http://\S+ is unreachable \(connection refused\)")
FULL = r"the disk of the state dir is full: \S+ \(tmpfs\) has 0 B free of 1\.0 GiB; a run needs 512 MiB free"


@dataclass(frozen=True)
class Fault:
    """One row: ``fault`` strikes in ``phase``; ``expected`` is None (it succeeds) or the one-line error's pattern.

    ``phase`` is a step (the fault strikes right after it started), ``step@failpoint`` (the step process is killed
    there: a run killed at that moment), or a command.
    """

    fault: str
    phase: str
    expected: str | None

    @property
    def id(self) -> str:
        """``seaweedfs-killed-in-tune``, ``run-killed-in-deploy-at-deploy-fetched``: usable with ``-k``."""
        return re.sub(r"[^\w.]+", "-", f"{self.fault} in {self.phase.replace('@', ' at ')}")


FAULTS = [
    # A platform service killed (SIGKILL, its whole process group) as a step starts: every step that uses it.
    Fault("seaweedfs killed", "store", rf"^\[store\] {S3_GONE}; the step's own error: could not store the dataset"),
    Fault("seaweedfs killed", "tune", rf"^\[tune\] {S3_GONE}; the step's own error: tuning experiment"),
    Fault("seaweedfs killed", "train", rf"^\[train\] {S3_GONE}; the step's own error: cannot read s3://"),
    Fault("seaweedfs killed", "register-and-promote",
          rf"^\[register-and-promote\] {S3_GONE}; the step's own error: cannot read s3://"),
    Fault("seaweedfs killed", "deploy", None),  # the champion's files are downloaded already: serving needs no S3
    Fault("mlflow killed", "tune", None),  # trials report to Katib's collector, not to MLflow
    Fault("mlflow killed", "train", rf"^\[train\] {MLFLOW_GONE}"),
    Fault("mlflow killed", "register-and-promote", rf"^\[register-and-promote\] {MLFLOW_GONE}"),
    Fault("mlflow killed", "deploy", rf"^\[deploy\] {MLFLOW_GONE}"),
    # The serving runtimes matter to the deploy step only, which starts them again.
    Fault("mlserver killed", "deploy", None),
    Fault("seldon killed", "deploy", None),
    # `kfops local down` during a run: the run says so, not that the data or the search space were wrong.
    Fault("platform stopped", "ingest", None),  # the bundled dataset: nothing of the platform needed
    Fault("platform stopped", "tune", rf"^\[tune\] {STOPPED}; the step's own error: tuning experiment"),
    Fault("platform stopped", "train", rf"^\[train\] {STOPPED}"),
    # Its fix restarts the platform anyway: it comes right after the platform was stopped, which it recovers from.
    Fault("state.json unreadable", "up", r"^\[local up\] process records \S+state.json are unreadable .*Fix: run "
                                         r"`kfops local down`"),
    # The run itself killed (SIGKILL) at a point of a step; `kfops local up` then serves the champion on both
    # protocols and nothing runs unrecorded. None: the next run (or `up`) succeeds.
    Fault("run killed", "register-and-promote@register-and-promote:leased", None),
    Fault("run killed", "deploy@deploy:fetched", None),
    Fault("run killed", "deploy@spawned:mlserver", None),
    Fault("run killed", "deploy@starting:mlserver", None),
    Fault("run killed", "deploy@deploy:pointer-written", None),
    Fault("run killed", "deploy@deploy:rolled", None),
    # Damage to the state dir while the platform runs: one line naming the file, a fix that works, and doctor
    # finding it first.
    Fault("credentials.json truncated", "up", r"^\[local up\] credentials file \S+credentials.json is corrupted "
                                              r"\(JSONDecodeError: .*\)\. Fix: delete \S+ and run `kfops local up`"),
    Fault("settings.json unreadable", "up", r"^\[local up\] the settings of the last `kfops local up` \(\S+\) are "
                                            r"unreadable .*Fix: delete \S+settings.json and run `kfops local up`"),
    Fault("deployed.json unreadable", "status", r"^\[local status\] the serving record \S+deployed.json is "
                                                r"unreadable .*Fix: delete \S+; the next `kfops pipeline run"),
    Fault("mlflow.db read-only", "train", r"^\[train\] MLflow cannot write its database \S+mlflow.db: attempt to write "
                                          r"a readonly database; the step's own error: MLflow tracking server \S+ "
                                          r"cannot write its backend store"),
    Fault("logs dir deleted", "up", None),
    # The disk filled as a step starts, or before a run starts.
    Fault("disk full", "train", rf"^\[train\] {FULL}; the step's own error: "),
    Fault("disk full", "pipeline run", r"^\[pipeline run\] not enough disk space for a run: \S+ \(tmpfs\) has 0 B "
                                       r"free .* a run needs 512 MiB free"),
    # Last: nothing of the platform's state is left afterwards.
    Fault("state dir deleted", "down", None),
]


# --- the platform, the run every row starts from, and what must never be lost ----------------------------------


@dataclass
class Bench:
    """The fault platform, the setup run's outputs, and what the faults must not take away."""

    platform: LocalPlatform
    runner: StepRunner
    inputs: dict[str, Any]
    disk: Path | None
    versions: dict[str, str]
    before: dict[str, Any] = field(default_factory=dict)
    broken: str | None = None
    expected: dict[str, float] = field(default_factory=dict)

    env: dict[str, str] = field(default_factory=dict)

    def arguments(self, step: str) -> dict[str, Any]:
        """A step's arguments: the setup run's outputs, new artifacts for its own outputs."""
        new, given = self.runner.artifact, self.inputs
        return {
            "ingest": {"recipe": "winequality", "dataset_url": "", "offline": True, "raw": new("raw")},
            "store": {"recipe": "winequality", "cleaned": given["cleaned"], "bucket": "datasets"},
            "tune": {"recipe": "winequality", "dataset_uri": given["dataset_uri"], "target": "local",
                     "max_trials": 2, "parallel_trials": 2, "max_failed_trials": 1, "algorithm": "",
                     "timeout_minutes": 10, "run_id": "faults", "experiment": new("experiment"),
                     "metrics": "metrics", "report": new("report")},
            "train": {"recipe": "winequality", "dataset_uri": given["dataset_uri"], "params": given["params"],
                      "model_name": MODEL, "mlflow_experiment": "faults", "run_id": "faults", "model": new("model")},
            "register-and-promote": {"recipe": "winequality", "model": given["model"],
                                     "dataset_uri": given["dataset_uri"], "metrics": "metrics",
                                     "comparison": new("comparison")},
            "deploy": {"champion_uri": f"models:/{MODEL}@champion", "target": "local", "protocol": "both",
                       "manifests": new("manifests")},
        }[step]

    def kill(self, service: str) -> None:
        """SIGKILL a service's whole process group (a no-op if it is not running)."""
        record = self.platform.records().get(service)
        if record is None:
            return
        members = [proc for proc in psutil.process_iter() if _pgid(proc.pid) == record.pid]
        for proc in members:
            proc.kill()
        psutil.wait_procs(members, timeout=30)

    def recover(self) -> None:
        """`kfops local up`, then check that nothing was lost and the champion is served on both protocols."""
        LocalTarget(self.platform.settings).up()
        self.broken = None
        self.env = self.platform.env()  # the credentials may be new
        os.environ.update(self.env)
        after = snapshot(self.platform)
        assert self.before["objects"].items() <= after["objects"].items(), "a dataset object was lost or changed"
        assert self.before["versions"] <= after["versions"], "a registered version was lost"
        self.assert_champion_served()

    def assert_champion_served(self) -> None:
        import mlflow

        client = mlflow.MlflowClient()
        for alias in ("champion", "challenger"):
            version = client.get_model_version_by_alias(MODEL, alias).version
            assert version in snapshot(self.platform)["versions"], f"{alias} points at a version that is gone"
        champion = client.get_model_version_by_alias(MODEL, "champion").version
        served = answers(self.platform)
        assert served == {"v2": pytest.approx(self.expected[champion]), "v1": pytest.approx(self.expected[champion])}
        serving = LocalServing(self.platform)
        assert serving.deployed()["model"]["version"] == champion  # type: ignore[index]
        assert serving.interrupted() is None

    def switch_champion(self) -> str:
        """Move alias ``champion`` to the other version (a deploy then has something new to roll out)."""
        import mlflow

        client = mlflow.MlflowClient()
        current = client.get_model_version_by_alias(MODEL, "champion").version
        other = next(version for version in self.versions.values() if version != current)
        client.set_registered_model_alias(MODEL, "champion", other)
        return other


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def snapshot(platform: LocalPlatform) -> dict[str, Any]:
    """Every dataset object's content hash and every registered version of the model.

    One attempt per read (no retries): once ``up`` returned, everything stored before must be readable at once.
    """
    import mlflow

    from kfops.base.storage import s3_client

    client = s3_client(env=platform.env(), attempts=1)
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="datasets"):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket="datasets", Key=item["Key"])["Body"].read()
            objects[item["Key"]] = hashlib.sha256(body).hexdigest()
    versions = {v.version for v in mlflow.MlflowClient().search_model_versions(f"name='{MODEL}'")}
    return {"objects": objects, "versions": versions}


def answers(platform: LocalPlatform) -> dict[str, float]:
    """The served champion's prediction for one row, per protocol that answers."""
    urls = LocalServing(platform).endpoints(MODEL)
    found = {}
    for protocol, body in (("v2", open_inference_v2([ROW])), ("v1", seldon_v1([ROW]))):
        try:
            response = requests.post(urls[protocol], data=body, headers={"Content-Type": "application/json"},
                                     timeout=30)
        except (KeyError, requests.RequestException):
            continue
        if response.status_code == 200:
            payload = response.json()
            found[protocol] = payload["outputs"][0]["data"][0] if protocol == "v2" else payload["data"]["ndarray"][0]
    return found


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """A 1 GiB tmpfs for the platform (RAM is used only for what is written); ``None`` where none can be mounted."""
    try:
        with tmpfs(tmp_path_factory.mktemp("fault-disk"), "1g") as mounted:
            yield mounted
    except pytest.skip.Exception:
        yield None


@pytest.fixture(scope="module")
def bench(target: str, disk: Path | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    if target != "local":
        pytest.skip("fault injection kills local processes: local target only")
    platforms = started_platform_in((disk or tmp_path_factory.mktemp("fault-state")) / "state", seldon_workers=2)
    platform = next(platforms)
    try:
        summary = run_local(RunOptions(**OPTIONS), env=platform.env(), run_dir=platform.state_dir / "runs" / "setup")
        artifacts = next((platform.state_dir / "runs" / "setup" / "artifacts").iterdir())

        def given(task: str, output: str) -> dict[str, Any]:
            return {"artifact": {"path": str(artifacts / task / output), "metadata": {}}}

        from kfops.base.recipes import WINE_QUALITY
        from trainer.train import train_and_register

        worse = train_and_register(WINE_QUALITY, summary.training.dataset_uri, WORSE, model_name=MODEL,
                                   experiment="faults")
        runner = StepRunner(platform.state_dir / "runs" / "faults")
        inputs = {"cleaned": given("clean", "cleaned"), "model": given("train", "model"),
                  "dataset_uri": summary.training.dataset_uri, "params": summary.tuning.best_params}
        bench = Bench(platform, runner, inputs, disk, {"tuned": summary.training.version, "worse": worse.version})
        bench.env = platform.env()
        bench.expected = {version: _predict(platform, version) for version in bench.versions.values()}
        bench.before = snapshot(platform)
        bench.assert_champion_served()
        yield bench
    finally:
        next(platforms, None)


def _predict(platform: LocalPlatform, version: str) -> float:
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(LocalServing(platform).fetch(MODEL, version).path)
    columns = model.metadata.get_input_schema().input_names()
    return float(model.predict(pd.DataFrame([ROW], columns=columns))[0])


# --- the rows ---------------------------------------------------------------------------------------------------


def assert_outcome(error: KfopsError | str | None, expected: str | None, log: str = "") -> None:
    """``error`` (an error, or a command's one error line) is what the row expects."""
    if expected is None:
        assert error is None, f"expected success, got: {error}\n{log[-3000:]}"
        return
    assert error is not None, f"expected a failure matching {expected!r}, but it succeeded"
    message = str(error)
    assert "\n" not in message, message
    assert len(message) < 900, message
    assert re.search(expected, message), f"{message!r} does not match {expected!r}"


def step_fault(bench: Bench, row: Fault, inject: Callable[[], None]) -> StepRun:
    run, error = bench.runner.run(row.phase, bench.arguments(row.phase), bench.env, at_start=inject)
    assert_outcome(error, row.expected, run.log())
    return run


#: Faults whose row starts from another fault's state without recovering from it first (its own fix recovers).
STARTS_FROM = {"state.json unreadable": "platform stopped"}


@pytest.mark.parametrize("row", FAULTS, ids=[row.id for row in FAULTS])
def test_fault(bench: Bench, row: Fault, tmp_path: Path) -> None:
    if bench.broken not in (None, row.fault, STARTS_FROM.get(row.fault)):
        bench.recover()
    handler = HANDLERS[row.fault.split(" ", 1)[1] if row.fault.endswith(" killed") and row.fault != "run killed"
                       else row.fault]
    handler(bench, row, tmp_path)


def service_killed(bench: Bench, row: Fault, _tmp: Path) -> None:
    service = row.fault.split()[0]
    bench.broken = row.fault
    step_fault(bench, row, lambda: bench.kill(service))
    if service in ("mlserver", "seldon"):
        bench.broken = None  # the deploy step started it again
        bench.assert_champion_served()


def platform_stopped(bench: Bench, row: Fault, _tmp: Path) -> None:
    bench.broken = row.fault
    step_fault(bench, row, lambda: bench.platform.down())


def run_killed(bench: Bench, row: Fault, _tmp: Path) -> None:
    step, point = row.phase.split("@")
    if step == "deploy":
        champion = bench.switch_champion()
        if "mlserver" in point:
            bench.kill("mlserver")  # so that the deploy starts a new one
    bench.broken = row.fault
    run = bench.runner.start(step, bench.arguments(step), bench.env, failpoints=(point,))
    run.wait_for_failpoint(point)
    run.kill()
    # Whatever the step started is recorded (`down` would stop it, `up` takes it over), or, killed before it
    # could record it, exits without ever running the service.
    unrecorded = find_strays(bench.platform.state_dir, bench.platform.records())
    psutil.wait_procs([proc for stray in unrecorded for proc in stray.processes], timeout=30)
    assert find_strays(bench.platform.state_dir, bench.platform.records()) == []
    if step == "register-and-promote":
        again = step_fault(bench, Fault(row.fault, step, row.expected), lambda: None)
        assert "taking over the promotion lease" in again.log(), again.log()[-2000:]
        bench.broken = None
        return
    bench.recover()
    assert answers(bench.platform)["v2"] == pytest.approx(bench.expected[champion])


def credentials_truncated(bench: Bench, row: Fault, _tmp: Path) -> None:
    from infra.local.doctor import check_credentials

    path = bench.platform.credentials_path
    path.write_text(path.read_text()[:30])
    bench.broken = row.fault
    assert_outcome(cli_error("local", "up", state_dir=bench.platform.state_dir), row.expected)
    assert check_credentials(bench.platform).status == "fail"
    path.unlink()  # the fix: delete it, `up` generates new credentials and restarts the object store with them
    bench.recover()


def state_unreadable(bench: Bench, row: Fault, _tmp: Path) -> None:
    from infra.local.doctor import run_checks

    records = bench.platform.store.path
    records.write_text('{"services": {"seaweedfs": {"pid": ')
    bench.broken = row.fault
    assert_outcome(cli_error("local", "up", state_dir=bench.platform.state_dir), row.expected)
    assert any("state.json are unreadable" in check.message for check in run_checks(bench.platform.settings)
               if check.status == "fail")
    # The fix: `down` finds the services by their mark and resets the records; `up` starts them again.
    assert cli_error("local", "down", state_dir=bench.platform.state_dir) is None
    assert not [proc for proc in psutil.process_iter() if _marked(proc, bench.platform.state_dir)]
    bench.recover()


def settings_unreadable(bench: Bench, row: Fault, _tmp: Path) -> None:
    saved = bench.platform.state_dir / "settings.json"
    saved.write_text("{not json")
    bench.broken = row.fault
    assert_outcome(cli_error("local", "up", state_dir=bench.platform.state_dir), row.expected)
    saved.unlink()  # the fix: `up` writes it again, with the ports of the services that run
    assert cli_error("local", "up", state_dir=bench.platform.state_dir) is None
    from infra.local.platform import remembered
    from infra.local.settings import LocalSettings

    again = remembered(LocalSettings(state_dir=bench.platform.state_dir))
    assert (again.mlserver_port, again.seldon_port) == (bench.platform.settings.mlserver_port,
                                                        bench.platform.settings.seldon_port)
    bench.recover()


def deployed_unreadable(bench: Bench, row: Fault, _tmp: Path) -> None:
    serving = LocalServing(bench.platform)
    serving.deployed_file.write_text('{"model": ')
    bench.broken = row.fault
    assert_outcome(cli_error("local", "status", state_dir=bench.platform.state_dir), row.expected)
    serving.deployed_file.unlink()  # the fix: delete it; the next run's deploy step serves the champion again
    step_fault(bench, Fault(row.fault, "deploy", None), lambda: None)
    bench.recover()


def mlflow_read_only(bench: Bench, row: Fault, _tmp: Path) -> None:
    from infra.local.doctor import check_mlflow_store
    from infra.local.services import mlflow_database

    database = mlflow_database(bench.platform.state_dir)
    bench.broken = row.fault
    with read_only(database):
        step_fault(bench, row, lambda: None)
        check = check_mlflow_store(bench.platform)
        assert check.status == "fail"
        assert "attempt to write a readonly database" in check.message
        # The fix: make it writable (here: take the read-only mount away), then `up` restarts MLflow.
    bench.recover()
    step_fault(bench, Fault(row.fault, "train", None), lambda: None)


def logs_deleted(bench: Bench, row: Fault, _tmp: Path) -> None:
    import shutil

    shutil.rmtree(bench.platform.state_dir / "logs")
    assert cli_error("local", "up", state_dir=bench.platform.state_dir) is None
    assert (bench.platform.state_dir / "logs").is_dir()
    bench.assert_champion_served()


def disk_full(bench: Bench, row: Fault, _tmp: Path) -> None:
    from infra.local.doctor import check_disk

    if bench.disk is None:
        pytest.skip("no size-limited file system to fill (mounting a tmpfs needs root)")
    filler: list[Path] = []
    try:
        if row.phase == "pipeline run":
            filler.append(fill(bench.disk))
            with in_step("pipeline run"), pytest.raises(KfopsError) as raised:
                run_local(RunOptions(**OPTIONS), env=bench.env, run_dir=bench.platform.state_dir / "runs" / "x")
            assert_outcome(raised.value, row.expected)
        else:
            step_fault(bench, row, lambda: filler.append(fill(bench.disk)))  # type: ignore[arg-type]
        assert check_disk(bench.platform.state_dir).status == "fail"
    finally:
        for path in filler:
            path.unlink()
    bench.broken = row.fault  # services that could not write may need `up`


def state_dir_deleted(bench: Bench, row: Fault, _tmp: Path) -> None:
    import shutil

    from infra.local.doctor import check_services

    state_dir = bench.platform.state_dir
    ports = [port for record in bench.platform.records().values() for port in record.ports.values()]
    running = [proc for proc in psutil.process_iter() if _marked(proc, state_dir)]
    shutil.rmtree(state_dir)
    [unrecorded] = [check for check in check_services(bench.platform) if check.name == "unrecorded processes"]
    assert unrecorded.status == "fail"
    assert "kfops local down" in unrecorded.fix
    result = subprocess.run([*kfops(), "local", "down", "--state-dir", str(state_dir)], capture_output=True,
                            text=True, timeout=120, check=False, env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("was running unrecorded") == 4, result.stdout
    assert "Stopped 4 service(s)" in result.stdout, result.stdout
    psutil.wait_procs(running, timeout=30)
    assert not [proc for proc in running if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE]
    from infra.local.processes import port_is_free

    assert all(port_is_free(port) for port in ports)


HANDLERS: dict[str, Callable[[Bench, Fault, Path], None]] = {
    "killed": service_killed,
    "platform stopped": platform_stopped,
    "run killed": run_killed,
    "credentials.json truncated": credentials_truncated,
    "state.json unreadable": state_unreadable,
    "settings.json unreadable": settings_unreadable,
    "deployed.json unreadable": deployed_unreadable,
    "mlflow.db read-only": mlflow_read_only,
    "logs dir deleted": logs_deleted,
    "disk full": disk_full,
    "state dir deleted": state_dir_deleted,
}


# --- helpers ----------------------------------------------------------------------------------------------------


def kfops() -> list[str]:
    import sys

    return [str(Path(sys.executable).parent / "kfops")]


def cli_error(*args: str, state_dir: Path) -> str | None:
    """Run ``kfops ARGS --state-dir STATE_DIR``; ``None`` on success, else its one error line."""
    result = subprocess.run([*kfops(), *args, "--state-dir", str(state_dir)], capture_output=True, text=True,
                            timeout=300, check=False, env={**os.environ, "COLUMNS": "400"})
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("error: ")


def _marked(proc: psutil.Process, state_dir: Path) -> bool:
    from infra.local.processes import SERVICE_STATE_DIR_ENV

    try:
        return proc.environ().get(SERVICE_STATE_DIR_ENV) == str(state_dir)
    except (psutil.Error, OSError):
        return False


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only for its writers: a read-only bind mount over it as root (root ignores file modes),
    mode 0400 otherwise."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
            yield
        finally:
            subprocess.run(["umount", "--lazy", str(path)], check=True)
    else:
        path.chmod(0o400)
        try:
            yield
        finally:
            path.chmod(0o600)
