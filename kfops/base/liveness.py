"""Whether a process that left its mark somewhere (a lease, a record) is still alive: host, pid and start time.

A pid alone is not an identity: pids are recycled. A pid with the time its process started is, on one host. On
another host nothing can be told from here; callers fall back to an expiry.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

#: Two readings of one process's start time differ by rounding only; a recycled pid starts seconds later at least.
_SAME_START = 1.0


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch).

    ``None`` if there is no such process, or only its zombie (it exited; its parent has not collected it yet).
    """
    try:
        import psutil
    except ImportError:  # a cluster image has no psutil: Linux's /proc tells the same
        return _proc_start_time(pid)
    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else float(process.create_time())
    except psutil.Error:
        return None


def _proc_start_time(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        if fields[0] == "Z":
            return None
        ticks = int(fields[19])
        with open("/proc/stat") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as another process can recognise it later: the host it runs on, its pid and its start time."""

    host: str
    pid: int
    started: float

    @classmethod
    def current(cls) -> ProcessIdentity:
        """This process."""
        pid = os.getpid()
        return cls(host=socket.gethostname(), pid=pid, started=process_start_time(pid) or 0.0)

    def alive(self) -> bool | None:
        """``True``/``False`` for a process of this host; ``None`` for another host's (nothing to tell from here)."""
        if self.host != socket.gethostname():
            return None
        started = process_start_time(self.pid)
        return started is not None and abs(started - self.started) < _SAME_START

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"
