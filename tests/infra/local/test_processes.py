from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from infra.local.processes import (
    ServiceRecord,
    ServiceSpec,
    StateStore,
    free_port,
    is_running,
    port_is_free,
    service_environment,
    start_service,
    stop_service,
)
from infra.local.settings import HOST
from kfops.base.errors import KfopsError

pytestmark = pytest.mark.unit


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        assert not port_is_free(sock.getsockname()[1])


def test_a_fresh_port_is_free() -> None:
    assert port_is_free(free_port())


def test_a_fresh_port_is_never_one_the_kernel_may_give_an_outgoing_connection() -> None:
    # Chosen seconds before the service binds it: an ephemeral port could meanwhile become some client's local port.
    low, high = (int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = {free_port() for _ in range(50)}
    assert not [port for port in ports if low <= port <= high]
    assert len(ports) > 40, "picked at random, not the same few ports"


def test_state_store_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    record = ServiceRecord(name="x", pid=1, create_time=1.0, ports={"http": 1}, url="u", ready_url="r",
                           log="l", started_at=2.0)
    store.save({"x": record})
    assert store.load() == {"x": record}


def test_unreadable_state_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{")
    with pytest.raises(KfopsError, match="unreadable"):
        StateStore(tmp_path).load()


def test_recycled_pid_is_not_mistaken_for_the_service() -> None:
    import os

    import psutil

    me = psutil.Process(os.getpid())
    record = ServiceRecord(name="x", pid=me.pid, create_time=me.create_time() - 100, ports={}, url="", ready_url="",
                           log="", started_at=0)
    assert not is_running(record)


def _spec(code: str, port: int) -> ServiceSpec:
    return ServiceSpec(name="probe", title="Probe service", argv=[sys.executable, "-c", code], env={},
                       ports={"http": port}, ready_url=f"http://{HOST}:{port}/", url=f"http://{HOST}:{port}",
                       port_settings={"http": "KFOPS_PROBE_PORT"})


def test_exit_during_startup_names_the_service_and_the_log(tmp_path: Path) -> None:
    port = free_port()
    spec = _spec("import sys; print('boom: cannot open database'); sys.exit(3)", port)
    with pytest.raises(KfopsError, match=r"Probe service exited during start-up with code 3.*cannot open database"):
        start_service(spec, tmp_path / "probe.log", timeout=30, grace=1)


@pytest.mark.integration
def test_a_service_runs_in_its_working_directory(tmp_path: Path) -> None:
    # http.server serves its working directory: the marker answers 200 only if the service was started there.
    (tmp_path / "marker.txt").write_text("here")
    port = free_port()
    spec = ServiceSpec(name="probe", title="Probe service", ports={"http": port}, env={}, cwd=tmp_path,
                       argv=[sys.executable, "-m", "http.server", str(port), "--bind", HOST],
                       ready_url=f"http://{HOST}:{port}/marker.txt", url=f"http://{HOST}:{port}")
    record = start_service(spec, tmp_path / "probe.log", timeout=10, grace=1)
    stop_service(record, 1)
    assert not psutil.pid_exists(record.pid)


def test_a_hung_start_is_abandoned_and_stopped(tmp_path: Path) -> None:
    port = free_port()
    spec = _spec("import time; time.sleep(60)", port)
    started: list[int] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: object, **kwargs: object) -> subprocess.Popen:
        process = real_popen(*args, **kwargs)  # type: ignore[call-overload]
        started.append(process.pid)
        return process

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "Popen", recording_popen)
        with pytest.raises(KfopsError, match="not ready") as raised:
            start_service(spec, tmp_path / "probe.log", timeout=0.5, grace=1)
    assert "KFOPS_STARTUP_TIMEOUT" in raised.value.fix
    [pid] = started
    # The process it started (and its group) is gone: reaped, not left running.
    assert not psutil.pid_exists(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_port_in_use_names_the_port_and_the_setting(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(KfopsError, match=f"port {port} .* already in use") as raised:
            start_service(_spec("pass", port), tmp_path / "probe.log", timeout=5, grace=1)
    assert "KFOPS_PROBE_PORT" in raised.value.fix


def test_a_shells_credentials_and_runtime_settings_never_reach_a_service(monkeypatch: pytest.MonkeyPatch) -> None:
    # After `eval "$(kfops local env)"`, or with a user's cloud keys exported: SeaweedFS would add them as an admin
    # identity and log the key; MLServer and gunicorn would take their settings from the shell.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLSERVER_PARALLEL_WORKERS",
                 "GUNICORN_WORKERS"):
        monkeypatch.setenv(name, "from-the-shell")
    monkeypatch.setenv("KFOPS_SOMETHING", "kept")
    env = service_environment({"AWS_ACCESS_KEY_ID": "the-service-own"})
    assert env["AWS_ACCESS_KEY_ID"] == "the-service-own"
    assert "from-the-shell" not in env.values()
    assert env["KFOPS_SOMETHING"] == "kept"


# --- a starter killed at any moment leaves nothing running that the state dir does not know ----------------------

#: A service that says it ran (a file), then waits for the test's word (another file) before it listens.
PROBE = """
import http.server, pathlib, sys, time
root = pathlib.Path(sys.argv[1])
(root / "ran").write_text("")
while not (root / "listen").exists():
    time.sleep(0.02)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""

#: The starter: a kfops command that starts one service under the state dir's lock, with a recorder.
STARTER = """
import json, sys
from pathlib import Path
from infra.local.processes import Recorder, ServiceSpec, StateStore, start_service
state = Path(sys.argv[1])
spec = ServiceSpec(**json.loads(sys.argv[2]))
store = StateStore(state)
with store.locked():
    start_service(spec, state / "probe.log", timeout=600, grace=1, recorder=Recorder(store, store.load()))
"""


def wait_for(condition: Callable[[], object], what: str, patience: float = 60) -> None:
    """Wait for something a process does (not for time): ``patience`` only bounds a test that would hang."""
    import time

    deadline = time.monotonic() + patience
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def start_and_stop_at(failpoint: str, tmp_path: Path) -> tuple[ServiceSpec, list[psutil.Process]]:
    """Run the starter until it stops at ``failpoint``, then SIGKILL it; the spec and the service's processes as
    they were at that point."""
    import json

    from infra.local.processes import marked_processes
    from kfops.base.events import EventReader

    port = free_port()
    spec = ServiceSpec(name="probe", title="Probe service", argv=[sys.executable, "-c", PROBE, str(tmp_path),
                                                                  str(port)],
                       env={}, ports={"http": port}, ready_url=f"http://{HOST}:{port}/", url=f"http://{HOST}:{port}")
    events = tmp_path / "events.jsonl"
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path), json.dumps(spec.__dict__)],
                               env={**os.environ, "KFOPS_EVENTS": str(events), "KFOPS_FAILPOINTS": failpoint},
                               start_new_session=True)
    reader = EventReader(events)
    seen: list[str] = []
    wait_for(lambda: seen.extend(e.data["name"] for e in reader.read()) or failpoint in seen or starter.poll(),
             f"the starter reaching {failpoint}")
    assert failpoint in seen, f"the starter exited with {starter.returncode} before {failpoint}"
    service = marked_processes(tmp_path)
    os.killpg(starter.pid, signal.SIGKILL)
    starter.wait()
    return spec, service


@pytest.mark.integration
def test_a_starter_killed_before_it_recorded_the_service_leaves_nothing_running(tmp_path: Path) -> None:
    from infra.local.processes import marked_processes

    spec, waiting = start_and_stop_at("spawned:probe", tmp_path)
    assert StateStore(tmp_path).load() == {}, "killed before it recorded anything"
    assert len(waiting) == 1, "the service's process existed, waiting for the starter's go"
    psutil.wait_procs(waiting, timeout=30)
    assert not [p for p in waiting if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], \
        "the gate saw its starter die and exited"
    assert not (tmp_path / "ran").exists(), "the service itself never ran"
    assert marked_processes(tmp_path) == []
    assert port_is_free(spec.ports["http"])


@pytest.mark.integration
def test_a_starter_killed_while_the_service_starts_leaves_it_recorded(tmp_path: Path) -> None:
    from infra.local.processes import find_strays, marked_processes

    spec, _ = start_and_stop_at("starting:probe", tmp_path)
    wait_for((tmp_path / "ran").exists, "the service running")
    [record] = StateStore(tmp_path).load().values()
    assert is_running(record)
    assert {os.getpgid(p.pid) for p in marked_processes(tmp_path)} == {record.pid}
    assert find_strays(tmp_path, {"probe": record}) == []
    (tmp_path / "listen").write_text("")
    stop_service(record, grace=1)
    assert marked_processes(tmp_path) == []
    assert port_is_free(spec.ports["http"])


@pytest.mark.integration
def test_unrecorded_processes_of_a_state_dir_are_found_by_their_mark_and_stopped(tmp_path: Path) -> None:
    from infra.local.processes import Recorder, find_strays, stop_strays

    port = free_port()
    (tmp_path / "listen").write_text("")
    spec = ServiceSpec(name="probe", title="Probe service", argv=[sys.executable, "-c", PROBE, str(tmp_path),
                                                                  str(port)],
                       env={}, ports={"http": port}, ready_url=f"http://{HOST}:{port}/", url=f"http://{HOST}:{port}")
    store = StateStore(tmp_path)
    record = start_service(spec, tmp_path / "probe.log", timeout=30, grace=1, recorder=Recorder(store, {}))
    assert find_strays(tmp_path, store.load()) == []
    (tmp_path / "state.json").unlink()  # the records are gone; the process is not
    [stray] = find_strays(tmp_path, store.load())
    assert (stray.name, stray.pgid) == ("probe", record.pid)
    assert find_strays(tmp_path / "other", {}) == [], "another state dir's services are not this one's"
    stop_strays([stray], grace=1)
    assert find_strays(tmp_path, {}) == []
    assert port_is_free(port)
