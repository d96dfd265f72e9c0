"""``mlflow server`` in one process: MLflow's own command line, with its uvicorn server run in place.

``mlflow server`` imports MLflow, checks its options, migrates the store, then starts uvicorn as a child process,
which imports MLflow again and serves. With one worker (what the local target runs) that second interpreter only
repeats the first one's imports: about two seconds of CPU on every ``kfops local up``, while SeaweedFS and the
serving runtimes start on the same two cores. Here MLflow's command line runs unchanged, and the command it would
start (``python -m uvicorn ... mlflow.server.fastapi_app:app``, with MLflow's environment for it) is run by uvicorn
in this process instead. Everything MLflow checks, sets and serves is its own; only the extra process is gone.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn


def _run_in_place(cmd: list[str], *, extra_env: dict[str, str] | None = None, **_options: Any) -> NoReturn:
    """Stand-in for ``mlflow.server._exec_cmd``: run MLflow's uvicorn command line here, then exit with it."""
    if cmd[1:3] != ["-m", "uvicorn"] or "--workers" not in cmd or cmd[cmd.index("--workers") + 1] != "1":
        # Anything but one uvicorn worker (other servers, a worker pool) runs as MLflow runs it.
        os.execve(cmd[0], cmd, {**os.environ, **(extra_env or {})})  # noqa: S606 - MLflow's own command
    os.environ.update(extra_env or {})
    from uvicorn.main import main as uvicorn_main

    uvicorn_main(cmd[3:], prog_name="uvicorn")  # click: exits with uvicorn's status
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    """``mlflow server <argv>``, served by uvicorn in this process."""
    import mlflow.server
    from mlflow.cli import cli

    mlflow.server._exec_cmd = _run_in_place
    cli(["server", *(sys.argv[1:] if argv is None else argv)], prog_name="mlflow")


if __name__ == "__main__":
    main()
