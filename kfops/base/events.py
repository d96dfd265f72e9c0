"""Progress and failures of a running workflow, as structured events rather than log lines to parse.

A step reports what it does (started, finished, each tuning trial, a failure with its cause and fix) with
:func:`emit`. Where ``KFOPS_EVENTS`` names a file (the local runner sets it), each event is appended to it as one JSON
line; the runner follows the file and shows progress. On a cluster nobody sets it, and the runner reads the run's
state from the KFP API instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

#: Environment variable naming the events file of the current run.
EVENTS_ENV = "KFOPS_EVENTS"

Kind = Literal["step-started", "step-finished", "step-failed", "trial", "failpoint"]


@dataclass(frozen=True)
class Event:
    """One thing that happened in a run.

    Attributes:
        kind: ``step-started``, ``step-finished``, ``step-failed``, ``trial`` (a tuning trial finished) or
            ``failpoint`` (a process stopped at a fault test's failpoint, :mod:`kfops.base.failpoints`).
        step: The step it happened in (a :class:`~kfops.base.errors.Step` value).
        data: What else there is to say: a failure's ``cause`` and ``fix``; a trial's ``name``, ``condition``,
            ``reason``, ``params`` and ``observed`` metrics; a failpoint's ``name`` and ``pid``.
    """

    kind: Kind
    step: str
    data: dict[str, Any] = field(default_factory=dict)


def emit(kind: Kind, step: str, **data: Any) -> None:
    """Record an event for the runner, if one listens (``KFOPS_EVENTS`` is set); otherwise do nothing."""
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    line = json.dumps(asdict(Event(kind, str(step), data)), default=str) + "\n"
    # One write of one line in append mode: lines of concurrent writers never interleave.
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)


class EventReader:
    """Reads the events appended to a file since the last call (a partial last line waits for the next call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read(self) -> Iterator[Event]:
        """The complete events written since the previous read."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            if line.strip():
                record = json.loads(line)
                yield Event(record["kind"], record["step"], record.get("data") or {})
