"""Per-window statistics of a long run (``--windows-file``): how latency and failures move over time.

Locust's own CSV history keeps running totals; a soak test needs each window on its own (the p99 of the last minute
against the first, failures per minute). Every request is counted in the window it completed in, per request name.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from locust import events


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--windows-file", default="", help="Write per-window statistics to this JSON file.")
    parser.add_argument("--window-seconds", type=float, default=60.0, help="Length of one statistics window.")


class Windows:
    """Response times and failures bucketed by completion time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.times: dict[tuple[int, str], list[float]] = defaultdict(list)
        self.failures: dict[tuple[int, str], int] = defaultdict(int)

    def add(self, name: str, response_time: float, failed: bool) -> None:
        """Count one completed request."""
        window = int((time.monotonic() - self.started) // self.seconds)
        self.times[(window, name)].append(response_time)
        if failed:
            self.failures[(window, name)] += 1

    def summary(self) -> list[dict[str, Any]]:
        """One entry per window and request name: requests, failures, p50 and p99 in ms."""
        rows = []
        for (window, name), times in sorted(self.times.items()):
            ordered = sorted(times)
            rows.append({"window": window, "start_s": window * self.seconds, "name": name, "requests": len(ordered),
                         "failures": self.failures[(window, name)],
                         "p50_ms": ordered[int(0.50 * (len(ordered) - 1))],
                         "p99_ms": ordered[int(0.99 * (len(ordered) - 1))]})
        return rows


_windows: Windows | None = None


@events.test_start.add_listener
def _start(environment: Any, **_kwargs: Any) -> None:
    global _windows
    options = environment.parsed_options
    if options is not None and options.windows_file:
        _windows = Windows(options.window_seconds)


@events.request.add_listener
def _count(name: str, response_time: float, exception: BaseException | None, **_kwargs: Any) -> None:
    if _windows is not None:
        _windows.add(name, response_time, exception is not None)


@events.quitting.add_listener
def _write(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if _windows is not None and options is not None and options.windows_file:
        Path(options.windows_file).write_text(json.dumps(_windows.summary(), indent=1))
