"""Run a process the way a container of the cluster would run it, on this machine, without a container engine.

There is no Docker here, so a container's contract is reproduced with what Linux gives root: a private mount
namespace (``unshare --mount``), a new root directory built in a tmpfs, ``chroot`` and ``setpriv``. Inside it the
process

- runs as the container's uid and gid (8888:0 for Seldon's model pods, 1000:1000 for the project image), with no
  supplementary groups and no capabilities;
- sees a root file system with only what an image has: ``/usr`` and ``/etc`` of this machine (read-only), this
  checkout and the Python installations its virtualenvs link to (standing in for the image's ``pip install``), a fresh
  ``/tmp`` (mode 1777), ``/dev``, ``/proc`` and ``/sys``; nothing else is writable;
- starts in its working directory: the container's ``workingDir``, or the image's ``WORKDIR``, which exists, owned by
  root (``/app`` of ``trainer/Dockerfile`` is), and is read-only to the user;
- gets exactly the environment it is given (``env -i``), with ``HOME`` set as the container runtime would set it
  (``/`` for a uid the image does not know);
- may be given read-only mounts (Seldon mounts the downloaded model read-only at ``/mnt/models``) and empty writable
  directories (emptyDir volumes: KFP's ``/s3`` scratch, Katib's ``/var/log/katib``).

The network is this machine's: services the rendered object names by in-cluster URL are replaced, by the caller, with
the local services' URLs. Everything the process started is stopped through its process group.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from kfops.base.paths import REPO_ROOT

#: What of this machine's root a container's root gets: its system (read-only) and the links Debian keeps at the top.
_SYSTEM_DIRS = ("/usr", "/etc")
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
_KERNEL_DIRS = ("/dev", "/proc", "/sys")


def python_installs() -> list[Path]:
    """Where the virtualenvs' interpreters really live (``.venv/bin/python`` links there, e.g. under ``/root``)."""
    installs = {Path(os.path.realpath(sys.base_prefix))}
    for venv in (REPO_ROOT / ".venv", REPO_ROOT / ".venv-seldon"):
        config = venv / "pyvenv.cfg"
        if config.is_file():
            for line in config.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home":
                    installs.add(Path(os.path.realpath(value.strip())).parent)
    return sorted(installs)


@dataclass(frozen=True)
class Identity:
    """Who the container runs as and what its runtime would set ``HOME`` to."""

    uid: int
    gid: int
    home: str
    #: A home directory the image creates for its user (``useradd --create-home``), writable by it.
    creates_home: bool = False


#: Seldon Core's default for model pods (``runAsUser: 8888``, no group: the runtime uses gid 0). The uid has no
#: passwd entry in the images, so the runtime sets ``HOME=/``.
SELDON_MODEL_USER = Identity(8888, 0, "/")
#: ``USER 1000`` of both images (``useradd --uid 1000 --create-home kfops``).
IMAGE_USER = Identity(1000, 1000, "/home/kfops", creates_home=True)


@dataclass
class Container:
    """What to run: the command line, environment and working dir of a rendered container, and its mounts."""

    argv: Sequence[str]
    env: Mapping[str, str]
    user: Identity
    #: The working directory. None: the image's ``WORKDIR``, given as ``image_workdir``.
    workdir: str | None = None
    #: The image's ``WORKDIR`` (root-owned: read-only to the user) when the container sets no ``workingDir``.
    image_workdir: str = "/app"
    #: Container path -> host path mounted read-only.
    read_only: Mapping[str, Path] = field(default_factory=dict)
    #: Container path -> host directory mounted read-write, made writable by anyone (an emptyDir volume; the host
    #: side lets the test put in what a launcher or initializer would, and read what the process left).
    volumes: Mapping[str, Path] = field(default_factory=dict)
    #: ``PATH`` inside: the virtualenv standing in for the image's Python.
    venv: Path = REPO_ROOT / ".venv"


def require_root() -> None:
    """Fail (never skip) when the sandbox cannot be built: CI runs as root, so a skip would hide a broken contract."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        raise RuntimeError("container contract tests need root, unshare and setpriv (util-linux): run them as root, "
                           "as CI does")


def _setup_script(container: Container, root: Path) -> str:
    """The shell run as root inside the new mount namespace, ending in ``exec chroot ... setpriv ... <argv>``."""
    user = container.user
    q = shlex.quote
    lines = ["set -eu", "mount --make-rprivate /", f"mount -t tmpfs -o mode=0755 tmpfs {root}"]

    def bind(source: Path | str, target: str, read_only: bool = True) -> None:
        lines.extend([f"mkdir -p {q(f'{root}{target}')}", f"mount --rbind {q(str(source))} {q(f'{root}{target}')}"])
        if read_only:
            lines.append(f"mount -o remount,bind,ro {q(f'{root}{target}')}")

    for directory in _SYSTEM_DIRS:
        bind(directory, directory)
    for link in _SYSTEM_LINKS:
        if os.path.islink(link):
            lines.append(f"ln -s {q(os.readlink(link))} {q(f'{root}{link}')}")
    for directory in _KERNEL_DIRS:
        bind(directory, directory, read_only=False)
    for path in (REPO_ROOT, *python_installs()):
        bind(path, str(path))
    lines += [f"mkdir -p {root}/tmp {root}/var/tmp", f"chmod 1777 {root}/tmp {root}/var/tmp"]
    if user.creates_home:
        lines += [f"mkdir -p {q(f'{root}{user.home}')}", f"chown {user.uid}:{user.gid} {q(f'{root}{user.home}')}"]
    for target, source in container.read_only.items():
        bind(source, target)
    for target, source in container.volumes.items():
        # An emptyDir volume: created for the pod, writable by any user.
        source.mkdir(parents=True, exist_ok=True)
        source.chmod(0o777)
        bind(source, target, read_only=False)
    workdir = container.workdir or container.image_workdir
    # The image's WORKDIR, or a workingDir the runtime creates: owned by root, read-only to the user (unless it is
    # a path the image made writable, such as /tmp).
    lines.append(f"mkdir -p {q(f'{root}{workdir}')}")
    env = {"PATH": f"{container.venv}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": user.home, **container.env}
    assignments = " ".join(q(f"{key}={value}") for key, value in env.items())
    command = " ".join(q(part) for part in container.argv)
    inner = (f"cd {q(workdir)} && exec setpriv --reuid={user.uid} --regid={user.gid} --clear-groups "
             f"--inh-caps=-all --bounding-set=-all env -i {assignments} {command}")
    lines.append(f"exec chroot {root} /bin/sh -c {q(inner)}")
    return "\n".join(lines)


@contextmanager
def running(container: Container, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``container``'s process in its sandbox (output to ``log``); stop its whole process group on exit."""
    require_root()
    # The new root's mount point; the mounts on it exist only in the process's own mount namespace.
    stage = Path(tempfile.mkdtemp(prefix="kfops-sandbox-", dir="/var/tmp"))
    handle = log.open("wb")
    process = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                _setup_script(container, stage)],
                               stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        stop(process)
        handle.close()
        stage.rmdir()  # empty outside the namespace; rmdir (never rmtree) so nothing mounted could be touched


def stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """TERM then KILL the process group of ``process`` (its own session, so nothing else is touched)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_to_completion(container: Container, log: Path, timeout: float = 300) -> int:
    """Run ``container`` until it exits; its exit code (output in ``log``)."""
    with running(container, log) as process:
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if process.poll() is None:
            raise TimeoutError(f"{container.argv[0]} did not exit within {timeout:.0f} s; output:\n{tail(log)}")
        return int(process.returncode)


def tail(log: Path, characters: int = 4000) -> str:
    """The end of a log, for assertion messages."""
    try:
        return log.read_text(errors="replace")[-characters:]
    except FileNotFoundError:
        return ""
