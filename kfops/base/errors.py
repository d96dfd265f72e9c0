"""The one error type kfops raises for bad input or a failed dependency, and the step it is raised in.

Which step is running is context, not an argument: the step (or command) that starts work declares it once with
:func:`in_step`, and every error raised below it, in shared helpers too, names that step. So helpers such as
``s3_client`` or ``load_frame`` need no ``step`` parameter, and a step's name is spelled in one place
(:class:`Step`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum


class Step(StrEnum):
    """The workflow's steps, named as KFP names their tasks (and as the run summary and progress show them)."""

    INGEST = "ingest"
    CLEAN = "clean"
    STORE = "store"
    TUNE = "tune"
    BEST_PARAMS = "best-params"
    TRAIN = "train"
    REGISTER_AND_PROMOTE = "register-and-promote"
    DEPLOY = "deploy"


#: Steps in the order the workflow runs them.
WORKFLOW_STEPS: tuple[Step, ...] = tuple(Step)

_current: ContextVar[str] = ContextVar("kfops_step", default="kfops")


def current_step() -> str:
    """The step or command now running (``kfops`` outside any)."""
    return _current.get()


@contextmanager
def in_step(name: str) -> Iterator[None]:
    """Run a block (or, as a decorator, a function) as step or command ``name``: errors raised inside name it.

    Args:
        name: A :class:`Step`, or a command such as ``"local up"`` or ``"pulumi config"``.
    """
    token = _current.set(str(name))
    try:
        yield
    finally:
        _current.reset(token)


class KfopsError(Exception):
    """A failure a user can act on: which step failed, on what input, and how to fix it.

    The command line prints ``str(error)`` as a single line and exits non-zero; nothing else about the failure is
    shown unless the user asks for a traceback.

    Args:
        cause: What was wrong, naming the input (a URL, a port, a file, a column...).
        fix: What the user should do about it.
        step: The step or command that failed; by default the one running (see :func:`in_step`).
    """

    def __init__(self, cause: str, fix: str, *, step: str | None = None) -> None:
        self.step = str(step) if step is not None else current_step()
        self.cause = cause
        self.fix = fix
        super().__init__(f"[{self.step}] {cause}. Fix: {fix}")
