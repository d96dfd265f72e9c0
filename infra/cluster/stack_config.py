"""A stack's config file (``Pulumi.<stack>.yaml``), read the way the Pulumi CLI hands it to the program."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from kfops.base.errors import KfopsError
from kfops.base.paths import REPO_ROOT

#: Value the program sees for an encrypted (``secure:``) stack config entry, which cannot be decrypted here.
ENCRYPTED_CONFIG_STAND_IN = "encrypted-in-stack-config"

_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def load_stack_config(stack: str, root: Path = REPO_ROOT) -> tuple[str, dict[str, str], list[str]]:
    """Read a stack's config file the way the Pulumi CLI hands it to the program.

    Args:
        stack: Stack name (``Pulumi.<stack>.yaml``).
        root: Directory with ``Pulumi.yaml``.

    Returns:
        ``(project name, config with full keys and string values, secret keys)``. Encrypted values are replaced by
        :data:`ENCRYPTED_CONFIG_STAND_IN`.

    Raises:
        KfopsError: If the stack file is missing or malformed.
    """
    stacks = sorted(path.name[len("Pulumi."):-len(".yaml")] for path in root.glob("Pulumi.*.yaml"))
    path = root / f"Pulumi.{stack}.yaml"
    if not _STACK_NAME.match(stack) or not path.is_file():
        raise KfopsError(f"no stack config for stack {stack!r} ({path.name} not found in {root})",
                         f"use one of: {', '.join(stacks) or 'none'} (or create {path.name})")
    project = str(_read_yaml(root / "Pulumi.yaml").get("name", "kfops"))
    entries = _read_yaml(path).get("config") or {}
    if not isinstance(entries, dict):
        raise KfopsError(f"{path.name}: 'config' is not a mapping", "write config as `kfops:key: value`")
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in entries.items():
        full_key = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and "secure" in value:
            config[full_key] = ENCRYPTED_CONFIG_STAND_IN
            secret_keys.append(full_key)
        elif isinstance(value, bool):
            config[full_key] = str(value).lower()
        elif isinstance(value, dict | list):
            config[full_key] = json.dumps(value)
        else:
            config[full_key] = str(value)
    return project, config, secret_keys


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise KfopsError(f"cannot read {path}: {error}", f"fix {path.name}") from error
    if not isinstance(loaded, dict):
        raise KfopsError(f"{path} is not a YAML mapping", f"fix {path.name}")
    return loaded
