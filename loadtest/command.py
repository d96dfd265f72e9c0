"""How every caller runs the one locustfile: the command line, and the user class and host of each endpoint.

Used by ``kfops loadtest``, the benchmarks and the tests, so the Locust they run is started the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
#: The Locust user class for each endpoint a run reports (``RunSummary.serving.endpoints``).
ENDPOINT_USERS = {"v2": "OpenInferenceUser", "v1": "SeldonUser", "v2-grpc": "OpenInferenceGrpcUser"}
#: Where an HTTP endpoint's path starts: Locust's ``--host`` is the URL before it.
_PATH_STARTS = {"v2": "/v2/", "v1": "/api/"}


def locust_binary() -> Path:
    """The ``locust`` executable of this environment (it may not exist: Locust is the ``loadtest`` extra)."""
    return Path(sys.executable).parent / "locust"


def locust_command(user: str, host: str, users: int, seconds: int, *extra: str) -> list[str]:
    """Headless Locust with ``users`` users all started at once for ``seconds``, printing only its summary."""
    return [str(locust_binary()), "-f", str(LOCUSTFILE), user, "--headless", "-u", str(users), "-r", str(users),
            "-t", f"{seconds}s", "--host", host, "--only-summary", *extra]


def endpoint_host(endpoint: str, url: str) -> str:
    """Locust's ``--host`` for an endpoint URL: the base of an HTTP endpoint, a ``grpc://`` address as it is."""
    start = _PATH_STARTS.get(endpoint)
    return url.split(start)[0] if start else url
