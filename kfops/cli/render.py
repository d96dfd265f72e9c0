"""``kfops render``: the Pulumi program under Pulumi's mock runtime, written as Kubernetes YAML."""

from __future__ import annotations

from pathlib import Path

import click

from kfops.cli.app import console, friendly_errors, main


@main.command("render")
@click.option("--stack", default="kind", show_default=True,
              help="Pulumi stack whose config (Pulumi.<stack>.yaml) to use.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for the rendered manifests (one YAML file per resource).")
@friendly_errors
def render(stack: str, out: Path) -> None:
    """Run the Pulumi program under Pulumi's mock runtime and write every resource as Kubernetes YAML."""
    from infra.cluster.render import render_stack

    with console.status(f"Rendering stack {stack!r} under Pulumi's mock runtime..."):
        written = render_stack(stack, out)
    console.print(f"Wrote {len(written)} manifest(s) for stack {stack!r} to {out}", highlight=False)
