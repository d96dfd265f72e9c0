"""Results of ``kfops doctor``: one line per check (ok, warn, fail), each failure with its fix."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """One check's verdict.

    Attributes:
        name: What was checked (``S3 credentials``, ``CRD experiments.kubeflow.org``...).
        status: ``ok``, ``warn`` (works, but something needs attention) or ``fail`` (a run would fail).
        message: What was found.
        fix: What to do about a warning or a failure.
    """

    name: str
    status: Status
    message: str
    fix: str = ""


def ok(name: str, message: str) -> Check:
    """A passed check."""
    return Check(name, "ok", message)


def warn(name: str, message: str, fix: str) -> Check:
    """Works, but needs attention."""
    return Check(name, "warn", message, fix)


def fail(name: str, message: str, fix: str) -> Check:
    """A run would fail."""
    return Check(name, "fail", message, fix)


def guarded(name: str, check: Callable[[], Check | list[Check]], fix: str) -> list[Check]:
    """Run ``check``; an exception it raises is that check's failure, never the end of the report."""
    try:
        result = check()
    except Exception as error:  # a preflight tool reports what broke and goes on with the next check
        return [fail(name, f"could not check: {type(error).__name__}: {str(error)[:300]}", fix)]
    return result if isinstance(result, list) else [result]


def report(checks: Iterable[Check]) -> dict[str, Any]:
    """The ``--json`` form: every check, and a summary by status."""
    listed = list(checks)
    counts = {status: sum(check.status == status for check in listed) for status in ("ok", "warn", "fail")}
    return {"checks": [asdict(check) for check in listed], "summary": counts, "ok": counts["fail"] == 0}
