"""``kfops doctor`` on the local target: a running platform passes, and each failure names its fix."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.local.doctor import check_disk, check_modes, check_ports, check_pythons, check_services, check_store
from infra.local.platform import LocalPlatform
from infra.local.processes import ServiceRecord, StateStore
from infra.local.settings import LocalSettings
from kfops.base.checks import Check


def named(found: list[Check], name: str) -> Check:
    [check] = [check for check in found if check.name == name]
    return check


@pytest.mark.unit
def test_a_port_held_by_another_process_names_the_option_that_moves_it(
        make_settings: Callable[..., LocalSettings]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        settings = make_settings(mlflow_port=holder.getsockname()[1])
        check = named(check_ports(LocalPlatform(settings)), f"port {settings.mlflow_port} (mlflow)")
    assert check.status == "fail"
    assert "--mlflow-port" in check.fix
    assert "KFOPS_MLFLOW_PORT" in check.fix


@pytest.mark.unit
def test_open_state_dir_and_credentials_are_failures(make_settings: Callable[..., LocalSettings]) -> None:
    platform = LocalPlatform(make_settings())
    platform.state_dir.mkdir(parents=True, exist_ok=True)
    platform.state_dir.chmod(0o755)
    platform.credentials_path.write_text("{}")
    platform.credentials_path.chmod(0o644)
    found = check_modes(platform)
    assert named(found, "state dir mode").fix == f"chmod 700 {platform.state_dir}"
    assert named(found, "credentials file mode").fix == f"chmod 600 {platform.credentials_path}"
    platform.state_dir.chmod(0o700)
    platform.credentials_path.chmod(0o600)
    assert {check.status for check in check_modes(platform)} == {"ok"}


@pytest.mark.unit
def test_low_disk_space_fails(tmp_path: Path) -> None:
    import shutil

    import infra.local.doctor as doctor

    free = shutil.disk_usage(tmp_path).free
    assert check_disk(tmp_path).status == "ok"
    original = doctor.DISK_FAIL_BYTES
    doctor.DISK_FAIL_BYTES = free * 10
    try:
        check = check_disk(tmp_path)
    finally:
        doctor.DISK_FAIL_BYTES = original
    assert check.status == "fail"
    assert "--state-dir" in check.fix


@pytest.mark.unit
def test_a_missing_seldon_environment_is_a_failure(make_settings: Callable[..., LocalSettings],
                                                   tmp_path: Path) -> None:
    check = named(check_pythons(make_settings(seldon_python=tmp_path / "none" / "python")), "Python of .venv-seldon")
    assert check.status == "fail"
    assert "make venv" in check.fix


@pytest.mark.unit
def test_a_crashed_service_is_a_failure_a_platform_never_started_a_warning(
        make_settings: Callable[..., LocalSettings]) -> None:
    platform = LocalPlatform(make_settings())
    assert {check.status for check in check_services(platform)} == {"warn"}
    platform.state_dir.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    StateStore(platform.state_dir).save({"mlflow": ServiceRecord(
        name="mlflow", pid=dead.pid, create_time=0.0, ports={"http": 1}, url="http://127.0.0.1:1",
        ready_url="http://127.0.0.1:1/health", log="", started_at=0.0)})
    check = named(check_services(platform), "mlflow")
    assert check.status == "fail"
    assert "kfops local logs mlflow" in check.fix


@pytest.mark.integration
def test_a_running_platform_passes_and_the_cli_exits_0(local_platform: LocalPlatform) -> None:
    settings = local_platform.settings
    result = subprocess.run([str(Path(sys.executable).parent / "kfops"), "doctor", "--json", "--state-dir",
                             str(settings.state_dir)], capture_output=True, text=True, check=False,
                            env={**os.environ, **{f"KFOPS_{name.upper()}": str(getattr(settings, name))
                                                  for name in ("s3_port", "mlflow_port", "mlserver_port",
                                                               "seldon_port")}})
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses["seaweedfs"] == statuses["mlflow"] == statuses["S3 credentials"] == "ok"
    assert statuses["MLflow artifact store"] == statuses["buckets"] == "ok"


@pytest.mark.integration
def test_credentials_the_store_refuses_are_a_failure(local_platform: LocalPlatform) -> None:
    class WrongKeys:
        def env(self) -> dict[str, str]:
            return {**local_platform.env(), "AWS_SECRET_ACCESS_KEY": "not-the-key"}

    [check] = check_store(WrongKeys())  # type: ignore[arg-type]
    assert check.status == "fail"
    assert check.name == "S3 credentials"
    assert "not-the-key" not in check.message
