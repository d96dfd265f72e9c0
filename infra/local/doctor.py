"""``kfops doctor`` for the local target: what would make ``kfops local up`` or a run fail, found before it does.

Read-only, except one object the S3 check writes and deletes under ``doctor/`` of the ``mlflow`` bucket (the only way
to know the artifact store takes writes).
"""

from __future__ import annotations

import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from infra.local.platform import PLATFORM_SERVICES, RUN_NEEDS_BYTES, UP_NEEDS_BYTES, LocalPlatform
from infra.local.processes import HOST, find_strays, http_ok, is_running, port_is_free
from infra.local.services import mlflow_database, seldon_python
from infra.local.settings import LocalSettings
from kfops.base.checks import Check, fail, guarded, ok, warn
from kfops.base.contract import BUCKETS
from kfops.base.disk import disk_space, size
from kfops.base.tracking import write_refusal

#: Python of each environment, as the project pins them (pyproject.toml, Makefile).
PYTHONS = {".venv": (3, 11), ".venv-seldon": (3, 12)}
#: Free space the state dir's file system should keep: a run writes datasets, models and logs there. Below what a
#: run needs, a run would be refused.
DISK_WARN_BYTES = 2 * 1024**3
DISK_FAIL_BYTES = RUN_NEEDS_BYTES
#: The `kfops local up` option (if it has one) and the variable that move each port.
PORT_SETTINGS = {"s3_port": ("seaweedfs", "--s3-port", "KFOPS_S3_PORT"),
                 "mlflow_port": ("mlflow", "--mlflow-port", "KFOPS_MLFLOW_PORT"),
                 "mlserver_port": ("mlserver", "", "KFOPS_MLSERVER_PORT"),
                 "seldon_port": ("seldon", "", "KFOPS_SELDON_PORT")}


def check_pythons(settings: LocalSettings) -> list[Check]:
    """Both environments exist with the Python each must have."""
    found = []
    for venv, wanted in PYTHONS.items():
        name = f"Python of {venv}"
        try:
            python = Path(sys.executable) if venv == ".venv" else seldon_python(settings)
            output = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2])"], check=True,
                                    capture_output=True, text=True, timeout=30).stdout.split()
        except Exception as error:  # missing, not executable, broken
            found.append(fail(name, f"not usable: {error}", "run `make venv`"))
            continue
        version = (int(output[0]), int(output[1]))
        if version != wanted:
            found.append(fail(name, f"is Python {version[0]}.{version[1]}, the project pins "
                                    f"{wanted[0]}.{wanted[1]}", f"`rm -rf {venv}` and run `make venv`"))
        else:
            found.append(ok(name, f"Python {version[0]}.{version[1]} at {python}"))
    return found


def check_ports(platform: LocalPlatform) -> list[Check]:
    """Each configured port is free, or held by the service kfops started on it."""
    records = platform.records() if platform.state_dir.exists() else {}
    found = []
    for field_name, (service, option, variable) in PORT_SETTINGS.items():
        port = int(getattr(platform.settings, field_name))
        name = f"port {port} ({service})"
        record = records.get(service)
        if record is not None and is_running(record) and port in record.ports.values():
            found.append(ok(name, f"used by kfops' {service} (pid {record.pid})"))
        elif port_is_free(port):
            found.append(ok(name, "free"))
        else:
            move = f"`kfops local up {option} <port>` or {variable}=<port>" if option else f"{variable}=<port>"
            found.append(fail(name, f"in use by another process on {HOST}",
                              f"stop it (`ss -ltnp 'sport = :{port}'` shows it) or choose another port: {move}"))
    return found


def check_disk(state_dir: Path) -> Check:
    """Free space where the state dir lives: the mount point, and what `up` and a run need."""
    space = disk_space(state_dir)
    text = f"{space.describe()} (it holds {state_dir})"
    if space.free < DISK_FAIL_BYTES:
        needs = (f"`kfops local up` needs {size(UP_NEEDS_BYTES)}, a run {size(RUN_NEEDS_BYTES)}"
                 if space.free < UP_NEEDS_BYTES else f"a run needs {size(RUN_NEEDS_BYTES)}")
        return fail("disk space", f"{text}: {needs}",
                    f"free at least {size(DISK_FAIL_BYTES - space.free)} on {space.mount}, or move the state dir "
                    "to another disk (--state-dir / KFOPS_STATE_DIR)")
    if space.free < DISK_WARN_BYTES:
        return warn("disk space", text, f"a run stores datasets, models and logs there: free some space on "
                                        f"{space.mount}")
    return ok("disk space", text)


def check_modes(platform: LocalPlatform) -> list[Check]:
    """The state dir is private (0700) and the credentials file readable by its owner only (0600)."""
    found = []
    for path, wanted, what in ((platform.state_dir, 0o700, "state dir"),
                               (platform.credentials_path, 0o600, "credentials file")):
        if not path.exists():
            found.append(ok(f"{what} mode", f"{path} does not exist yet (`kfops local up` creates it {wanted:o})"))
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            found.append(fail(f"{what} mode", f"{path} is {mode:o}: other users can read it",
                              f"chmod {wanted:o} {path}"))
        else:
            found.append(ok(f"{what} mode", f"{path} is {mode:o}"))
    return found


def check_credentials(platform: LocalPlatform) -> Check:
    """The credentials file can be read (``up``, ``env`` and every run need it)."""
    from infra.local.credentials import load_or_create
    from kfops.base.errors import KfopsError

    path = platform.credentials_path
    if not path.exists():
        return ok("credentials file", f"{path} does not exist yet (`kfops local up` creates it)")
    try:
        load_or_create(path)
    except KfopsError as error:
        return fail("credentials file", error.cause, error.fix)
    return ok("credentials file", f"{path} holds a key pair")


def check_services(platform: LocalPlatform) -> list[Check]:
    """Each service kfops started is alive and answers; a platform never started is a warning."""
    records = platform.records() if platform.state_dir.exists() else {}
    found = []
    for service in PLATFORM_SERVICES:
        record = records.get(service)
        if record is None:
            found.append(warn(service, "not running", "run `kfops local up`"))
        elif not is_running(record):
            found.append(fail(service, f"crashed (pid {record.pid} is gone)",
                              f"read `kfops local logs {service}`, then run `kfops local up`"))
        elif not http_ok(record.ready_url, timeout=5):
            found.append(fail(service, f"running but {record.ready_url} does not answer",
                              f"read `kfops local logs {service}`; `kfops local down && kfops local up`"))
        else:
            found.append(ok(service, f"answers at {record.url}"))
    for service in ("mlserver", "seldon"):
        record = records.get(service)
        if record is not None and not (is_running(record) and http_ok(record.ready_url, timeout=5)):
            found.append(fail(service, "serves no champion: the process is gone or not ready",
                              f"read `kfops local logs {service}`; `kfops local up` restores the champion"))
        elif record is not None and not record.details.get("model"):
            found.append(ok(service, f"answers at {record.url}, no model yet (the first deploy loads the champion)"))
        elif record is not None:
            found.append(ok(service, f"serves at {record.url}"))
    strays = find_strays(platform.state_dir, records)
    if strays:
        found.append(fail("unrecorded processes", f"{', '.join(map(str, strays))} of {platform.state_dir} run but no "
                                                  "record names them (a deleted state dir, a damaged state file)",
                          f"`kfops local down --state-dir {platform.state_dir}` finds and stops them"))
    return found


def check_store(platform: LocalPlatform) -> list[Check]:
    """The stored credentials work against S3, every bucket exists, and MLflow's artifact bucket takes writes."""
    from botocore.exceptions import ClientError

    from kfops.base.storage import s3_client

    env = platform.env()
    client = s3_client(connect_timeout=3, attempts=1, env=env)
    try:
        names = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    except ClientError as error:
        return [fail("S3 credentials", f"refused by {env['AWS_ENDPOINT_URL_S3']}: "
                                       f"{error.response.get('Error', {}).get('Code', error)}",
                     "delete the credentials file and run `kfops local down && kfops local up` (objects stay)")]
    found = [ok("S3 credentials", f"accepted by {env['AWS_ENDPOINT_URL_S3']}")]
    missing = [bucket for bucket in BUCKETS if bucket not in names]
    found.append(fail("buckets", f"missing: {', '.join(missing)}", "run `kfops local up` (it creates them)")
                 if missing else ok("buckets", ", ".join(BUCKETS)))
    key = f"doctor/{uuid.uuid4().hex}"
    client.put_object(Bucket="mlflow", Key=key, Body=b"kfops doctor")
    client.delete_object(Bucket="mlflow", Key=key)
    found.append(ok("MLflow artifact store", "s3://mlflow takes writes with the platform's credentials"))
    return found


def check_mlflow_store(platform: LocalPlatform) -> Check:
    """MLflow can write its database (its health check answers even when the database is read-only or full)."""
    database = mlflow_database(platform.state_dir)
    refusal = write_refusal(platform.records()["mlflow"].url)
    if refusal:
        return fail("MLflow store", f"MLflow cannot write {database}: {refusal}",
                    f"make {database} and its directory writable (`chmod u+w`; on a read-only mount, remount it "
                    "read-write), then `kfops local up` (it restarts MLflow)")
    return ok("MLflow store", f"{database} takes writes")


def check_champion(platform: LocalPlatform) -> list[Check]:
    """The champion being served (if any) loads in each runtime's environment (the deploy step's check)."""
    from components.deploy import check_compatibility
    from infra.local.serving import LocalServing
    from kfops.base.errors import KfopsError

    serving = LocalServing(platform)
    deployed = serving.deployed()
    if not deployed:
        return [ok("champion", "none deployed yet")]
    model = deployed["model"]
    runtimes = {protocol: serving.runtime(protocol) for protocol in deployed["protocols"]}
    try:
        check_compatibility(Path(model["path"]), runtimes)
    except KfopsError as error:
        return [fail("champion", f"{model['name']} version {model['version']}: {error.cause}", error.fix)]
    return [ok("champion", f"{model['name']} version {model['version']} loads in "
                           f"{', '.join(runtime.name for runtime in runtimes.values())}")]


def check_leases(platform: LocalPlatform) -> list[Check]:
    """Promotion leases (registered-model tags) whose holder is gone: a run killed while promoting.

    The next run on this host takes such a lease over at once; one on another host would wait for its expiry.
    """
    import mlflow

    from components.promote import LEASE_TAG, read_lease

    env = platform.env()
    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    found = []
    token = None
    while True:
        page = client.search_registered_models(max_results=200, page_token=token)
        for model in page:
            lease = read_lease(client, model.name)
            if lease is None:
                continue
            name = f"promotion lease of {model.name}"
            if lease.dead_holder():
                release = (f"import mlflow; mlflow.MlflowClient().delete_registered_model_tag({model.name!r}, "
                           f"{LEASE_TAG!r})")
                found.append(warn(name, f"{model.name}: held by {lease.describe()}, which is gone (killed while "
                                        "promoting)",
                                  f"nothing is needed: the next run on this host takes it over at once; to clear "
                                  f"it now: eval \"$(kfops local env --state-dir {platform.state_dir})\" && "
                                  f"python -c \"{release}\""))
            elif lease.expires < time.time():
                found.append(ok(name, f"{model.name}: expired lease of {lease.describe()} (the next run takes it)"))
            else:
                until = time.strftime("%H:%M:%S", time.localtime(lease.expires))
                found.append(ok(name, f"{model.name}: held by {lease.describe()} until {until} (a run is promoting)"))
        token = page.token
        if not token:
            break
    return found or [ok("promotion leases", "none held")]


def run_checks(settings: LocalSettings) -> list[Check]:
    """Every local check, in the order a user would fix things."""
    platform = LocalPlatform(settings)
    steps: list[tuple[str, Callable[[], Check | list[Check]], str]] = [
        ("Python", lambda: check_pythons(settings), "run `make venv`"),
        ("ports", lambda: check_ports(platform), "see `kfops local status`"),
        ("disk space", lambda: check_disk(platform.state_dir), "check the state dir's file system"),
        ("file modes", lambda: check_modes(platform), f"chmod 700 {platform.state_dir}"),
        ("credentials file", lambda: check_credentials(platform), f"delete {platform.credentials_path}"),
        ("services", lambda: check_services(platform), "run `kfops local up`"),
    ]
    found = [check for name, step, fix in steps for check in guarded(name, step, fix)]
    if all(check.status == "ok" for check in found if check.name in PLATFORM_SERVICES):
        found += guarded("S3 credentials", lambda: check_store(platform),
                         "delete the credentials file and run `kfops local up` (objects stay)")
        found += guarded("MLflow store", lambda: check_mlflow_store(platform), "read `kfops local logs mlflow`")
        found += guarded("champion", lambda: check_champion(platform), "redeploy with `kfops pipeline run --local`")
        found += guarded("promotion leases", lambda: check_leases(platform), "read `kfops local logs mlflow`")
    return found
