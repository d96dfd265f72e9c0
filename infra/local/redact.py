"""Run a service with its output redacted: no credential value reaches its log.

``python -I -S redact.py --secrets FILE [--secrets FILE...] -- PROGRAM ARGS...`` runs the program as its child with
stdout and stderr piped through here to this process's stdout (the service's log). Every line loses the key pair
in the named files (re-read whenever one changes, so keys generated later are known too) and anything the program
prints as a key: SeaweedFS logs the access key id of every request it refuses (``attempted key '...' not found``),
which may be this platform's key (a client with new keys against a store started with the old ones) or a user's
real one. This process ignores SIGTERM and exits when the program's output ends, with its exit code, so stopping the
service's process group stops both and loses no line of the program's last words.

Standard library only, and run isolated (``-I -S``): it starts in milliseconds and imports nothing of kfops.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

REDACTED = "<redacted>"
#: Keys as programs print them: SeaweedFS's refusals, a SigV4 ``Credential=<key id>/...`` scope, and a key-shaped
#: value (16 or more key characters) after an ``access key``/``secret key`` name.
_PATTERNS = (
    (re.compile(r"(attempted key ')[^']*(')"), rf"\1{REDACTED}\2"),
    (re.compile(r"(Credential=)[^/\s,\"]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)((?:access|secret)[_ -]?(?:access[_ -]?)?key(?:[_ -]?id)?[\"']?\s*[:=]\s*[\"']?)"
                r"[A-Za-z0-9/+=]{16,}"), rf"\1{REDACTED}"),
)


class Secrets:
    """The credential values in a set of files (kfops's credentials file, SeaweedFS's identities file)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.seen: dict[Path, tuple[int, int]] = {}
        self.values: set[str] = set()

    def current(self) -> set[str]:
        """Every value seen so far (a file that changed is read again; old values are kept)."""
        for path in self.paths:
            try:
                stat = path.stat()
                changed = (stat.st_ino, stat.st_mtime_ns)  # replaced (a new inode) or rewritten
            except OSError:
                continue
            if self.seen.get(path) != changed:
                self.seen[path] = changed
                self.values |= _values(path)
        return self.values


def _values(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    found: set[str] = set()

    def walk(node: object, key: str = "") -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                walk(value, str(name))
        elif isinstance(node, list):
            for value in node:
                walk(value, key)
        elif isinstance(node, str) and len(node) >= 8 and "key" in key.lower():
            found.add(node)

    walk(data)
    return found


def redact(line: str, values: set[str]) -> str:
    """``line`` without ``values`` and without anything printed as a key."""
    for value in values:
        line = line.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        line = pattern.sub(replacement, line)
    return line


def main(argv: list[str]) -> int:
    """Entry point (see the module docstring)."""
    separator = argv.index("--")
    options, program = argv[:separator], argv[separator + 1:]
    secrets = Secrets([Path(options[index + 1]) for index, option in enumerate(options) if option == "--secrets"])
    child = subprocess.Popen(program, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Set after the start: the program keeps the default. It gets its own SIGTERM; its last lines still come.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    assert child.stdout is not None
    out = os.fdopen(sys.stdout.fileno(), "w", buffering=1, closefd=False, errors="replace")
    for raw in child.stdout:
        out.write(redact(raw.decode(errors="replace"), secrets.current()))
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
