"""MLflow connectivity shared by the steps that talk to the tracking server and registry."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request

from kfops.base.errors import KfopsError

#: MLflow's client retries a failing request 7 times with exponential backoff (minutes for a dead server). A step
#: talks to a server it has just checked: a few quick retries ride out a blip, and a dead server is named in seconds.
CLIENT_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


#: The environment of every MLflow server kfops runs (locally and in the cluster): no telemetry, and no job runner
#: (it forks a runner and seven huey consumers for GenAI scorer jobs kfops never submits, each ~250 MB, each another
#: SQLite client, calling back to the server on 0.0.0.0, a host the allow-list refuses). Custom scorers stay off
#: whatever the starting shell says: a registered @scorer carries Python source the server exec()s (MLflow's own
#: words, mlflow.environment_variables); local services inherit the caller's MLFLOW_* variables (docs/security.md).
SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
              "MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS": "false"}


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
    # MLflow's client retries a 5xx answer, then reports only that it kept getting it: an answer, not silence.
    repeated = re.search(r"too many (\d{3}) error responses", text)
    if repeated:
        return f"HTTP {repeated.group(1)} on every attempt"
    for marker, phrase in (("Connection refused", "connection refused"), ("Max retries exceeded", "no answer"),
                           ("RemoteDisconnected", "connection dropped"), ("Read timed out", "timed out"),
                           ("Connection reset", "connection reset")):
        if marker in text:
            return phrase
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


#: Experiment tag the write probe sets on MLflow's Default experiment (the time of the last probe).
WRITE_PROBE_TAG = "kfops.write_probe"


def write_refusal(uri: str, timeout: float = 5.0) -> str | None:
    """Why the MLflow server at ``uri`` cannot write its backend store, in its own words; ``None`` if it can.

    MLflow's health check answers from memory: a server whose database is read-only or on a full disk is "healthy"
    and answers every write with HTTP 503, which its client retries and then reports as no answer. One small write
    (a tag on the Default experiment), not retried, gets the server's own reason.
    """
    body = json.dumps({"experiment_id": "0", "key": WRITE_PROBE_TAG,
                       "value": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
    request = urllib.request.Request(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/set-experiment-tag",  # noqa: S310
                                     data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 - the configured tracking server
            return None
    except urllib.error.HTTPError as error:
        if error.code < 500:
            return None  # no Default experiment, no permission: not the store failing
        try:
            message = str(json.loads(error.read()).get("message", ""))
        except (ValueError, OSError, AttributeError):
            message = ""
        reason = message.strip().splitlines()[0] if message.strip() else f"HTTP {error.code}"
        return reason.removeprefix("(sqlite3.OperationalError) ")
    except (urllib.error.URLError, OSError):
        return None  # unreachable is reported as such by the caller's own checks


def require_tracking_server(timeout: float = 5.0) -> str:
    """Check that ``MLFLOW_TRACKING_URI`` names a reachable, writable MLflow server before a step changes anything.

    MLflow's client retries an unreachable server for minutes and can fail half-way through a registration; this
    check fails in seconds, before anything was written, and with the server's own reason when its store refuses
    writes (:func:`write_refusal`).

    Returns:
        The tracking URI.

    Raises:
        KfopsError: Not set, the server does not answer its health check, or it cannot write its store.
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
        refusal = write_refusal(uri, timeout)
        if refusal:
            raise KfopsError(f"MLflow tracking server {uri} cannot write its backend store: {refusal}",
                             "fix the store (locally `kfops doctor` names it; `kfops local up` restarts MLflow "
                             "once it is writable), or read the server's log")
    return uri
