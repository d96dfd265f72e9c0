"""The local platform as one object: ``up``, ``down``, ``status``, ``env`` and log locations for a state dir."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from infra.local import credentials
from infra.local.processes import (
    Recorder,
    ServiceRecord,
    ServiceSpec,
    StateStore,
    find_strays,
    http_ok,
    is_running,
    require_free_ports,
    start_service,
    stop_service,
    stop_strays,
)
from infra.local.services import (
    ensure_buckets,
    mlflow_database,
    mlflow_spec,
    s3_env,
    save_mlflow_template,
    seaweedfs_credentials,
    seaweedfs_data_dir,
    seaweedfs_spec,
    seed_mlflow_database,
    wait_for_volumes,
)
from infra.local.settings import HOST, LocalSettings
from kfops.base.disk import is_no_space, not_enough_space, require_space
from kfops.base.errors import KfopsError, in_step
from kfops.base.failpoints import failpoint
from kfops.base.files import write_private
from kfops.base.tracking import write_refusal

#: Services ``up`` starts, in start order.
PLATFORM_SERVICES = ("seaweedfs", "mlflow")
#: Every service a state dir can hold, in dependency order: ``down`` stops them in reverse (serving first, the
#: object store last) and ``status`` lists them in this order.
SERVICE_ORDER = (*PLATFORM_SERVICES, "mlserver", "seldon")
TITLES = {
    "seaweedfs": "SeaweedFS S3 gateway",
    "mlflow": "MLflow tracking server",
    "mlserver": "MLServer (v2 protocol)",
    "seldon": "seldon-core wrapper (v1 protocol)",
}

Reporter = Callable[[str], None]

#: Free space the state dir's disk needs for ``up``: SeaweedFS starts a volume, MLflow migrates its database, logs.
UP_NEEDS_BYTES = 64 * 1024**2
#: Free space a run needs there: datasets, trial logs, models (in the object store and the serving copies).
RUN_NEEDS_BYTES = 512 * 1024**2


@dataclass(frozen=True)
class ServiceStatus:
    """The observed state of one service.

    ``running``, ``unhealthy`` (alive, not answering), ``crashed``, or ``unrecorded`` (processes of the state dir's
    services that no record names: ``down`` stops them).
    """

    name: str
    title: str
    state: str
    url: str
    pid: int
    log: str
    since: float

    @property
    def ok(self) -> bool:
        """Whether the service is running and answering its readiness probe."""
        return self.state == "running"


#: The settings the platform was last brought up with.
SETTINGS_FILE = "settings.json"


#: The setting of each service's public port, and the port's role in its record.
_PORT_SETTINGS = {"seaweedfs": ("s3_port", "s3"), "mlflow": ("mlflow_port", "http"),
                  "mlserver": ("mlserver_port", "http"), "seldon": ("seldon_port", "http")}


def remembered(settings: LocalSettings, strict: bool = True) -> LocalSettings:
    """``settings`` with every field not set explicitly (argument or environment) taken from the last ``up``.

    Without a settings file (deleted), the ports of the services that run are what ``up`` used.

    Args:
        settings: The settings given now.
        strict: Refuse an unreadable settings file (else: treat it as missing, for commands such as ``down`` that
            must work whatever is damaged).

    Raises:
        KfopsError: The settings file exists but cannot be read (``strict`` only).
    """
    state_dir = settings.state_dir.expanduser()
    saved = state_dir / SETTINGS_FILE
    try:
        if saved.is_file():
            last_up = json.loads(saved.read_text())
            if not isinstance(last_up, dict):
                raise ValueError("not a JSON object")
            explicit = settings.model_dump(include=settings.model_fields_set)
            return LocalSettings(**{**last_up, **explicit, "state_dir": settings.state_dir})
    except (OSError, ValueError, TypeError) as error:  # pydantic's ValidationError is a ValueError
        if not strict:
            return settings
        raise KfopsError(f"the settings of the last `kfops local up` ({saved}) are unreadable "
                         f"({type(error).__name__}: {str(error).splitlines()[0][:120]})",
                         f"delete {saved} and run `kfops local up` (it writes the file again, with the ports of "
                         "the services that run)") from error
    try:
        records = StateStore(state_dir).load() if state_dir.is_dir() else {}
    except KfopsError:
        return settings
    ports = {field: records[service].ports[role] for service, (field, role) in _PORT_SETTINGS.items()
             if service in records and role in records[service].ports and field not in settings.model_fields_set}
    return settings.model_copy(update=ports) if ports else settings


def _rank(service: str) -> int:
    return SERVICE_ORDER.index(service) if service in SERVICE_ORDER else len(SERVICE_ORDER)


class LocalPlatform:
    """The services of one state dir.

    Args:
        settings: Ports, timeouts and the state dir. Only ``up`` reads the ports; every other command reads what
            the running services were actually started with from the state file.
    """

    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.settings = settings or remembered(LocalSettings())
        self.state_dir = self.settings.state_dir.expanduser().resolve()
        self.store = StateStore(self.state_dir)

    @property
    def credentials_path(self) -> Path:
        """File with the generated S3 key pair (mode 0600)."""
        return self.state_dir / "credentials.json"

    def log_path(self, service: str) -> Path:
        """Log file of ``service`` (stdout and stderr, appended across restarts)."""
        return self.state_dir / "logs" / f"{service}.log"

    def _prepare_state_dir(self) -> None:
        try:
            # Owner-only: the state dir holds credentials and every stored object.
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.state_dir / "logs").mkdir(mode=0o700, exist_ok=True)
            probe = self.state_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise KfopsError(f"state dir {self.state_dir} is not writable ({error.strerror})",
                             "choose a writable directory with --state-dir or KFOPS_STATE_DIR, or fix its "
                             "permissions") from error

    def _require_state_dir(self) -> None:
        if not self.state_dir.is_dir():
            raise KfopsError(f"no local platform state at {self.state_dir}",
                             "run `kfops local up` first (or pass the --state-dir it used)")

    @in_step("local up")
    def up(self, report: Reporter = lambda _message: None,
           also: Callable[[dict[str, ServiceRecord]], dict[str, ServiceSpec]] | None = None) -> list[ServiceStatus]:
        """Start whatever platform service is not running; a no-op for services that are already healthy.

        Args:
            report: Receives one progress message per service (the CLI shows them with a spinner).
            also: Given the records, the specs of more services to start with the platform's, concurrently and
                under the same guarantees (the serving runtimes started idle; see ``LocalServing``).

        Returns:
            The status of every platform service.

        Raises:
            KfopsError: A service could not start, or the disk is full (one line naming the disk and the space
                needed). Everything this call started has been stopped again.
        """
        require_space(self.state_dir, UP_NEEDS_BYTES, "`kfops local up`")
        failpoint("up:space-checked")
        try:
            return self._up(report, also)
        except (OSError, KfopsError) as error:
            # Full during start-up: a write of kfops, SeaweedFS or MLflow (SQLite) that found no room.
            if is_no_space(error):
                raise not_enough_space(self.state_dir, UP_NEEDS_BYTES, "`kfops local up`") from error
            raise

    def _up(self, report: Reporter,
            also: Callable[[dict[str, ServiceRecord]], dict[str, ServiceSpec]] | None) -> list[ServiceStatus]:
        self._prepare_state_dir()
        with self.store.locked():
            # Later commands (e.g. the deploy step, in another process) serve with the settings of this `up`.
            write_private(self.state_dir / SETTINGS_FILE,
                                      self.settings.model_dump_json(exclude={"state_dir"}))
            creds = credentials.load_or_create(self.credentials_path)
            records = self.store.load()
            self._stop_strays(records, report)
            healthy = {name for name, record in records.items()
                       if name in PLATFORM_SERVICES and is_running(record) and http_ok(record.ready_url)}
            if "seaweedfs" in healthy and seaweedfs_credentials(self.state_dir) != creds:
                # New credentials (the file was deleted, or damaged and then deleted): the store must know them.
                report(f"Restarting {TITLES['seaweedfs']}: the credentials changed")
                healthy.discard("seaweedfs")
            if "mlflow" in healthy and (refusal := write_refusal(records["mlflow"].url)):
                # Answers, but cannot write (its database was read-only, or the disk full): restarted, it can tell.
                report(f"Restarting {TITLES['mlflow']}: it could not write its database ({refusal})")
                healthy.discard("mlflow")
            for name in PLATFORM_SERVICES:
                if name in healthy:
                    report(f"{TITLES[name]} already running at {records[name].url}")
            specs = self._specs([name for name in PLATFORM_SERVICES if name not in healthy], creds, records)
            if also is not None:
                specs.update(also(records))
            # Every port checked before anything starts: a taken MLflow port fails at once, not after SeaweedFS
            # started and stopped again.
            for name, spec in specs.items():
                if not (records.get(name) and is_running(records[name])):
                    require_free_ports(spec)
            for name in specs:
                if records.get(name):
                    # Crashed or hung since the last `up`: clear what is left before starting afresh.
                    stop_service(records.pop(name), self.settings.stop_timeout)
            self._start_all(specs, creds, records, report)
        return self.status()

    def _stop_strays(self, records: dict[str, ServiceRecord], report: Reporter) -> list[str]:
        """Stop processes of this state dir's services that no record names; their names."""
        strays = find_strays(self.state_dir, records)
        for stray in strays:
            report(f"Stopping {TITLES.get(stray.name, stray.name)}: {stray} was running unrecorded")
        stop_strays(strays, self.settings.stop_timeout)
        return [stray.name for stray in strays]

    def _start_all(self, specs: dict[str, ServiceSpec], creds: credentials.S3Credentials,
                   records: dict[str, ServiceRecord], report: Reporter) -> None:
        """Start ``specs`` concurrently (none needs another to start); on any failure stop every one of them."""
        recorder = Recorder(self.store, records)

        def start(name: str) -> ServiceRecord:
            spec = specs[name]
            report(f"Starting {spec.title} on {spec.url}")
            began = time.monotonic()
            database = mlflow_database(self.state_dir)
            new_database = (name == "mlflow" and not database.exists()
                            and not seed_mlflow_database(self.settings, database))
            # Recorded before it runs: a kfops killed at any moment leaves the process to `down`.
            record = start_service(spec, self.log_path(name), self.settings.startup_timeout,
                                   self.settings.stop_timeout, recorder)
            detail = ""
            if name == "seaweedfs":
                volumes = wait_for_volumes(spec, seaweedfs_data_dir(self.state_dir), self.settings.startup_timeout)
                ensure_buckets(spec.url, creds)
                detail = f" ({volumes} volume{'' if volumes == 1 else 's'} served)" if volumes else ""
            if name == "mlflow":
                refusal = write_refusal(spec.url)
                if refusal:
                    raise KfopsError(f"MLflow tracking server started but cannot write its database {database}: "
                                     f"{refusal}",
                                     f"make {database} and its directory writable (`chmod u+w`; on a read-only "
                                     "mount, remount it read-write), then run `kfops local up` again")
            if new_database:
                save_mlflow_template(self.settings, database)
            report(f"{spec.title} ready in {time.monotonic() - began:.1f} s{detail}")
            return record

        pool = ThreadPoolExecutor(max_workers=max(len(specs), 1), thread_name_prefix="kfops-up")
        futures = {name: pool.submit(start, name) for name in specs}
        interrupted: BaseException | None = None
        try:
            wait(futures.values())
        except BaseException as error:  # Ctrl-C while waiting: let every start finish or fail, then clean up
            interrupted = error
        pool.shutdown(wait=True)
        failures = [failure for future in futures.values() if (failure := future.exception()) is not None]
        if interrupted or failures:
            for name in futures:
                if name in records:
                    stop_service(records[name], self.settings.stop_timeout)
                    recorder.remove(records[name])
            raise interrupted or failures[0]

    def _specs(self, names: list[str], creds: credentials.S3Credentials,
               records: dict[str, ServiceRecord]) -> dict[str, ServiceSpec]:
        """The specs of the services ``up`` starts, each built once (building one picks its internal ports)."""
        specs: dict[str, ServiceSpec] = {}
        for name in names:
            if name == "seaweedfs":
                specs[name] = seaweedfs_spec(self.settings, self.state_dir, creds)
            elif name == "mlflow":
                store = specs.get("seaweedfs") or records.get("seaweedfs")
                specs[name] = mlflow_spec(self.settings, self.state_dir, creds,
                                          store.url if store else f"http://{HOST}:{self.settings.s3_port}")
            else:
                raise ValueError(f"unknown platform service {name!r}")
        return specs

    @in_step("local down")
    def down(self, report: Reporter = lambda _message: None) -> list[str]:
        """Stop every service of the state dir: the recorded ones, and any process of its services no record names.

        The services are stopped concurrently: none needs another to shut down, and each may use its whole grace
        period (SeaweedFS always does), so one after another would add the periods up. Processes are found by their
        mark (:data:`~infra.local.processes.SERVICE_STATE_DIR_ENV`) when the state dir is gone or its records are
        unreadable, and the records are reset then.

        Returns:
            Names of the services that were stopped.
        """
        if not self.state_dir.is_dir():
            # Deleted under running services: they are found by their mark alone.
            return self._stop_strays({}, report)
        with self.store.locked():
            try:
                records = self.store.load()
            except KfopsError as error:
                report(f"{error.cause}: stopping this state dir's services by their mark and resetting the file")
                records = {}
            names = sorted(records, key=_rank, reverse=True)
            for name in names:
                report(f"Stopping {TITLES.get(name, name)}")
            with ThreadPoolExecutor(max_workers=max(len(names), 1)) as pool:
                list(pool.map(lambda name: stop_service(records[name], self.settings.stop_timeout), names))
            self.store.save({})
            return names + self._stop_strays({}, report)

    def status(self) -> list[ServiceStatus]:
        """The observed state of every recorded service, and of processes of its services no record names.

        A service never started is simply absent.
        """
        records = self.store.load() if self.state_dir.is_dir() else {}
        result = []
        for name in sorted(records, key=_rank):
            record = records[name]
            if not is_running(record):
                state = "crashed"
            elif http_ok(record.ready_url):
                state = "running"
            else:
                state = "unhealthy"
            result.append(ServiceStatus(name=name, title=TITLES.get(name, name), state=state, url=record.url,
                                        pid=record.pid, log=record.log, since=record.started_at))
        for stray in find_strays(self.state_dir, records):
            result.append(ServiceStatus(name=stray.name, title=TITLES.get(stray.name, stray.name), state="unrecorded",
                                        url="", pid=stray.pgid, log=str(self.log_path(stray.name)),
                                        since=stray.started))
        return result

    def records(self) -> dict[str, ServiceRecord]:
        """The raw process records (ports included) of the state dir."""
        return self.store.load() if self.state_dir.is_dir() else {}

    @in_step("local env")
    def env(self) -> dict[str, str]:
        """Environment variables that point S3 clients and MLflow at the running platform.

        Raises:
            KfopsError: The platform is not running.
        """
        self._require_state_dir()
        records = self.store.load()
        missing = [name for name in PLATFORM_SERVICES if name not in records or not is_running(records[name])]
        if missing:
            raise KfopsError(f"the local platform is not running (missing: {', '.join(missing)})",
                             "run `kfops local up`")
        creds = credentials.load_or_create(self.credentials_path)
        return {
            **s3_env(records["seaweedfs"].url, creds),
            "MLFLOW_TRACKING_URI": records["mlflow"].url,
            "KFOPS_STATE_DIR": str(self.state_dir),
        }
