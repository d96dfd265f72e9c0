"""Typed values from the strings command lines and Katib hand over (``--alpha=0.01``, ``algorithmSettings``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kfops.base.errors import KfopsError


def parse_named_values(raw: Mapping[str, str], types: Mapping[str, Callable[[str], Any]], *, owner: str,
                       kind: str) -> dict[str, Any]:
    """Convert ``raw`` values with the converter ``types`` names for each key.

    Args:
        raw: Name -> string value.
        types: Name -> converter (``int``, ``float``, ``str``...); names not here are refused.
        owner: What the names belong to, for errors (``"elasticnet"``, ``"algorithm 'tpe'"``).
        kind: What a name is, for errors (``"hyperparameter"``, ``"setting"``).

    Raises:
        KfopsError: An unknown name, or a value its converter refuses. ``int`` accepts ``"4.0"``, not ``"4.5"``.
    """
    parsed: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in types:
            raise KfopsError(f"{owner} has no {kind} {name!r}", f"use only: {', '.join(types) or 'none'}")
        convert = types[name]
        try:
            parsed[name] = int(float(value)) if convert is int and float(value).is_integer() else convert(value)
        except ValueError as error:
            raise KfopsError(f"{kind} {name}={value!r} is not a valid {convert.__name__}",
                             f"pass a {convert.__name__} value") from error
    return parsed
