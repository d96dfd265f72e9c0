"""The ``kfops`` command group and what every command shares: consoles, error handling, the state dir option.

Heavy libraries (mlflow, kfp, pulumi) are imported inside the commands that need them, so that ``kfops local status``
answers in a fraction of a second.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.markup import escape

from kfops.base.errors import KfopsError, in_step

# Bound to the real streams now: the local runner redirects sys.stdout into the run log while progress is shown.
console = Console(file=sys.stdout)
err_console = Console(file=sys.stderr)

F = TypeVar("F", bound=Callable[..., Any])


class CliSettings(BaseSettings):
    """Settings of the command line itself. Each field is read from ``KFOPS_<FIELD NAME>``."""

    model_config = SettingsConfigDict(env_prefix="KFOPS_", extra="ignore", use_attribute_docstrings=True)

    debug: bool = False
    """Show the traceback of an error instead of its one-line summary."""


def friendly_errors(func: F) -> F:
    """Run a command as its step, and turn a :class:`KfopsError` into one red line on stderr and exit code 1.

    A full disk is such an error wherever it strikes (naming the disk). ``KFOPS_DEBUG=1`` keeps tracebacks.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from kfops.base.disk import disk_space, is_no_space

        # Errors name the command they happened in ("local up", "pipeline run"...), unless a step inside says more.
        command = click.get_current_context().command_path.removeprefix("kfops").strip() or "kfops"
        try:
            try:
                with in_step(command):
                    return func(*args, **kwargs)
            except OSError as error:
                if not is_no_space(error):
                    raise
                where = Path(error.filename or ".")
                raise KfopsError(f"no space left on the disk: {disk_space(where).describe()} (writing {where})",
                                 f"free space on {disk_space(where).mount} and run the command again",
                                 step=command) from error
        except KfopsError as error:
            if CliSettings().debug:
                raise
            err_console.print("[bold red]error:[/]", escape(str(error)), highlight=False, soft_wrap=True)
            sys.exit(1)

    return cast(F, wrapper)


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="KFOPS_STATE_DIR",
    default=".kfops",
    show_default=True,
    help="Directory with the local platform's data, credentials, logs and process records.",
)


def local_settings(state_dir: Path, strict: bool = True, **overrides: Any) -> Any:
    """The local target's settings: options given now, else the environment, else the last ``up``.

    Args:
        state_dir: The state dir.
        strict: Refuse an unreadable settings file of the last ``up`` (``down`` and ``status`` work without it).
        overrides: Options given now (``None``: not given).

    Raises:
        KfopsError: A value is invalid (naming its variable and option), or the last ``up``'s settings are
            unreadable.
    """
    from pydantic import ValidationError

    from infra.local.platform import remembered
    from infra.local.settings import LocalSettings

    try:
        return remembered(LocalSettings(state_dir=state_dir, **{k: v for k, v in overrides.items() if v is not None}),
                          strict)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise KfopsError(f"invalid value for {field}: {first['msg']}",
                         f"correct KFOPS_{field.upper()} or the matching option") from error


@click.group()
@click.version_option(package_name="kfops")
def main() -> None:
    """kfops: the Kubeflow MLOps workflow as software, on a cluster (Pulumi) or on this machine (local)."""
