"""The one error type every kfops step raises for bad input or a failed dependency."""

from __future__ import annotations


class KfopsError(Exception):
    """A failure a user can act on: which step failed, on what input, and how to fix it.

    The command line prints ``str(error)`` as a single line and exits non-zero; nothing else about the failure is
    shown unless the user asks for a traceback.

    Args:
        step: The step or command that failed, e.g. ``"local up"`` or ``"ingest"``.
        cause: What was wrong, naming the input (a URL, a port, a file, a column...).
        fix: What the user should do about it.
    """

    def __init__(self, step: str, cause: str, fix: str) -> None:
        self.step = step
        self.cause = cause
        self.fix = fix
        super().__init__(f"[{step}] {cause}. Fix: {fix}")
