"""Stands in for ``python3`` in a local step's command: the step runs as a child of the warm step server.

Run as ``python -I -S step_client.py -m kfp.dsl.executor_main ...`` (standard library only, so it starts in
milliseconds). It sends its arguments, environment and working directory, and passes its stdin, stdout and stderr,
to the server at ``$KFOPS_STEP_SERVER`` (:mod:`infra.local.step_server`), waits for the step's exit code and exits
with it. Without a server it runs the interpreter itself, exactly as the command would have.
"""

from __future__ import annotations

import json
import os
import socket
import sys

#: The variable naming the step server's socket.
SERVER_ENV = "KFOPS_STEP_SERVER"


def main() -> int:
    """Run the step through the server (or, without one, in this process's place); return its exit code."""
    argv = sys.argv[1:]
    path = os.environ.get(SERVER_ENV)
    if path:
        try:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.connect(path)
        except OSError:
            path = None
    if not path:
        os.execv(sys.executable, [sys.executable, *argv])  # noqa: S606 - the interpreter the command named
    request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    socket.send_fds(connection, [request], [0, 1, 2])
    # The connection stays open both ways: the server takes its closing for the run being stopped.
    answer = b""
    while chunk := connection.recv(64):
        answer += chunk
    return int(answer) if answer.strip() else 1


if __name__ == "__main__":
    sys.exit(main())
