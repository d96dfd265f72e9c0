"""Start, probe, record and stop the long-running processes of the local platform.

Every service runs in its own session (process group) so that stopping it reaches the workers it forked too, and so
that it outlives the ``kfops`` command that started it. What was started is recorded in ``state.json`` with the
process start time, which guards against acting on a recycled PID.

A service is recorded before it can outlive its starter: its process first waits on a pipe from the starter and
only runs the service once the record is written. A starter killed before that (the deploy step of a killed run, a
Ctrl-C'd ``up``) closes the pipe by dying, and the waiting process exits without ever running the service. Every
service also carries its state dir in its environment, so its processes can be found without the state file (a
deleted state dir, an unreadable ``state.json``) and stopped by pid, never by name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from infra.local.settings import HOST
from kfops.base.errors import KfopsError
from kfops.base.events import EVENTS_ENV
from kfops.base.failpoints import FAILPOINTS_ENV, failpoint
from kfops.base.files import PRIVATE_UMASK, private_files, write_json

#: Set in every service's environment: the state dir it belongs to (its processes are found by it, see
#: :func:`marked_processes`) and its name. kfops sets them for its services; they are not settings.
SERVICE_STATE_DIR_ENV = "KFOPS_SERVICE_STATE_DIR"
SERVICE_NAME_ENV = "KFOPS_SERVICE_NAME"
#: The first program of every service: wait for the starter's go (a line on stdin), then become the service. End of
#: input instead (the starter died before recording the process) ends it before the service ever runs.
_GATE = 'read -r go && exec "$0" "$@" </dev/null'


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service and how to tell that it is ready.

    Attributes:
        name: Short name used in the state file, log file and on the command line (``seaweedfs``, ``mlflow``...).
        title: Human-readable name for messages.
        argv: The command line.
        env: Extra environment variables (merged over the caller's environment).
        ports: Every port the service listens on, by role. The first one is the public endpoint.
        ready_url: URL that answers 200 once the service can take requests.
        url: What users point a client or browser at.
        port_settings: For each public port role, the setting that changes it (named in port-conflict errors).
        cwd: Working directory of the process (default: the caller's).
        stop_grace: The most a stop waits after SIGTERM before SIGKILL, for a service whose graceful stop is known
            to achieve nothing in that time (SeaweedFS); ``None``: the settings' ``stop_timeout``.
    """

    name: str
    title: str
    argv: list[str]
    env: Mapping[str, str]
    ports: Mapping[str, int]
    ready_url: str
    url: str
    port_settings: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    stop_grace: float | None = None


@dataclass
class ServiceRecord:
    """What the state file remembers about a started service (``stop_grace`` as in :class:`ServiceSpec`)."""

    name: str
    pid: int
    create_time: float
    ports: dict[str, int]
    url: str
    ready_url: str
    log: str
    started_at: float
    details: dict[str, str] = field(default_factory=dict)
    stop_grace: float | None = None


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could bind ``host:port`` right now (TIME_WAIT leftovers do not count as in use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


#: Lowest port :func:`free_port` picks from (below the kernel's ephemeral range).
_LOWEST_PICKED = 15000


def free_port(host: str = HOST) -> int:
    """A port free on ``host`` now, for ports users never type, chosen below the kernel's ephemeral port range.

    A service binds its ports seconds after they are chosen (MLflow imports for about 3 s first). A port from the
    ephemeral range (what binding port 0 returns) can meanwhile become the local port of any outgoing connection on the
    machine, and the service then fails to start ("address already in use": seen once in a `make test` run, where
    hundreds of client connections are opened each second). The kernel never picks a connection's local port
    outside that range. Falls back to the kernel's choice when the range leaves no room below it.
    """
    low = _ephemeral_range()[0]
    if low - _LOWEST_PICKED >= 1000:
        for _ in range(200):
            port = _LOWEST_PICKED + secrets.randbelow(low - _LOWEST_PICKED)
            if port_is_free(port, host):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections (Linux's default where it cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether ``url`` answers a GET with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback http only
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def is_running(record: ServiceRecord) -> bool:
    """Whether the recorded process is still alive (and is the same process, not a recycled PID)."""
    try:
        proc = psutil.Process(record.pid)
        return abs(proc.create_time() - record.create_time) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file, or an empty string if it does not exist."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            return b"\n".join(handle.read().splitlines()[-lines:]).decode(errors="replace")
    except FileNotFoundError:
        return ""


#: Variables a runtime reads its own settings from: a developer's shell must not change how a service runs.
#: ``AWS_``: a shell's credentials (the platform's own after `eval "$(kfops local env)"`, or the user's cloud keys)
#: must not reach a service unasked: SeaweedFS turns AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its environment into
#: an extra admin identity and logs the key. A service that needs S3 gets the platform's keys in its own ``extra``.
_RUNTIME_PREFIXES = ("MLSERVER_", "GUNICORN_", "PREDICTIVE_UNIT_", "AWS_")
#: What a run tells its steps, and a service's marks: meaningless to (or wrong for) a service started now.
_STARTER_ONLY = (EVENTS_ENV, FAILPOINTS_ENV, SERVICE_STATE_DIR_ENV, SERVICE_NAME_ENV)


def service_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without runtime settings or credentials, plus the service's own ``extra``."""
    inherited = {name: value for name, value in os.environ.items()
                 if not name.startswith(_RUNTIME_PREFIXES) and name not in _STARTER_ONLY}
    return {**inherited, **extra}


def require_free_ports(spec: ServiceSpec) -> None:
    """Raise if a port ``spec`` listens on is taken, naming the setting that moves it.

    Raises:
        KfopsError: The first port in use.
    """
    for role, port in spec.ports.items():
        if not port_is_free(port):
            setting = spec.port_settings.get(role)
            fix = f"stop the program using it (`ss -ltnp 'sport = :{port}'` shows it)"
            if setting:
                fix += f" or choose another port with {setting}"
            raise KfopsError(f"port {port} ({spec.title} {role}) is already in use on {HOST}", fix)


class Recorder:
    """Writes each service to the state file the moment its process exists (see the module docstring).

    Args:
        store: The state dir's records (its lock is held by the caller).
        records: The records as the caller holds them; each service started is added, and saved whole.
    """

    def __init__(self, store: StateStore, records: dict[str, ServiceRecord]) -> None:
        self.store = store
        self.records = records
        self._lock = threading.Lock()  # services may start concurrently

    def marks(self, name: str) -> dict[str, str]:
        """The environment that ties a service's processes to this state dir."""
        return {SERVICE_STATE_DIR_ENV: str(self.store.state_dir), SERVICE_NAME_ENV: name}

    def add(self, record: ServiceRecord) -> None:
        """Record ``record`` (replacing the service's previous one) and save."""
        with self._lock:
            self.records[record.name] = record
            self.store.save(self.records)

    def remove(self, record: ServiceRecord) -> None:
        """Forget ``record`` if it is still the service's record, and save."""
        with self._lock:
            if self.records.get(record.name) == record:
                del self.records[record.name]
                self.store.save(self.records)


def _require_executable(spec: ServiceSpec) -> None:
    program = spec.argv[0]
    if not (shutil.which(program) or (os.path.isfile(program) and os.access(program, os.X_OK))):
        raise KfopsError(f"cannot execute {program} for {spec.title}: not found or not executable",
                         "reinstall the environment with `make venv`")


def start_service(spec: ServiceSpec, log_path: Path, timeout: float, grace: float,
                  recorder: Recorder | None = None) -> ServiceRecord:
    """Start ``spec`` in a new session and wait until it is ready.

    Args:
        spec: The service to start.
        log_path: File that receives the service's stdout and stderr (appended, so restarts keep history).
        timeout: Seconds to wait for ``spec.ready_url``.
        grace: Seconds to wait after SIGTERM when start-up fails and the process must be stopped again.
        recorder: Records the service (and marks its environment) before the service runs, so a starter killed at
            any moment leaves nothing running that the state dir does not know. Without one, nothing is recorded.

    Returns:
        The record to persist.

    Raises:
        KfopsError: A port is taken, the process exits during start-up, or it is not ready in time. In every case
            the process group has been stopped again and its record removed.
    """
    require_free_ports(spec)
    _require_executable(spec)
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        log.write(f"\n=== kfops: starting {spec.name}: {' '.join(spec.argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", _GATE, *spec.argv],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=service_environment({**spec.env, **(recorder.marks(spec.name) if recorder else {})}),
                cwd=spec.cwd,
                start_new_session=True,
                # The service's own data (SeaweedFS volumes, MLflow's database, logs) is its owner's only.
                umask=PRIVATE_UMASK,
            )
        except OSError as error:
            raise KfopsError(f"cannot execute {spec.argv[0]} for {spec.title}: {error}",
                             "reinstall the environment with `make venv`") from error
    assert proc.stdin is not None
    try:
        record = ServiceRecord(
            name=spec.name,
            pid=proc.pid,
            create_time=psutil.Process(proc.pid).create_time(),
            ports=dict(spec.ports),
            url=spec.url,
            ready_url=spec.ready_url,
            log=str(log_path),
            started_at=time.time(),
            stop_grace=spec.stop_grace,
        )
        failpoint(f"spawned:{spec.name}")
        if recorder is not None:
            recorder.add(record)
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    except BaseException:
        proc.stdin.close()  # the gate reads end of input and exits: the service never ran
        proc.wait()
        raise
    failpoint(f"starting:{spec.name}")
    try:
        _wait_ready(proc, spec, log_path, timeout)
    except BaseException:
        stop_service(record, grace)
        if recorder is not None:
            recorder.remove(record)
        raise
    return record


def _wait_ready(proc: subprocess.Popen[bytes], spec: ServiceSpec, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        code = proc.poll()
        if code is not None:
            last = tail(log_path, 8).strip().splitlines()
            reason = last[-1].strip() if last else "no output"
            raise KfopsError(f"{spec.title} exited during start-up with code {code} (last log line: {reason!r})",
                f"read {log_path} for the full log, correct the cause and run `kfops local up` again",
            )
        if http_ok(spec.ready_url):
            return
        if time.monotonic() > deadline:
            raise KfopsError(f"{spec.title} was not ready at {spec.ready_url} within {timeout:.0f} s",
                f"read {log_path}; on a slow machine raise KFOPS_STARTUP_TIMEOUT",
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def stop_service(record: ServiceRecord, grace: float) -> None:
    """Stop a service's whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

    The group is stopped even when its leader is gone: a service whose main process was killed can leave workers
    behind (``mlflow server``'s uvicorn worker keeps its port), and they still carry the group of the service.

    Returns once no process of the group is left and the service's ports are closed (or a short wait for the kernel
    to release them has passed). A service that is already gone is not an error.
    """
    if record.stop_grace is not None:
        grace = min(grace, record.stop_grace)
    # Each member by pid (not killpg): the members were identified by their start time as well as their group.
    _terminate(_group_members(record), grace)
    _reap(record.pid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(port_is_free(port) for port in record.ports.values()):
        time.sleep(0.05)


def _terminate(procs: list[psutil.Process], grace: float) -> None:
    """SIGTERM to each of ``procs``, SIGKILL to those still running after ``grace`` seconds; returns once all exited."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    alive = _wait_stopped(procs, grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _wait_stopped(alive, 5)


def _wait_stopped(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process in ``procs`` has exited, for at most ``timeout`` seconds; those still running.

    A zombie has exited: it holds no port, file or memory, only its exit status, until its parent collects it. A
    member whose parent was stopped with it is collected by the system's init, which in a container may take its
    time (measured here: about 2 s; ``psutil.wait_procs`` waited for that).
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = [proc for proc in procs if _running(proc)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group_members(record: ServiceRecord) -> list[psutil.Process]:
    """Processes of the service's process group (its pgid is the leader's pid), leader or not.

    Only processes started since the service count, so a recycled pid that leads an unrelated group is left alone.
    """
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == record.pid and proc.create_time() >= record.create_time - 0.05:
                members.append(proc)
    return members


def _reap(pid: int) -> None:
    # Only matters when the service is our own child (tests start services in-process): collect the zombie. Polled
    # briefly: the leader can be seen stopped a moment before the kernel lets its parent collect it.
    deadline = time.monotonic() + 1.0
    while True:
        try:
            collected, _ = os.waitpid(pid, os.WNOHANG)
        except OSError:  # not our child, or collected already
            return
        if collected or time.monotonic() >= deadline:
            return
        time.sleep(0.01)


def marked_processes(state_dir: Path) -> list[psutil.Process]:
    """Every process that carries ``state_dir``'s service mark (:data:`SERVICE_STATE_DIR_ENV`), recorded or not."""
    wanted = str(state_dir)
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.environ().get(SERVICE_STATE_DIR_ENV) == wanted:
                found.append(proc)
    return found


@dataclass(frozen=True)
class Stray:
    """A process group of a state dir's service that no record names (see :func:`find_strays`)."""

    name: str
    pgid: int
    processes: tuple[psutil.Process, ...]
    started: float

    def __str__(self) -> str:
        pids = ", ".join(str(proc.pid) for proc in self.processes)
        return f"{self.name} (pid {pids})"


def find_strays(state_dir: Path, records: Mapping[str, ServiceRecord]) -> list[Stray]:
    """Processes of ``state_dir``'s services outside every recorded service's process group.

    They are what a deleted state dir, an unreadable state file or a kfops older than record-at-spawn leaves behind:
    running, holding ports, and invisible to ``status`` and ``down``.
    """
    recorded = {record.pid for record in records.values()}
    groups: dict[int, list[psutil.Process]] = {}
    for proc in marked_processes(state_dir):
        with contextlib.suppress(psutil.Error, OSError):
            pgid = os.getpgid(proc.pid)
            if pgid not in recorded and proc.status() != psutil.STATUS_ZOMBIE:
                groups.setdefault(pgid, []).append(proc)
    strays = []
    for pgid, members in sorted(groups.items()):
        name, started = "service", time.time()
        for proc in members:
            with contextlib.suppress(psutil.Error, OSError):
                name = proc.environ().get(SERVICE_NAME_ENV, name)
                started = min(started, proc.create_time())
        strays.append(Stray(name, pgid, tuple(members), started))
    return strays


def stop_strays(strays: list[Stray], grace: float) -> None:
    """Stop the strays' processes (each by pid, as :func:`stop_service` does): SIGTERM, SIGKILL after ``grace``."""
    _terminate([proc for stray in strays for proc in stray.processes], grace)
    for stray in strays:
        _reap(stray.pgid)


class StateStore:
    """The ``state.json`` process records of one state directory, guarded by an exclusive lock."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / "state.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state directory's lock so two ``kfops`` commands never start or stop the same services.

        Everything written while it is held is private to its owner (:func:`~kfops.base.files.private_files`).
        """
        with private_files(), (self.state_dir / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self) -> dict[str, ServiceRecord]:
        """Records by service name; an unreadable file is reported, not silently reset."""
        try:
            raw = json.loads(self.path.read_text())
            return {name: ServiceRecord(**fields) for name, fields in raw["services"].items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError) as error:
            raise KfopsError(f"process records {self.path} are unreadable ({type(error).__name__}: {error})",
                             "run `kfops local down` (it finds this state dir's services without the file, stops "
                             "them and resets it), then `kfops local up`") from error

    def save(self, records: Mapping[str, ServiceRecord]) -> None:
        """Write the records atomically; no records is no file (so ``down`` needs no disk space)."""
        if not records:
            self.path.unlink(missing_ok=True)
            return
        payload = {"services": {name: asdict(record) for name, record in records.items()}}
        write_json(self.path, payload)
