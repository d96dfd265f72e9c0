"""Security checks on the local target after real runs: loopback only, private files, no credential in the open.

It runs on the session's platform after the workflow suite (so the logs and run directories have seen real runs), or
does one run of its own when it runs alone. (The fault suite runs on a platform of its own; a key SeaweedFS refuses
is checked in tests/infra/local/test_platform.py.) Local target only.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from infra.local.credentials import load_or_create
from infra.local.platform import LocalPlatform
from infra.local.serving import LocalServing
from kfops_serving.protocols import served_model_name
from pipelines.run import RunOptions, run_local

pytestmark = pytest.mark.e2e

OPTIONS = {"recipe": "winequality", "max_trials": 2, "parallel_trials": 2, "max_failed_trials": 1,
           "model_name": "e2e-winequality", "offline": True, "serving_protocol": "both"}


@pytest.fixture(scope="module")
def platform(target: str, local_platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> LocalPlatform:
    """The session platform with both runtimes serving a champion (one run of its own if nothing serves yet)."""
    if target != "local":
        pytest.skip("inspects local processes and files: local target only")
    served = {name for name, record in local_platform.records().items() if record.name in ("mlserver", "seldon")}
    if served != {"mlserver", "seldon"}:
        run_local(RunOptions(**OPTIONS), env=local_platform.env(), run_dir=tmp_path_factory.mktemp("security-run"))
    return local_platform


def service_processes(platform: LocalPlatform) -> Iterator[tuple[str, psutil.Process]]:
    """Every process of every service the platform started (each service is one process group)."""
    records = platform.records()
    for proc in psutil.process_iter():
        try:
            group = os.getpgid(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
        for name, record in records.items():
            if group == record.pid:
                yield name, proc


def loopback(address: str) -> bool:
    """127.0.0.0/8 or ::1, also as an IPv4-mapped IPv6 address (gRPC's ``[::ffff:127.0.0.1]``)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def test_every_service_listens_on_loopback_only(platform: LocalPlatform) -> None:
    listening: dict[str, set[tuple[str, int]]] = {}
    for name, proc in service_processes(platform):
        try:
            sockets = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        listening.setdefault(name, set()).update(
            (conn.laddr.ip, conn.laddr.port) for conn in sockets if conn.status == psutil.CONN_LISTEN)
    assert set(listening) >= {"seaweedfs", "mlflow", "mlserver", "seldon"}, listening
    for name, addresses in listening.items():
        assert addresses, f"{name} listens nowhere: the check would prove nothing"
        exposed = {address for address in addresses if not loopback(address[0])}
        assert not exposed, f"{name} listens beyond loopback on {sorted(exposed)}"


#: Files whose mode their writer sets whatever the umask: SeaweedFS 4.48 chmods each volume's info file (``.vif``,
#: volume metadata, no object data) to 0644, observed with the service started under umask 077. They sit in the
#: 0700 data dir, which this test also checks.
FORCED_MODES = ("seaweedfs/data/*.vif",)


def test_state_is_private_to_its_owner(platform: LocalPlatform) -> None:
    root = platform.state_dir
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(platform.credentials_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "seaweedfs" / "data").stat().st_mode) == 0o700
    exposed = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink() or any(path.relative_to(root).match(pattern) for pattern in FORCED_MODES):
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            exposed.append(f"{path.relative_to(root)} {mode:o}")
    assert not exposed, f"readable or writable by others under {root}: {exposed[:10]}"


def credential_files(platform: LocalPlatform) -> set[Path]:
    """The files whose job is to hold the credentials: kfops's own and SeaweedFS's identity config."""
    return {platform.credentials_path, platform.state_dir / "seaweedfs" / "s3.json"}


def test_no_credential_value_in_logs_runs_or_models(platform: LocalPlatform,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    creds = load_or_create(platform.credentials_path)
    secrets = {"access key": creds.access_key_id.encode(), "secret key": creds.secret_access_key.encode()}
    # The state dir (service logs, MLflow's database, stored objects and models, serving settings) and every run
    # directory of this session: all under pytest's base temp.
    allowed = credential_files(platform)
    scanned, found = 0, []
    for path in tmp_path_factory.getbasetemp().rglob("*"):
        if path in allowed or path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        scanned += 1
        found += [f"{what} in {path}" for what, value in secrets.items() if value in data]
    assert scanned > 20, "nothing to scan: the check would prove nothing"
    assert any((platform.state_dir / "logs").iterdir())
    assert not found, found


def test_no_credential_value_in_served_metadata_or_status(platform: LocalPlatform) -> None:
    import requests

    creds = load_or_create(platform.credentials_path)
    records = platform.records()
    v2 = records["mlserver"].url
    texts = [requests.get(f"{v2}/v2/models/{served_model_name('e2e-winequality')}", timeout=10).text,
             requests.get(f"{v2}/v2", timeout=10).text,
             repr(platform.status()), repr(LocalServing(platform).deployed())]
    assert '"name"' in texts[0], texts[0]
    for text in texts:
        assert creds.secret_access_key not in text
        assert creds.access_key_id not in text
