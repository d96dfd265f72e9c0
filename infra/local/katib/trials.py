"""A local trial: its record in Katib's status shape, and the metrics it prints (Katib's StdOut collector)."""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kfops.base.upstream import katib

#: Katib's default StdOut metrics filter.
_METRIC = re.compile(katib.STDOUT_FILTER.value)


def parse_metrics(text: str, names: tuple[str, ...]) -> dict[str, list[float]]:
    """Every value of each metric in ``names`` printed as ``name=value``, in order (Katib StdOut collector)."""
    observed: dict[str, list[float]] = {}
    for line in text.splitlines():
        for match in _METRIC.finditer(line):
            name, raw = match.group(1), match.group(2)
            if name in names and raw not in ("", "+", "-", "."):
                with contextlib.suppress(ValueError):
                    observed.setdefault(name, []).append(float(raw))
    return observed


def now() -> str:
    """The current time as Katib writes it in a status."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Trial:
    """One trial of the local executor."""

    name: str
    assignments: dict[str, str]
    token: Any
    log: Path
    started: float = field(default_factory=time.monotonic)
    start_time: str = field(default_factory=now)
    completion_time: str | None = None
    condition: str = "Running"
    reason: str = "TrialRunning"
    message: str = ""
    observed: dict[str, list[float]] = field(default_factory=dict)
    exit_code: int | None = None
    seconds: float | None = None

    def objective(self, metric: str, goal: str) -> float | None:
        """Katib's objective value: the best value reported (min or max by goal), if any."""
        values = [v for v in self.observed.get(metric, []) if math.isfinite(v)]
        if not values:
            return None
        return min(values) if goal == "minimize" else max(values)

    def finish(self, condition: str, reason: str, message: str = "") -> None:
        """Record the end of the trial."""
        self.condition, self.reason, self.message = condition, reason, message
        self.completion_time = now()
        self.seconds = time.monotonic() - self.started

    def to_dict(self, metrics: tuple[str, ...]) -> dict[str, Any]:
        """The trial record of the result (see :mod:`.results`)."""
        return {
            "name": self.name,
            "condition": self.condition,
            "reason": self.reason,
            "message": self.message,
            "parameterAssignments": [{"name": k, "value": v} for k, v in self.assignments.items()],
            "observation": {"metrics": [metric_record(name, self.observed.get(name, [])) for name in metrics]},
            "startTime": self.start_time,
            "completionTime": self.completion_time,
            "exitCode": self.exit_code,
            "seconds": round(self.seconds, 4) if self.seconds is not None else None,
            "log": str(self.log),
        }


def metric_record(name: str, values: list[float]) -> dict[str, str]:
    """A metric's ``latest``/``min``/``max`` record, as in a Katib observation (``unavailable`` when never reported)."""
    if not values:
        return {"name": name, "latest": "unavailable", "min": "unavailable", "max": "unavailable"}
    return {"name": name, "latest": repr(values[-1]), "min": repr(min(values)), "max": repr(max(values))}


#: Told ``("started" | "finished", trial)`` as trials start and end.
TrialObserver = Callable[[str, Trial], None]
