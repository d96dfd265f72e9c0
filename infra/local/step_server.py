"""Fork server for the workflow's local steps (``python -m infra.local.step_server SOCKET``).

KFP's local runner starts every step as ``python3 -m kfp.dsl.executor_main ...`` in a fresh interpreter, and a step
imports KFP, MLflow, scikit-learn and pandas before it does anything: 4 to 7 s each, eight times a run. This process
pays those imports once; each step is then a child forked from it, with the step's own arguments, environment,
working directory, standard streams, session and exit code, exactly as the subprocess it replaces. The thin client
(:mod:`infra.local.step_client`) stands in for ``python3`` in the step's command line and hands its request and its
file descriptors over a Unix socket. A client that disappears (its run was stopped) takes its step down with it.

Protocol on the socket, one connection per step: the client sends a JSON request ``{"argv", "env", "cwd"}`` with
its stdin, stdout and stderr as ancillary file descriptors; the server answers with the step's exit code as text.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import runpy
import select
import signal
import socket
import sys
import traceback

from kfops_serving.scoring import MODEL_LOAD_IMPORTS

#: What the steps import: loaded once here, shared copy-on-write by every forked step. With what saving or loading a
#: model imports (skops walks every loaded module when it is imported: about 1 s, paid by train, register-and-promote
#: and deploy alike before it was loaded here), and what the tune step runs the local Katib experiment with
#: (hyperopt, the default algorithm's library: about 1 s).
PRELOAD = ("kfp.dsl.executor_main", "mlflow", *MODEL_LOAD_IMPORTS, "sklearn.ensemble", "pyarrow.parquet",
           "pyarrow.pandas_compat", "boto3", "pipelines.tasks", "hyperopt", "components.tune", "infra.local.target",
           "infra.local.katib.suggest")


def _run_step(request: dict[str, object], fds: list[int]) -> None:
    """In the forked child: take over the client's streams, environment and directory, run the step, exit."""
    os.setsid()
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    code = 1
    try:
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})  # type: ignore[call-overload]
        argv = [str(part) for part in list(request["argv"])]  # type: ignore[call-overload]
        if argv[:1] != ["-m"] or len(argv) < 2:
            raise SystemExit(f"step server: only `-m module ...` commands run here, got {argv[:2]}")
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(path: str) -> None:
    """Accept steps until stdin closes (the run is over); each connection's step is a forked child."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(8)
    children: dict[int, socket.socket] = {}
    by_connection: dict[socket.socket, int] = {}
    print("ready", flush=True)
    running = True
    while running or children:
        readable, _, _ = select.select([listener, sys.stdin, *by_connection], [], [], 0.05)
        for source in readable:
            if source is listener:
                connection, _ = listener.accept()
                message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
                request = json.loads(message.decode())
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    connection.close()
                    _run_step(request, list(fds))
                for fd in fds:
                    os.close(fd)
                children[pid] = connection
                by_connection[connection] = pid
            elif source is sys.stdin:
                running = bool(os.read(sys.stdin.fileno(), 1024))
            elif isinstance(source, socket.socket) and not source.recv(1, socket.MSG_PEEK):
                # The client is gone: its run was stopped or killed. So is its step.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(by_connection[source], signal.SIGKILL)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            connection = children.pop(pid)
            by_connection.pop(connection, None)
            with contextlib.suppress(OSError):
                connection.sendall(str(os.waitstatus_to_exitcode(status)).encode())
            connection.close()
    listener.close()


def _map_installed_packages() -> None:
    """Build MLflow's map of installed packages here, once, for every step.

    Saving or loading a model checks its requirements against it, and building it reads the file list of every
    installed distribution (0.3-0.4 s a step).
    """
    from mlflow.utils import requirements_utils

    # A private helper of MLflow 3.17.2; if a later MLflow drops it, each step builds the map itself as before.
    build = getattr(requirements_utils, "_init_modules_to_packages_map", None)
    if build is not None:
        build()


def main() -> None:
    """Import what every step needs, then serve steps on the socket named by the first argument."""
    for module in PRELOAD:
        __import__(module)
    _map_installed_packages()
    # Collected once here: the children would otherwise walk (and so copy) every inherited object on their first
    # collection.
    gc.collect()
    gc.freeze()
    serve(sys.argv[1])


if __name__ == "__main__":
    main()
