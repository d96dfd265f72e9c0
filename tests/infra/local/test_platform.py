"""The local platform against real SeaweedFS and MLflow processes."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import numpy as np
import psutil
import pytest
from botocore.exceptions import ClientError

from infra.local.platform import LocalPlatform
from infra.local.processes import port_is_free, stop_service
from infra.local.serving import LocalServing
from infra.local.settings import HOST, LocalSettings
from kfops.base.errors import KfopsError
from tests.conftest import started_platform

pytestmark = pytest.mark.integration


def s3(env: dict[str, str], secret: str | None = None) -> boto3.client:
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or env["AWS_SECRET_ACCESS_KEY"],
    )


def register_tiny_model(name: str) -> str:
    """Log and register a small real scikit-learn model; return its version."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import ElasticNet

    features = np.random.default_rng(0).random((40, 3))
    model = ElasticNet(alpha=0.01).fit(features, features.sum(axis=1))
    mlflow.set_experiment(f"test-{name}")
    with mlflow.start_run():
        mlflow.log_param("alpha", 0.01)
        mlflow.log_metric("rmse", 0.1)
        info = mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(features, model.predict(features)),
            input_example=features[:2], registered_model_name=name,
            pip_requirements=["scikit-learn", "numpy"],  # skip the slow requirement inference
        )
    return str(info.registered_model_version)


def test_s3_put_and_get_with_generated_credentials(local_platform: LocalPlatform) -> None:
    client = s3(local_platform.env())
    key = f"tests/{uuid.uuid4()}.txt"
    client.put_object(Bucket="datasets", Key=key, Body=b"kfops")
    assert client.get_object(Bucket="datasets", Key=key)["Body"].read() == b"kfops"


def test_expected_buckets_exist(local_platform: LocalPlatform) -> None:
    names = {bucket["Name"] for bucket in s3(local_platform.env()).list_buckets()["Buckets"]}
    assert {"mlpipeline", "mlflow", "datasets"} <= names


def test_wrong_credentials_are_rejected(local_platform: LocalPlatform) -> None:
    with pytest.raises(ClientError) as raised:
        s3(local_platform.env(), secret="x" * 40).list_buckets()
    assert raised.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied")


def test_credentials_file_is_private(local_platform: LocalPlatform) -> None:
    assert stat.S_IMODE(local_platform.credentials_path.stat().st_mode) == 0o600


def test_model_registered_aliased_and_loaded_back(local_platform: LocalPlatform) -> None:
    import mlflow

    version = register_tiny_model("tiny-regressor")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("tiny-regressor", "champion", version)
    assert client.get_model_version_by_alias("tiny-regressor", "champion").version == version
    model = mlflow.pyfunc.load_model("models:/tiny-regressor@champion")
    assert model.predict(np.ones((2, 3))).shape == (2,)
    source = client.get_model_version_download_uri("tiny-regressor", version)
    assert source.startswith("s3://mlflow/"), "artifacts must live in the object store, not on local disk"


def test_up_twice_is_a_no_op(local_platform: LocalPlatform) -> None:
    before = {name: record.pid for name, record in local_platform.records().items()}
    statuses = local_platform.up()
    assert {status.name: status.pid for status in statuses} == before
    assert all(status.ok for status in statuses)


def test_env_lines_work_in_a_shell(local_platform: LocalPlatform, repo_root: Path) -> None:
    kfops = Path(sys.executable).parent / "kfops"
    script = (
        f'eval "$({kfops} local env --state-dir {local_platform.state_dir})" && '
        f'{sys.executable} -c "import boto3; print(len(boto3.client(\'s3\').list_buckets()[\'Buckets\']))" && '
        'curl -sf "$MLFLOW_TRACKING_URI/health"'
    )
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_", "KFOPS_"))}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=clean_env, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.splitlines()[0]) >= 3
    assert result.stdout.strip().endswith("OK")


@pytest.fixture(scope="module")
def own_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """A platform these tests may stop, crash and restart without disturbing the shared one."""
    yield from started_platform(tmp_path_factory)


def group_pids(platform: LocalPlatform) -> list[int]:
    pgids = {record.pid for record in platform.records().values()}
    return [p.pid for p in psutil.process_iter() if _pgid(p.pid) in pgids]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_objects_and_models_survive_down_and_up(own_platform: LocalPlatform) -> None:
    import mlflow

    client = s3(own_platform.env())
    client.put_object(Bucket="datasets", Key="durable/object.bin", Body=b"x" * 1_000_000)
    version = register_tiny_model("durable-model")
    mlflow.MlflowClient().set_registered_model_alias("durable-model", "champion", version)
    ports = {name: record.ports for name, record in own_platform.records().items()}
    pids = group_pids(own_platform)
    assert pids

    own_platform.down()
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert all(port_is_free(port) for service in ports.values() for port in service.values())
    assert own_platform.status() == []

    own_platform.up()
    client = s3(own_platform.env())
    assert client.get_object(Bucket="datasets", Key="durable/object.bin")["Body"].read() == b"x" * 1_000_000
    mv = mlflow.MlflowClient().get_model_version_by_alias("durable-model", "champion")
    assert mv.version == version
    assert mlflow.pyfunc.load_model("models:/durable-model@champion").predict(np.ones((1, 3))).shape == (1,)


def test_down_does_not_wait_for_graceful_stops_that_achieve_nothing(
        make_settings: Callable[..., LocalSettings]) -> None:
    # SeaweedFS 4.x on SIGTERM first blocks in its filer's gRPC graceful stop (on the streams its own S3 gateway
    # holds) for about 15 s; its volumes are closed only after that. `down` gave it the whole grace period and then
    # killed it: with the default of 5 s, every `down` (and each test's platform) waited for nothing.
    # The seldon-core wrapper's graceful stop (3.3 s) gained nothing either; and a stopped service's processes whose
    # parent went with them are zombies until the container's init collects them (about 2 s here): stopped already.
    platform = LocalPlatform(make_settings(stop_timeout=60.0, seldon_workers=1, prestart_serving=True))
    platform.up(also=LocalServing(platform).idle_runtime_specs)
    took = {}
    try:
        records = platform.records()
        assert set(records) == {"seaweedfs", "mlflow", "mlserver", "seldon"}
        for name in ("seaweedfs", "mlflow", "mlserver", "seldon"):
            began = time.monotonic()
            stop_service(records[name], platform.settings.stop_timeout)
            took[name] = round(time.monotonic() - began, 1)
    finally:
        platform.down()
    assert all(seconds < 2.5 for seconds in took.values()), f"stops took {took} s with a 60 s grace period"


def test_status_detects_a_crashed_service_and_up_restarts_it(own_platform: LocalPlatform) -> None:
    victim = own_platform.records()["mlflow"]
    os.killpg(victim.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(victim.pid)], timeout=10)
    states = {status.name: status.state for status in own_platform.status()}
    assert states == {"seaweedfs": "running", "mlflow": "crashed"}

    kfops = Path(sys.executable).parent / "kfops"
    result = subprocess.run([str(kfops), "local", "status", "--state-dir", str(own_platform.state_dir)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "crashed" in result.stdout + result.stderr

    own_platform.up()
    assert all(status.ok for status in own_platform.status())
    assert own_platform.records()["mlflow"].pid != victim.pid


def test_after_a_crash_up_returns_only_once_every_stored_object_can_be_read(own_platform: LocalPlatform) -> None:
    """SeaweedFS's gateway answers its health check before the volumes are registered again with its master."""
    from botocore.config import Config

    from infra.local.services import seaweedfs_data_dir, volumes_on_disk, volumes_served

    env = own_platform.env()
    client = s3(env)
    for index in range(40):  # several volumes in two collections
        client.put_object(Bucket="datasets" if index % 2 else "mlflow", Key=f"crash/{index}", Body=b"%d" % index)
    victim = own_platform.records()["seaweedfs"]
    os.killpg(victim.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(victim.pid)], timeout=10)

    reports: list[str] = []
    own_platform.up(reports.append)
    record = own_platform.records()["seaweedfs"]
    on_disk = volumes_on_disk(seaweedfs_data_dir(own_platform.state_dir))
    assert len(on_disk) > 2
    assert any(f"({len(on_disk)} volumes served)" in line for line in reports), reports
    assert on_disk <= volumes_served(f"http://{HOST}:{record.ports['master']}")
    # At once and without retries: nothing stored before the crash is unreadable after `up`.
    once = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name=env["AWS_DEFAULT_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    for index in range(40):
        body = once.get_object(Bucket="datasets" if index % 2 else "mlflow", Key=f"crash/{index}")["Body"].read()
        assert body == b"%d" % index


def test_a_new_state_dir_starts_mlflow_from_the_template_the_first_one_left(
        make_settings: Callable[..., LocalSettings], tmp_path: Path) -> None:
    import mlflow

    from infra.local.services import mlflow_database, mlflow_template

    cache = tmp_path / "cache"
    first = LocalPlatform(make_settings(cache_dir=cache))
    try:
        first.up()
    finally:
        first.down()
    template = mlflow_template(first.settings)
    assert template.is_file(), "the first new database, migrated by MLflow, became the template"
    assert "Creating initial MLflow database tables" in first.log_path("mlflow").read_text()

    second = LocalPlatform(make_settings(cache_dir=cache))
    seeded = mlflow_database(second.state_dir)
    try:
        second.up()
        assert seeded.stat().st_mode & 0o777 == 0o600
        with pytest.MonkeyPatch.context() as patch:
            for name, value in second.env().items():
                patch.setenv(name, value)
            client = mlflow.MlflowClient()
            assert [e.name for e in client.search_experiments()] == ["Default"]
            experiment = client.create_experiment("from-the-template")
            assert client.get_experiment(experiment).artifact_location.startswith("s3://")
        assert "Creating initial MLflow database tables" not in second.log_path("mlflow").read_text()
    finally:
        second.down()


def test_waiting_for_volumes_names_the_ones_the_master_does_not_serve(local_platform: LocalPlatform,
                                                                     tmp_path: Path) -> None:
    import shutil

    from infra.local.processes import ServiceSpec
    from infra.local.services import seaweedfs_data_dir, volumes_on_disk, wait_for_volumes

    s3(local_platform.env()).put_object(Bucket="datasets", Key="volumes/probe", Body=b"x")
    record = local_platform.records()["seaweedfs"]
    spec = ServiceSpec("seaweedfs", "SeaweedFS", [], {}, record.ports, record.ready_url, record.url)
    data = seaweedfs_data_dir(local_platform.state_dir)
    assert wait_for_volumes(spec, data, timeout=10) == len(volumes_on_disk(data)) > 0
    disk = tmp_path / "data"
    shutil.copytree(data, disk, ignore=shutil.ignore_patterns("*.idx", "*.vif"))
    (disk / "datasets_999.dat").write_bytes(b"")  # a volume this master never loaded
    with pytest.raises(KfopsError, match=r"has not loaded 1 volume\(s\) .* \(datasets/999\)") as raised:
        wait_for_volumes(spec, disk, timeout=1)
    assert "kfops local logs seaweedfs" in raised.value.fix


def test_a_service_whose_parent_died_leaves_no_orphan_and_up_recovers(own_platform: LocalPlatform) -> None:
    """SeaweedFS's parent (the redactor its output goes through) killed alone: `weed` lives on, holding the port,
    in the service's group."""
    victim = own_platform.records()["seaweedfs"]
    port = victim.ports["s3"]
    orphans = [p for p in psutil.Process(victim.pid).children(recursive=True)]
    assert orphans, "SeaweedFS runs under its output redactor, in a child process"
    os.kill(victim.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(victim.pid)], timeout=10)
    assert any(p.is_running() for p in orphans)
    assert not port_is_free(port), "the orphaned worker still holds the port"

    own_platform.down()
    assert not [p for p in orphans if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert port_is_free(port)

    own_platform.up()
    assert all(status.ok for status in own_platform.status())


def test_mlflow_is_one_process_that_serves_the_api_and_checks_hosts(local_platform: LocalPlatform) -> None:
    """`mlflow server`'s uvicorn runs in its own process (infra.local.mlflow_server), not in a second interpreter;
    MLflow's own checks still apply."""
    import requests

    record = local_platform.records()["mlflow"]
    server = psutil.Process(record.pid)
    assert [child.cmdline()[:3] for child in server.children(recursive=True)] == []
    assert any(conn.laddr.port == record.ports["http"] for conn in server.net_connections(kind="tcp")
               if conn.status == psutil.CONN_LISTEN)
    search = f"{record.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=30).status_code == 200
    assert requests.get(search, headers={"Host": "rebound.example"}, timeout=30).status_code == 403


def test_mlflow_dying_during_train_is_named_in_one_short_line_within_seconds(
        own_platform: LocalPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import trainer.train
    from kfops.base.errors import KfopsError
    from kfops.base.recipes import WINE_QUALITY
    from tests.datasets import cleaned_wine
    from trainer.train import train_and_register

    data = str(cleaned_wine(tmp_path))
    victim = own_platform.records()["mlflow"]
    real_fit = trainer.train.fit

    def fit_after_mlflow_died(*args: object) -> object:
        # The step has checked MLflow and starts fitting: now MLflow dies (its whole group, SIGKILL).
        os.killpg(victim.pid, signal.SIGKILL)
        return real_fit(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(trainer.train, "fit", fit_after_mlflow_died)
    began = time.monotonic()
    with pytest.raises(KfopsError) as raised:
        train_and_register(WINE_QUALITY, data, {"alpha": "0.01", "l1_ratio": "0.5"}, model_name="dying",
                           experiment="dying")
    took = time.monotonic() - began
    message = str(raised.value)
    assert took < 30, f"waited {took:.0f} s in MLflow's retries"
    assert len(message) < 400, message
    assert "connection refused" in message
    assert "HTTPConnectionPool" not in message
    assert raised.value.step == "train"
    own_platform.up()


# --- bad input: one clear error, non-zero exit, nothing left running -------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    kfops = Path(sys.executable).parent / "kfops"
    return subprocess.run([str(kfops), *args], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "COLUMNS": "400", **(env or {})})


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def assert_nothing_running(settings: LocalSettings, occupied_by_test: int | None = None) -> None:
    platform = LocalPlatform(settings)
    assert platform.status() == []
    for port in {settings.s3_port, settings.mlflow_port} - {occupied_by_test}:
        assert port_is_free(port), f"port {port} still open"
    state_dir = str(platform.state_dir)
    orphans = [p for p in psutil.process_iter(["cmdline"]) if state_dir in " ".join(p.info["cmdline"] or [])]
    assert not orphans


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("which", ["s3", "mlflow"])
def test_port_in_use(make_settings: Callable[..., LocalSettings], occupied_port: int, which: str) -> None:
    settings = make_settings(**{f"{which}_port": occupied_port})
    result = run_cli("local", "up", "--state-dir", str(settings.state_dir),
                     "--s3-port", str(settings.s3_port), "--mlflow-port", str(settings.mlflow_port))
    assert_one_line_error(result, f"port {occupied_port}", "already in use", f"--{which}-port")
    assert_nothing_running(settings, occupied_by_test=occupied_port)


def test_unwritable_state_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli("local", "up", "--state-dir", str(blocker / "state"))
    assert_one_line_error(result, "is not writable", "--state-dir")


def test_corrupted_credentials(make_settings: Callable[..., LocalSettings]) -> None:
    settings = make_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.state_dir / "credentials.json").write_text("not json")
    result = run_cli("local", "up", "--state-dir", str(settings.state_dir), "--s3-port", str(settings.s3_port))
    assert_one_line_error(result, "credentials.json is corrupted", "delete")
    assert_nothing_running(settings)


def test_missing_weed_binary(make_settings: Callable[..., LocalSettings], tmp_path: Path) -> None:
    settings = make_settings()
    result = run_cli("local", "up", "--state-dir", str(settings.state_dir),
                     env={"KFOPS_WEED_BINARY": str(tmp_path / "no-such-weed")})
    assert_one_line_error(result, "SeaweedFS binary 'weed' not found", "make venv")
    assert_nothing_running(settings)


def test_mlflow_failing_to_start_leaves_no_orphans(make_settings: Callable[..., LocalSettings]) -> None:
    settings = make_settings()
    database = settings.state_dir / "mlflow" / "mlflow.db"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(KfopsError, match="MLflow tracking server exited during start-up") as raised:
        LocalPlatform(settings).up()
    assert "mlflow.log" in raised.value.fix
    assert_nothing_running(settings)


def test_a_refused_key_never_reaches_a_log(own_platform: LocalPlatform) -> None:
    """SeaweedFS logs the key id of every request it refuses: its log goes through a redactor.

    The refused key is this platform's own, as after new credentials were generated while the store still runs with
    the old ones (a deleted credentials file): a client with the new pair is refused."""
    from infra.local import credentials

    old = credentials.load_or_create(own_platform.credentials_path)
    new = credentials.generate()
    credentials.write(own_platform.credentials_path, new)
    try:
        env = own_platform.env()
        with pytest.raises(ClientError) as raised:
            s3(env).list_buckets()
        assert raised.value.response["Error"]["Code"] == "InvalidAccessKeyId"
        with pytest.raises(ClientError):  # the old key id with a wrong secret: refused too
            s3({**env, "AWS_ACCESS_KEY_ID": old.access_key_id}, secret="x" * 40).list_buckets()
    finally:
        credentials.write(own_platform.credentials_path, old)
    s3(own_platform.env()).list_buckets()
    seaweedfs_log = own_platform.log_path("seaweedfs").read_text()
    assert "attempted key '<redacted>' not found" in seaweedfs_log, "the refusal itself is still logged"
    values = {old.access_key_id, old.secret_access_key, new.access_key_id, new.secret_access_key}
    leaks = [f"{log.name}: {value[:4]}..." for log in (own_platform.state_dir / "logs").glob("*.log")
             for value in values if value in log.read_text(errors="replace")]
    assert not leaks


def test_up_on_a_full_disk_says_which_disk_and_how_much_space_it_needs(tmp_path: Path) -> None:
    from infra.local.doctor import check_disk
    from kfops.base.events import EventReader
    from tests.conftest import fill, new_settings, tmpfs

    with tmpfs(tmp_path / "disk", "80m") as disk:
        settings = new_settings(disk / "state")
        options = ["--state-dir", str(settings.state_dir), "--s3-port", str(settings.s3_port),
                   "--mlflow-port", str(settings.mlflow_port)]
        filler = fill(disk)
        result = run_cli("local", "up", *options)
        assert_one_line_error(result, "[local up] not enough disk space for `kfops local up`",
                              f"{disk} (tmpfs) has 0 B free", "needs 64.0 MiB free", f"on {disk}")
        assert_nothing_running(settings)
        check = check_disk(settings.state_dir)
        assert check.status == "fail"
        assert f"{disk} (tmpfs)" in check.message
        assert "`kfops local up` needs 64.0 MiB" in check.message
        # `down` forgets the records without writing anything; a write that fails leaves no partial file.
        from infra.local.processes import StateStore
        from kfops.base.files import write_private

        settings.state_dir.mkdir(exist_ok=True)
        StateStore(settings.state_dir).save({})
        with pytest.raises(OSError, match="No space left"):
            write_private(settings.state_dir / "settings.json", "x" * 1024**2)
        assert list(settings.state_dir.iterdir()) == []

        # Full after the check passed: whatever write finds no room (kfops's own, SeaweedFS's, MLflow's).
        filler.unlink()
        events = tmp_path / "events.jsonl"
        kfops = Path(sys.executable).parent / "kfops"
        up = subprocess.Popen([str(kfops), "local", "up", *options], stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "COLUMNS": "400", "KFOPS_EVENTS": str(events),
                                   "KFOPS_FAILPOINTS": "up:space-checked"})
        reader = EventReader(events)
        stopped: list[int] = []
        while not stopped:
            stopped = [event.data["pid"] for event in reader.read() if event.kind == "failpoint"]
            assert up.poll() is None, up.stderr.read() if up.stderr else ""
        fill(disk)
        os.kill(stopped[0], signal.SIGCONT)
        _, stderr = up.communicate(timeout=300)
        assert_one_line_error(subprocess.CompletedProcess(up.args, up.returncode, "", stderr),
                              "[local up] not enough disk space for `kfops local up`", f"{disk} (tmpfs) has 0 B free")
        assert_nothing_running(settings)
        assert not list(settings.state_dir.glob(".*.tmp")), "no partial file left behind"
