"""How the local executor starts trials: a fresh process each, or a fork of a warm trainer (:mod:`.zygote`)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kfops.base.errors import KfopsError


class SubprocessLauncher:
    """Each trial a fresh process (any command)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], log: Path) -> None:
        """Start a trial process with its output in ``log``."""
        if argv[0] in ("python", "python3"):
            argv = [sys.executable, *argv[1:]]
        with log.open("ab") as handle:
            try:
                self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=handle,
                                                    stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
            except OSError as error:
                handle.write(f"cannot start trial: {error}\n".encode())
                self.procs[name] = subprocess.Popen([sys.executable, "-c", "raise SystemExit(127)"])

    def poll(self, timeout: float) -> list[tuple[str, int]]:
        """Trials that finished within ``timeout`` seconds, with their exit codes."""
        deadline = time.monotonic() + timeout
        while True:
            done = [(name, code) for name, proc in self.procs.items() if (code := proc.poll()) is not None]
            for name, _ in done:
                del self.procs[name]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(0.002)

    def kill(self, name: str) -> None:
        """Kill a trial's whole process group."""
        proc = self.procs.get(name)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def close(self) -> None:
        """Kill and reap whatever is still running."""
        for name in list(self.procs):
            self.kill(name)
            self.procs.pop(name).wait()


class ForkLauncher:
    """Trials of the project's trainer, forked from a warm :mod:`.zygote` process."""

    def __init__(self, env: dict[str, str], preload_argv: list[str]) -> None:
        self.server = subprocess.Popen([sys.executable, "-m", "infra.local.katib.zygote"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, env=env, start_new_session=True)
        self.pids: dict[str, int] = {}
        self.pending = b""
        self.exits: list[tuple[str, int]] = []
        self.seen: set[str] = set()
        self._send({"op": "preload", "argv": preload_argv})
        self._wait_for("ready", timeout=300)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.server.stdin is not None
        try:
            self.server.stdin.write((json.dumps(message) + "\n").encode())
            self.server.stdin.flush()
        except BrokenPipeError as error:
            raise KfopsError("the local trial server exited unexpectedly",
                             "run again; if it repeats, run one trial by hand with `python -m trainer`") from error

    def _read(self, timeout: float) -> list[dict[str, Any]]:
        assert self.server.stdout is not None
        fd = self.server.stdout.fileno()
        if not select.select([fd], [], [], timeout)[0]:
            return []
        data = os.read(fd, 65536)
        if not data:
            raise KfopsError(f"the local trial server exited (code {self.server.wait()})",
                             "run again; if it repeats, run one trial by hand with `python -m trainer`")
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        return [json.loads(line) for line in lines]

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "started":
            self.pids[message["trial"]] = message["pid"]
        elif op == "exit":
            self.pids.pop(message["trial"], None)
            self.exits.append((message["trial"], message["code"]))
        self.seen.add(op)

    def _wait_for(self, op: str, timeout: float) -> None:
        # Every message of a read is dispatched: one read can hold the awaited answer and another trial's exit.
        self.seen.discard(op)
        deadline = time.monotonic() + timeout
        while op not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KfopsError(f"the local trial server did not answer {op!r} within {timeout:.0f} s",
                                 "check that the dataset is reachable and run again")
            for message in self._read(remaining):
                self._dispatch(message)

    def start(self, name: str, argv: list[str], log: Path) -> None:
        """Fork a trial; ``argv`` is the full trial command (``python -m trainer ...``)."""
        self._send({"op": "start", "trial": name, "argv": argv[3:], "log": str(log)})
        self._wait_for("started", timeout=60)

    def poll(self, timeout: float) -> list[tuple[str, int]]:
        """Trials that finished within ``timeout`` seconds, with their exit codes."""
        deadline = time.monotonic() + timeout
        while not self.exits:
            remaining = deadline - time.monotonic()
            for message in self._read(max(remaining, 0)):
                self._dispatch(message)
            if remaining <= 0:
                break
        done, self.exits = self.exits, []
        return done

    def kill(self, name: str) -> None:
        """Kill a forked trial (a session leader, so its whole group)."""
        pid = self.pids.get(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def close(self) -> None:
        """Kill running trials and stop the server."""
        for name in list(self.pids):
            self.kill(name)
        with contextlib.suppress(KfopsError):
            self._send({"op": "quit"})
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()


def is_trainer_command(command: tuple[str, ...]) -> bool:
    """Whether a trial command runs the project's trainer (``python -m trainer ...``), which can be forked."""
    return len(command) > 3 and command[0] in ("python", "python3") and command[1:3] == ("-m", "trainer")
