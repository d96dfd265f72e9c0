"""``kfops loadtest``: Locust against the served champion, with SLO gates, Locust's reports and a verdict file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
from rich.table import Table

from kfops.base.errors import KfopsError
from kfops.cli.app import console, friendly_errors, local_settings, main, state_dir_option
from loadtest.command import ENDPOINT_USERS, locust_binary, locust_command

#: The local service serving each endpoint.
SERVICES = {"v2": "mlserver", "v1": "seldon", "v2-grpc": "mlserver"}


@main.command("loadtest")
@state_dir_option
@click.option("--protocol", type=click.Choice(["v2", "v1", "v2-grpc", "both", "all"]), default="both",
              show_default=True, help="both: v2 and v1 over HTTP; all: also v2 over gRPC.")
@click.option("--users", type=click.IntRange(1), default=20, show_default=True, help="Requests in flight.")
@click.option("--seconds", type=click.IntRange(1), default=30, show_default=True, help="Duration per protocol.")
@click.option("--rate", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Requests per second per user (0: closed loop).")
@click.option("--malformed-share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of malformed requests; each must be answered 4xx.")
@click.option("--slo-p99-ms", type=click.FloatRange(0), default=250.0, show_default=True)
@click.option("--slo-max-failure-ratio", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--slo-min-rps", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report directory [default: <state dir>/loadtests/<time>].")
@friendly_errors
def loadtest(state_dir: Path, protocol: str, users: int, seconds: int, rate: float, malformed_share: float,
             slo_p99_ms: float, slo_max_failure_ratio: float, slo_min_rps: float, out_dir: Path | None) -> None:
    """Load-test the local champion's endpoints with Locust; exit 1 if an SLO is missed.

    Writes Locust's HTML report and CSVs per protocol next to verdict.json.
    """
    from infra.local.platform import LocalPlatform
    from infra.local.serving import LocalServing
    from infra.local.settings import HOST

    if not locust_binary().exists():
        raise KfopsError("Locust is not installed in this environment",
                         "install it with `pip install 'kfops[loadtest]'`")
    platform = LocalPlatform(local_settings(state_dir))
    deployed = LocalServing(platform).deployed()
    records = platform.records()
    if deployed is None:
        raise KfopsError(f"no champion is served from {platform.state_dir}",
                         "run the workflow first: `kfops pipeline run --local`")
    protocols = {"both": ["v2", "v1"], "all": ["v2", "v1", "v2-grpc"]}.get(protocol, [protocol])
    missing = [p for p in protocols if SERVICES[p] not in records]
    if missing:
        raise KfopsError(f"no {', '.join(missing)} endpoint is running", "start it with `kfops local up`")
    out = out_dir or platform.state_dir / "loadtests" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    model = deployed["model"]["name"]
    verdicts = {}
    for name in protocols:
        service = SERVICES[name]
        host = (f"grpc://{HOST}:{records[service].ports['grpc']}" if name == "v2-grpc" else records[service].url)
        console.print(f"Load-testing {name} at {host}: {users} users, {seconds} s...", highlight=False)
        verdict_file = out / f"{name}-verdict.json"
        subprocess.run(
            locust_command(ENDPOINT_USERS[name], host, users, seconds,
                           "--csv", str(out / name), "--html", str(out / f"{name}.html"), "--rate", str(rate),
                           "--malformed-share", str(malformed_share), "--slo-p99-ms", str(slo_p99_ms),
                           "--slo-max-failure-ratio", str(slo_max_failure_ratio), "--slo-min-rps", str(slo_min_rps),
                           "--slo-verdict-file", str(verdict_file)),
            env={**os.environ, "KFOPS_MODEL_NAME": model}, cwd=out, capture_output=True, check=False,
            timeout=seconds + 120)
        if not verdict_file.exists():
            raise KfopsError(f"Locust did not finish the {name} load test", f"read Locust's output in {out}")
        verdicts[name] = json.loads(verdict_file.read_text())
        verdict_file.unlink()
    (out / "verdict.json").write_text(json.dumps(verdicts, indent=1))
    table = Table(title=f"Load test of {model}", title_justify="left")
    for column in ("protocol", "requests", "failed", "RPS", "p50 ms", "p99 ms", "SLOs"):
        table.add_column(column)
    for name, verdict in verdicts.items():
        measured = verdict["measured"]
        table.add_row(name, str(measured["requests"]), str(measured["failures"]), f"{measured['rps']:.0f}",
                      f"{measured['p50_ms'] or 0:.0f}", f"{measured['p99_ms'] or 0:.0f}",
                      "[green]met[/]" if verdict["met"] else "[red]missed[/]")
    console.print(table)
    for name, verdict in verdicts.items():
        if not verdict["met"]:
            console.print(f"[red]{name}: SLO missed:[/] {'; '.join(verdict['missed'])}", highlight=False)
    console.print(f"Reports: {out} (per protocol: .html, _stats.csv, _failures.csv; verdict.json)", highlight=False)
    if not all(verdict["met"] for verdict in verdicts.values()):
        sys.exit(1)
