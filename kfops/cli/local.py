"""``kfops local``: the embedded local platform (SeaweedFS, MLflow and the serving runtimes) on 127.0.0.1."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from kfops.base.errors import KfopsError
from kfops.cli.app import console, err_console, friendly_errors, local_settings, main, state_dir_option


@main.group()
def local() -> None:
    """The embedded local platform: SeaweedFS (S3), MLflow and the serving runtimes, on 127.0.0.1."""


def _status_table(statuses: list[Any]) -> Table:
    table = Table(title="kfops local platform", title_justify="left")
    for column in ("service", "state", "endpoint", "pid"):
        table.add_column(column, overflow="fold")
    colours = {"running": "green", "unhealthy": "yellow", "crashed": "red", "unrecorded": "red"}
    for status in statuses:
        colour = colours.get(status.state, "white")
        table.add_row(status.title, f"[{colour}]{status.state}[/]", status.url, str(status.pid))
    return table


@local.command("up")
@state_dir_option
@click.option("--s3-port", type=int, default=None, help="Port of the S3 gateway [default: 8333 or KFOPS_S3_PORT].")
@click.option("--mlflow-port", type=int, default=None,
              help="Port of the MLflow server [default: 5000 or KFOPS_MLFLOW_PORT].")
@friendly_errors
def local_up(state_dir: Path, s3_port: int | None, mlflow_port: int | None) -> None:
    """Start the object store and MLflow (a no-op for services already running)."""
    from infra.local.target import LocalTarget

    target = LocalTarget(local_settings(state_dir, s3_port=s3_port, mlflow_port=mlflow_port))
    platform = target.platform
    began = time.monotonic()
    with console.status("Starting the local platform...") as spinner:

        def report(message: str) -> None:
            spinner.update(message + "...")
            console.print(f"  {message}", highlight=False)

        statuses = target.up(report)
    console.print(_status_table(statuses))
    console.print(f"Platform up in {time.monotonic() - began:.1f} s. State and logs: {platform.state_dir}")
    console.print('Point clients at it: [bold]eval "$(kfops local env)"[/]   Stop it: [bold]kfops local down[/]')


@local.command("down")
@state_dir_option
@friendly_errors
def local_down(state_dir: Path) -> None:
    """Stop every local service (data, models and credentials stay in the state dir)."""
    from infra.local.platform import LocalPlatform

    platform = LocalPlatform(local_settings(state_dir, strict=False))
    stopped = platform.down(lambda message: console.print(f"  {message}", highlight=False))
    if stopped:
        console.print(f"Stopped {len(stopped)} service(s); data kept in {platform.state_dir}.")
    else:
        console.print(f"Nothing running for {platform.state_dir}.")


@local.command("status")
@state_dir_option
@friendly_errors
def local_status(state_dir: Path) -> None:
    """Show each service, whether it answers, its endpoint and its log file. Exit code 1 if any is not healthy."""
    from infra.local.platform import LocalPlatform

    platform = LocalPlatform(local_settings(state_dir, strict=False))
    statuses = platform.status()
    if not statuses:
        console.print("The local platform is not running. Start it with: kfops local up")
        sys.exit(3)
    console.print(_status_table(statuses))
    from infra.local.serving import LocalServing

    deployed = LocalServing(platform).deployed()
    if deployed:
        model = deployed["model"]
        console.print(f"Serving {model['name']} version {model['version']}:", highlight=False)
        for protocol, url in sorted(deployed["endpoints"].items(), reverse=True):
            console.print(f"  {protocol}: {url}", highlight=False)
    console.print(f"Logs: {platform.state_dir / 'logs'}  (`kfops local logs SERVICE`)", highlight=False)
    broken = [s for s in statuses if not s.ok]
    for status in broken:
        fix = ("`kfops local down` stops it" if status.state == "unrecorded" else
               f"see {status.log}; `kfops local up` restarts it")
        err_console.print(f"[red]{status.title} is {status.state}[/]: {fix}")
    if broken:
        sys.exit(1)


@local.command("env")
@state_dir_option
@friendly_errors
def local_env(state_dir: Path) -> None:
    """Print `export` lines for S3 and MLflow clients: eval "$(kfops local env)"."""
    from infra.local.platform import LocalPlatform

    for name, value in LocalPlatform(local_settings(state_dir)).env().items():
        click.echo(f"export {name}={shlex.quote(value)}")


@local.command("logs")
@state_dir_option
@click.argument("service", required=False)
@click.option("-n", "--lines", type=int, default=50, show_default=True, help="Lines to show per service.")
@friendly_errors
def local_logs(state_dir: Path, service: str | None, lines: int) -> None:
    """Show the end of a service's log (all services when none is named)."""
    from infra.local.platform import LocalPlatform
    from infra.local.processes import tail

    platform = LocalPlatform(local_settings(state_dir))
    logs_dir = platform.state_dir / "logs"
    available = sorted(path.stem for path in logs_dir.glob("*.log")) if logs_dir.is_dir() else []
    if service is not None and service not in available:
        raise KfopsError(f"no log for service {service!r} in {logs_dir}",
                         f"choose one of: {', '.join(available) or 'none yet - run `kfops local up`'}")
    for name in [service] if service else available:
        path = platform.log_path(name)
        if not service:
            console.rule(f"{name}  ({path})")
        click.echo(tail(path, lines))
