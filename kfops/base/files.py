"""Writing files so that readers see the old content or the new, never half, and nobody else can read them."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The umask of everything kfops writes into its state dir: files 0600, directories 0700.
PRIVATE_UMASK = 0o077


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Create files and directories readable by their owner only, while the block runs.

    Processes started in the block inherit it: logs, downloaded models, run artifacts and the services' own data all
    live next to the credentials.
    """
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def write_private(path: Path, text: str) -> None:
    """Create or replace ``path`` atomically, with mode 0600 from the first byte on.

    kfops keeps credentials, process records and settings in its state dir: each is written whole or not at all, and
    readable by its owner only.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)  # O_CREAT honours the umask; an existing tmp keeps its old mode
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk, most likely: leave the old file, not a partial one beside it
        raise


def write_json(path: Path, payload: Any) -> None:
    """:func:`write_private` of ``payload`` as JSON."""
    write_private(path, json.dumps(payload, indent=2))
