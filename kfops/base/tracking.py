"""MLflow connectivity shared by the steps that talk to the tracking server and registry."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from kfops.base.errors import KfopsError

#: MLflow's client retries a failing request 7 times with exponential backoff (minutes for a dead server). A step
#: talks to a server it has just checked: a few quick retries ride out a blip, and a dead server is named in seconds.
CLIENT_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


#: The environment of every MLflow server kfops runs (locally and in the cluster): no telemetry, and no job runner
#: (it forks a runner and seven huey consumers for GenAI scorer jobs kfops never submits, each ~250 MB, each another
#: SQLite client, calling back to the server on 0.0.0.0, a host the allow-list refuses).
SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def allowed_hosts(names: list[str], port: int, forwarded: bool = False) -> str:
    """The value of ``mlflow server --allowed-hosts`` for clients that call the server as ``names`` on ``port``.

    MLflow compares the whole Host header, port included, and the flag replaces its defaults (localhost and the
    private ranges) instead of adding to them. Exact ``name:port`` entries only: a wildcard such as ``localhost*``
    would let ``localhost.evil.example`` through, which is what the check is for (DNS rebinding). ``forwarded`` adds
    loopback on any port, where ``kubectl port-forward`` clients come from.
    """
    hosts = [f"{name}:{port}" for name in names]
    if forwarded:
        hosts += ["127.0.0.1:*", "localhost:*", "[[]::1]:*"]
    return ",".join(hosts)


def short_error(error: BaseException, limit: int = 160) -> str:
    """What went wrong, in one short phrase.

    A refused or dropped connection is named as such; anything else is the first line of its message, cut to
    ``limit`` characters (MLflow's own messages carry whole connection-pool reprs).
    """
    text = str(error)
    for marker, phrase in (("Connection refused", "connection refused"), ("Max retries exceeded", "no answer"),
                           ("RemoteDisconnected", "connection dropped"), ("Read timed out", "timed out"),
                           ("Connection reset", "connection reset")):
        if marker in text:
            return phrase
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


def require_tracking_server(timeout: float = 5.0) -> str:
    """Check that ``MLFLOW_TRACKING_URI`` names a reachable MLflow server before a step starts changing things.

    MLflow's client retries an unreachable server for minutes and can fail half-way through a registration; this
    check fails in seconds, before anything was written.

    Returns:
        The tracking URI.

    Raises:
        KfopsError: Not set, or the server does not answer its health check.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        raise KfopsError("MLFLOW_TRACKING_URI is not set",
                         'locally run `eval "$(kfops local env)"`; on a cluster a step reads it from ConfigMap '
                         "kfops-mlflow (a notebook: label it mlflow-server-minio: \"true\")")
    for name, value in CLIENT_RETRIES.items():
        os.environ.setdefault(name, value)
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:  # noqa: S310
                healthy = response.status == 200
        except (urllib.error.URLError, OSError) as error:
            raise KfopsError(f"MLflow tracking server {uri} is unreachable ({short_error(error)})",
                             "start it (locally: `kfops local up`) or fix MLFLOW_TRACKING_URI") from error
        if not healthy:
            raise KfopsError(f"MLflow tracking server {uri} is not healthy",
                             "read its log (locally: `kfops local logs mlflow`)")
    return uri
