"""The ``kfops`` command line.

Heavy libraries (mlflow, kfp, pulumi) are imported inside the commands that need them, so that ``kfops local status``
answers in a fraction of a second.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kfops.base.errors import KfopsError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Turn a :class:`KfopsError` into one red line on stderr and exit code 1 (``KFOPS_DEBUG=1`` keeps tracebacks)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KfopsError as error:
            import os

            if os.environ.get("KFOPS_DEBUG"):
                raise
            err_console.print("[bold red]error:[/]", escape(str(error)), highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="KFOPS_STATE_DIR",
    default=".kfops",
    show_default=True,
    help="Directory with the local platform's data, credentials, logs and process records.",
)


def _settings(state_dir: Path, **overrides: Any) -> Any:
    from pydantic import ValidationError

    from infra.local.platform import remembered
    from infra.local.settings import LocalSettings

    try:
        # Options given now win; anything else comes from the environment or, failing that, the last `up`.
        return remembered(LocalSettings(state_dir=state_dir, **{k: v for k, v in overrides.items() if v is not None}))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise KfopsError("settings", f"invalid value for {field}: {first['msg']}",
                         f"correct KFOPS_{field.upper()} or the matching option") from error


@click.group()
@click.version_option(package_name="kfops")
def main() -> None:
    """kfops: the Kubeflow MLOps workflow as software, on a cluster (Pulumi) or on this machine (local)."""


@main.group()
def local() -> None:
    """The embedded local platform: SeaweedFS (S3), MLflow and the serving runtimes, on 127.0.0.1."""


def _status_table(statuses: list[Any]) -> Table:
    table = Table(title="kfops local platform", title_justify="left")
    for column in ("service", "state", "endpoint", "pid"):
        table.add_column(column, overflow="fold")
    colours = {"running": "green", "unhealthy": "yellow", "crashed": "red"}
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

    target = LocalTarget(_settings(state_dir, s3_port=s3_port, mlflow_port=mlflow_port))
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

    platform = LocalPlatform(_settings(state_dir))
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

    statuses = LocalPlatform(_settings(state_dir)).status()
    if not statuses:
        console.print("The local platform is not running. Start it with: kfops local up")
        sys.exit(3)
    console.print(_status_table(statuses))
    from infra.local.serving import LocalServing

    deployed = LocalServing(LocalPlatform(_settings(state_dir))).deployed()
    if deployed:
        model = deployed["model"]
        console.print(f"Serving {model['name']} version {model['version']}:", highlight=False)
        for protocol, url in sorted(deployed["endpoints"].items(), reverse=True):
            console.print(f"  {protocol}: {url}", highlight=False)
    console.print(f"Logs: {Path(statuses[0].log).parent}  (`kfops local logs SERVICE`)", highlight=False)
    broken = [s for s in statuses if not s.ok]
    for status in broken:
        err_console.print(f"[red]{status.title} is {status.state}[/]: see {status.log}; `kfops local up` restarts it")
    if broken:
        sys.exit(1)


@local.command("env")
@state_dir_option
@friendly_errors
def local_env(state_dir: Path) -> None:
    """Print `export` lines for S3 and MLflow clients: eval "$(kfops local env)"."""
    from infra.local.platform import LocalPlatform

    for name, value in LocalPlatform(_settings(state_dir)).env().items():
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

    platform = LocalPlatform(_settings(state_dir))
    logs_dir = platform.state_dir / "logs"
    available = sorted(path.stem for path in logs_dir.glob("*.log")) if logs_dir.is_dir() else []
    if service is not None and service not in available:
        raise KfopsError("local logs", f"no log for service {service!r} in {logs_dir}",
                         f"choose one of: {', '.join(available) or 'none yet - run `kfops local up`'}")
    for name in [service] if service else available:
        path = platform.log_path(name)
        if not service:
            console.rule(f"{name}  ({path})")
        click.echo(tail(path, lines))


@main.group()
def pipeline() -> None:
    """The KFP v2 workflow: compile it for a cluster, or run it here against the local platform."""


@pipeline.command("compile")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out"), show_default=True,
              help="Directory for the compiled workflow YAML.")
@friendly_errors
def pipeline_compile(out: Path) -> None:
    """Compile the workflow to KFP v2 IR YAML (deterministic: the same source gives the same bytes)."""
    from pipelines.compile import write_workflow

    path = write_workflow(out)
    console.print(f"Compiled workflow: {path} ({path.stat().st_size:,} bytes)", highlight=False)


@pipeline.command("run")
@click.option("--local", "run_local", is_flag=True, help="Run with the KFP local runner against `kfops local`.")
@state_dir_option
@click.option("--recipe", default="winequality", show_default=True, help="Dataset recipe (winequality, churn, iris).")
@click.option("--trials", type=click.IntRange(1, 500), default=8, show_default=True, help="Katib maxTrialCount.")
@click.option("--parallel", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Katib parallelTrialCount.")
@click.option("--max-failed", type=click.IntRange(0, 500), default=3, show_default=True,
              help="Katib maxFailedTrialCount.")
@click.option("--algorithm", default="", help="Katib algorithm (random, grid, tpe, multivariate-tpe, cmaes, "
                                              "bayesianoptimization) [default: the recipe's].")
@click.option("--dataset-url", default="", help="Dataset URL [default: the recipe's bundled copy, else its URL].")
@click.option("--online", is_flag=True, help="Download the recipe's dataset from its real URL even if a copy ships.")
@click.option("--model-name", default="", help="Registered model name [default: kfops-<recipe>].")
@click.option("--protocol", type=click.Choice(["both", "v2", "v1"]), default="both", show_default=True,
              help="Serve the champion over Open Inference v2 (MLServer), Seldon v1 (seldon-core wrapper) or both.")
@friendly_errors
def pipeline_run(run_local: bool, state_dir: Path, recipe: str, trials: int, parallel: int, max_failed: int,
                 algorithm: str, dataset_url: str, online: bool, model_name: str, protocol: str) -> None:
    """Run the workflow: ingest -> clean -> store -> tune -> best params -> train -> register and promote."""
    if not run_local:
        raise KfopsError("pipeline run", "only --local runs start from this command",
                         "on a cluster `pulumi up` deploys the workflow (README: Stand up on a cluster); "
                         "here add --local")
    from infra.local.platform import LocalPlatform
    from kfops.base.recipes import get_recipe

    get_recipe(recipe, "pipeline run")
    platform = LocalPlatform(_settings(state_dir))
    env = platform.env()
    run_dir = platform.state_dir / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{recipe}"
    run = _run_with_progress(env, run_dir, recipe=recipe, max_trials=trials, parallel_trials=parallel,
                             max_failed_trials=max_failed, algorithm=algorithm, dataset_url=dataset_url,
                             offline=not online, model_name=model_name, serving_protocol=protocol)
    console.print(_run_summary(run, env["MLFLOW_TRACKING_URI"]))
    _print_curls(platform)


def _run_with_progress(env: dict[str, str], run_dir: Path, **options: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pipelines.run_local import STEPS, run_locally

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task("workflow", total=len(STEPS))
        trials = progress.add_task("tune: trials", total=options["max_trials"], visible=False)
        started: dict[str, float] = {}

        def on_progress(event: Any) -> None:
            if event.kind == "step-started":
                started[event.step] = time.monotonic()
                progress.update(overall, description=f"workflow: {event.step}")
                progress.update(trials, visible=event.step == "tune")
            elif event.kind == "step-finished":
                seconds = time.monotonic() - started.get(event.step, time.monotonic())
                mark = "[green]done[/]" if event.status == "SUCCESS" else f"[red]{event.status}[/]"
                progress.console.print(f"  {event.step:<22} {mark}  {seconds:5.1f} s", highlight=False)
                progress.advance(overall)
            elif event.kind == "trial":
                progress.update(trials, advance=1, description=f"tune: trials ({event.trial.get('condition')})")

        return run_locally(env, run_dir, on_progress=on_progress, **options)


def _run_summary(run: Any, mlflow_url: str) -> Table:
    tuning, training, decision = run.tuning, run.training, run.decision
    table = Table(title=f"Workflow finished in {run.seconds:.1f} s", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("result", overflow="fold")  # URLs and paths must stay whole to be copied
    table.add_row("Tuning", f"{tuning['succeeded']}/{tuning['trials']} trials succeeded ({tuning['failed']} failed, "
                            f"{tuning['killed']} killed), {tuning['reason']}, executor {tuning['executor']}")
    table.add_row("Best parameters", ", ".join(f"{k}={float(v):.4g}" if _is_number(v) else f"{k}={v}"
                                               for k, v in tuning["best_params"].items()))
    table.add_row(f"Best {tuning['objective_metric']} (validation)", f"{tuning['objective']:.4f}")
    table.add_row("Model version", f"{training['model']} v{training['version']} (alias challenger)")
    table.add_row("Held-out metrics", ", ".join(f"{k}={v:.4f}" for k, v in training["test_metrics"].items()))
    verdict = "promoted to champion" if decision["promoted"] else "not promoted"
    table.add_row("Alias decision", f"{verdict}: {decision['reason']}")
    table.add_row("Champion", f"{decision['champion_uri']} -> v{decision['champion_version']}")
    table.add_row("MLflow UI", f"{mlflow_url}/#/models/{training['model']}")
    for protocol, url in sorted(run.serving["endpoints"].items(), reverse=True):
        table.add_row(f"Endpoint ({protocol})", url)
    table.add_row("Run log", str(run.log))
    return table


def _print_curls(platform: Any) -> None:
    """Ready-to-paste requests for every endpoint serving the champion (with a real row of its input example)."""
    import json as json_lib

    from infra.local.serving import LocalServing
    from serving.protocols import open_inference_v2, seldon_v1

    deployed = LocalServing(platform).deployed()
    if not deployed:
        return
    example = json_lib.loads((Path(deployed["model"]["path"]) / "serving_input_example.json").read_text())
    row = [example["dataframe_split"]["data"][0]]
    bodies = {"v1": seldon_v1(row).decode(), "v2": open_inference_v2(row).decode()}
    console.print("Try the champion:", highlight=False)
    for protocol, url in sorted(deployed["endpoints"].items(), reverse=True):
        click.echo(f"  curl -X POST {url} -H 'Content-Type: application/json' -d '{bodies[protocol]}'")


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


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


if __name__ == "__main__":
    main()
