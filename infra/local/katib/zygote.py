"""Fork server for local Katib trials of the project's trainer (``python -m infra.local.katib.zygote``).

Starting a Python interpreter and importing pandas, scikit-learn and boto3 costs seconds; a trial of a small model
costs milliseconds. This process pays the import (and loads the trial's dataset) once, then forks one child per
trial. Each child is still a separate process with its own session, exit code and log, exactly like a trial
subprocess, and a crashing trial cannot take the others down.

Protocol (JSON lines): the parent writes ``{"op": "preload", "argv": [...]}``, ``{"op": "start", "trial": name,
"argv": [...], "log": path}`` and ``{"op": "quit"}`` to stdin; this process answers ``{"op": "ready"}``,
``{"op": "started", "trial": name, "pid": n}`` and ``{"op": "exit", "trial": name, "code": n}`` on its stdout.
"""

from __future__ import annotations

import gc
import json
import os
import select
import sys
import time
import traceback
from typing import IO, Any


def _emit(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _run_trial(argv: list[str], log: str) -> None:
    """In the forked child: become a session leader, send output to the trial log, run the trainer, exit."""
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    code = 1
    try:
        from trainer.cli import main

        code = main(argv)
    except SystemExit as stop:  # argparse usage errors
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(requests_fd: int, channel: IO[str]) -> None:
    """Answer requests until ``quit`` or end of input; children are reaped as they finish.

    Requests are read from the raw file descriptor: a buffered reader could hold complete lines that ``select``
    no longer reports as readable.
    """
    children: dict[int, str] = {}
    pending = b""
    open_input = True
    while open_input or children:
        if open_input and select.select([requests_fd], [], [], 0.005)[0]:
            data = os.read(requests_fd, 65536)
            open_input = bool(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                open_input = _handle(json.loads(line), children, channel) and open_input
        elif not open_input:
            time.sleep(0.005)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            _emit(channel, {"op": "exit", "trial": children.pop(pid), "code": os.waitstatus_to_exitcode(status)})


def _handle(request: dict[str, Any], children: dict[int, str], channel: IO[str]) -> bool:
    """Carry out one request; return False once asked to quit."""
    if request["op"] == "preload":
        try:
            from trainer.cli import preload

            preload(request["argv"])
        except BaseException as error:  # the trials will report the real error themselves
            print(f"zygote: preload failed: {error}", file=sys.stderr)
        # Children would otherwise have the collector walk every inherited object, touching (and so copying)
        # most of the server's memory pages in each trial.
        gc.collect()
        gc.freeze()
        _emit(channel, {"op": "ready"})
    elif request["op"] == "start":
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_trial(request["argv"], request["log"])
        children[pid] = request["trial"]
        _emit(channel, {"op": "started", "trial": request["trial"], "pid": pid})
    elif request["op"] == "quit":
        return False
    return True


#: Forking is only safe while no BLAS/OpenMP thread pool exists; with one thread each, none is ever started.
THREAD_CAPS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def main() -> None:
    """Entry point: the protocol owns the real stdout; anything else printed goes to stderr."""
    os.environ.update(THREAD_CAPS)
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    serve(sys.stdin.fileno(), channel)


if __name__ == "__main__":
    main()
