"""MLflow connectivity shared by the steps that talk to the tracking server and registry."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from kfops.base.errors import KfopsError


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
                         'locally run `eval "$(kfops local env)"`; on a cluster label the pod for the '
                         "mlflow-server-minio PodDefault")
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:  # noqa: S310
                healthy = response.status == 200
        except (urllib.error.URLError, OSError) as error:
            raise KfopsError(f"MLflow tracking server {uri} is unreachable ({error})",
                             "start it (locally: `kfops local up`) or fix MLFLOW_TRACKING_URI") from error
        if not healthy:
            raise KfopsError(f"MLflow tracking server {uri} is not healthy",
                             "read its log (locally: `kfops local logs mlflow`)")
    return uri
