"""``kfops doctor``: check the target before a run, one line per check, with the fix for each failure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.markup import escape

from kfops.cli.app import console, friendly_errors, local_settings, main, state_dir_option

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


@main.command("doctor")
@click.option("--stack", default=None, help="Check the cluster of this Pulumi stack (its kube context) instead of "
                                            "the local platform.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-probe", is_flag=True, help="Cluster: skip the probe Job (then nothing at all is created).")
@state_dir_option
@friendly_errors
def doctor(stack: str | None, as_json: bool, no_probe: bool, state_dir: Path) -> None:
    """Say what is wrong before a run fails, and how to fix it (exit 1 if any check fails)."""
    from kfops.base.checks import report

    if stack is None:
        from infra.local.doctor import run_checks

        checks = run_checks(local_settings(state_dir))
        title = f"local platform ({state_dir})"
    else:
        from infra.cluster import doctor as cluster

        scope = cluster.from_stack(stack)
        checks = cluster.run_checks(cluster.api_client(scope), scope, probe=not no_probe)
        title = f"stack {stack} (namespace {scope.namespace}, context {scope.context or 'current'})"
    result = report(checks)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        console.print(f"kfops doctor: {escape(title)}")
        for check in checks:
            console.print(f"[{_STYLE[check.status]}]{check.status:<4}[/] {escape(check.name)}: {escape(check.message)}",
                          highlight=False, soft_wrap=True)
            if check.fix:
                console.print(f"     fix: {escape(check.fix)}", highlight=False, soft_wrap=True)
        summary = result["summary"]
        console.print(f"{summary['ok']} ok, {summary['warn']} warnings, {summary['fail']} failed")
    sys.exit(0 if result["ok"] else 1)
