"""Free disk space, named the way a user can act on it: the mount point, its file system, what is left, what is needed.

A full disk surfaces in many disguises (``OSError`` 28 from a write, SQLite's "database or disk is full", an object
store's internal error); every one of them should end as one line saying which disk is full and how much space the
command needs.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from kfops.base.errors import KfopsError

#: Error numbers of a write that found no room (a full disk, or a user's quota).
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: How a full disk reads in the messages of the programs kfops drives (SQLite, MLflow, SeaweedFS, Python).
_NO_SPACE_TEXTS = ("no space left on device", "database or disk is full", "disk quota exceeded")


@dataclass(frozen=True)
class DiskSpace:
    """The file system a path lives on.

    Attributes:
        path: The path asked about.
        mount: The mount point of its file system.
        fstype: The file system's type (``ext4``, ``tmpfs``...), empty where the system does not say.
        free: Bytes an unprivileged writer can still use.
        total: The file system's size in bytes.
    """

    path: Path
    mount: Path
    fstype: str
    free: int
    total: int

    def describe(self) -> str:
        """``/mnt/data (tmpfs) has 1.2 MiB free of 1.0 GiB``."""
        kind = f" ({self.fstype})" if self.fstype else ""
        return f"{self.mount}{kind} has {size(self.free)} free of {size(self.total)}"


def size(count: float) -> str:
    """Bytes as a person reads them: ``0 B``, ``512 KiB``, ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" or count >= 100 else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _mount_point(path: Path) -> Path:
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _fstype(mount: Path) -> str:
    try:
        with open("/proc/self/mounts") as mounts:
            types = {fields[1]: fields[2] for fields in (line.split() for line in mounts) if len(fields) > 2}
    except OSError:  # not Linux
        return ""
    return types.get(str(mount).replace(" ", "\\040"), "")


def disk_space(path: Path) -> DiskSpace:
    """The file system ``path`` lives (or will live) on: its nearest existing ancestor's."""
    existing = path.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    stats = os.statvfs(existing)
    mount = _mount_point(existing.resolve())
    return DiskSpace(path=path, mount=mount, fstype=_fstype(mount), free=stats.f_bavail * stats.f_frsize,
                     total=stats.f_blocks * stats.f_frsize)


def is_no_space(error: BaseException | str) -> bool:
    """Whether ``error`` (or any error it was raised from), or a message, says the disk was full."""
    if isinstance(error, str):
        return any(text in error.lower() for text in _NO_SPACE_TEXTS)
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_SPACE_ERRNOS:
            return True
        if any(text in str(seen).lower() for text in _NO_SPACE_TEXTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def not_enough_space(path: Path, needed: int, what: str, *, step: str | None = None) -> KfopsError:
    """The one error for a full disk: which one, what is left, what ``what`` needs, and the fix."""
    space = disk_space(path)
    return KfopsError(f"not enough disk space for {what}: {space.describe()} (it holds {path}); {what} needs "
                      f"{size(needed)} free",
                      f"free at least {size(max(needed - space.free, 1))} on {space.mount}, or move the state dir "
                      "to another disk (--state-dir / KFOPS_STATE_DIR)", step=step)


def require_space(path: Path, needed: int, what: str) -> None:
    """Refuse to start ``what`` with less than ``needed`` bytes free where ``path`` lives.

    Raises:
        KfopsError: Not enough space (see :func:`not_enough_space`).
    """
    if disk_space(path).free < needed:
        raise not_enough_space(path, needed, what)
