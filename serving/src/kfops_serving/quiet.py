"""Warnings of the pinned serving stack that tell a kfops user nothing they can act on."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def mlserver_import_warnings_silenced() -> Iterator[None]:
    """Import MLServer inside this block: without the deprecation warning Starlette 1.10 gives on its import.

    kfops installs Starlette 1.10 over MLServer 1.7.1's pin (CVE-2026-48710, docs/security.md); MLServer 1.7.1 imports
    a status-code name that release deprecates, and the warning reached `kfops local up`'s terminal and every log.
    Only that warning is silenced, and only while MLServer is imported.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"'HTTP_\d{3}_\w+' is deprecated", category=UserWarning)
        yield
