"""What actually serves: the Starlette under MLServer and the MLflow server is past CVE-2026-48710's fix, and a real
MLflow server started by kfops refuses malformed Host headers instead of letting them steer its host check."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from importlib.metadata import version
from urllib.parse import urlsplit

import pytest
from packaging.version import Version

from infra.local.platform import LocalPlatform
from tests.conftest import started_platform

#: CVE-2026-48710 (GHSA-86qp-5c8j-p5mr) is fixed in Starlette 1.0.1.
FIXED = Version("1.0.1")
API = "/api/2.0/mlflow/experiments/search?max_results=1"


@pytest.mark.unit
def test_the_starlette_under_mlserver_and_mlflow_is_fixed() -> None:
    import mlflow.server.fastapi_app
    import mlserver.rest.app
    import starlette

    assert Version(version("starlette")) >= FIXED
    # The modules the servers import are the installed ones (no second, vendored Starlette).
    assert mlserver.rest.app.FastAPI.__module__.startswith("fastapi")
    assert mlflow.server.fastapi_app.__name__ == "mlflow.server.fastapi_app"
    assert Version(starlette.__version__) >= FIXED


def raw_get(port: int, host: str, path: str = API) -> int:
    """The status of a GET sent as raw bytes, so the Host header is exactly ``host``."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    yield from started_platform(tmp_path_factory)


@pytest.mark.integration
@pytest.mark.parametrize("host", [
    "evil.example",
    "evil.example/?",                       # the CVE's shape: a path in the Host header
    "evil.example/api/2.0/mlflow/",
    "127.0.0.1:{port}.evil.example",
    "127.0.0.1:{port}/../",
    "127.0.0.1:{port}@evil.example",
    "",
])
def test_a_malformed_host_header_does_not_pass_mlflows_host_check(platform: LocalPlatform, host: str) -> None:
    port = urlsplit(platform.env()["MLFLOW_TRACKING_URI"]).port
    assert port
    assert raw_get(port, f"127.0.0.1:{port}") == 200  # the allowed name, for contrast
    status = raw_get(port, host.format(port=port))
    assert status in (400, 403), (host, status)
