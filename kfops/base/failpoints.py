"""Named points where a test stops a kfops process, to crash it exactly there or to break something meanwhile.

``KFOPS_FAILPOINTS`` lists point names, comma-separated. A process that reaches a listed point records a ``failpoint``
event (:mod:`kfops.base.events`, with its pid) and stops itself (SIGSTOP). The test then kills it (a crash at that
point) or breaks something else and lets it go on (SIGCONT). Fault tests wait for the event, never for time, so the
crash happens at the same point on every machine. Without the variable (always, outside tests) a failpoint costs an
environment lookup.
"""

from __future__ import annotations

import os
import signal

from kfops.base.errors import current_step
from kfops.base.events import emit

#: Environment variable listing the failpoints that stop the process (set by fault tests only).
FAILPOINTS_ENV = "KFOPS_FAILPOINTS"


def failpoint(name: str) -> None:
    """Stop here if ``name`` is one of the failpoints ``KFOPS_FAILPOINTS`` lists (see the module docstring)."""
    wanted = os.environ.get(FAILPOINTS_ENV)
    if not wanted or name not in wanted.split(","):
        return
    emit("failpoint", current_step(), name=name, pid=os.getpid())
    os.kill(os.getpid(), signal.SIGSTOP)
