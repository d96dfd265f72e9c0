"""``kfops pipeline``: compile the workflow, or run it here (``--local``) or on a cluster (``--cluster``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from kfops.base import defaults
from kfops.base.errors import WORKFLOW_STEPS, KfopsError, Step
from kfops.base.events import Event
from kfops.cli.app import console, friendly_errors, local_settings, main, state_dir_option


@main.group()
def pipeline() -> None:
    """The KFP v2 workflow: compile it, or run it on this machine or on a cluster."""


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
@click.option("--local", "where", flag_value="local", help="Run with the KFP local runner against `kfops local`.")
@click.option("--cluster", "where", flag_value="cluster",
              help="Submit to the cluster's KFP API (KFOPS_KFP_HOST, KFOPS_NAMESPACE) and follow the run.")
@state_dir_option
@click.option("--recipe", default=defaults.RECIPE, show_default=True,
              help="Dataset recipe (winequality, churn, iris).")
@click.option("--trials", type=click.IntRange(1, 500), default=defaults.MAX_TRIALS, show_default=True,
              help="Katib maxTrialCount.")
@click.option("--parallel", type=click.IntRange(1, 64), default=defaults.PARALLEL_TRIALS, show_default=True,
              help="Katib parallelTrialCount.")
@click.option("--max-failed", type=click.IntRange(0, 500), default=defaults.MAX_FAILED_TRIALS, show_default=True,
              help="Katib maxFailedTrialCount.")
@click.option("--algorithm", default="", help="Katib algorithm (random, grid, tpe, multivariate-tpe, cmaes, "
                                              "bayesianoptimization) [default: the recipe's].")
@click.option("--dataset-url", default="", help="Dataset URL [default: the recipe's bundled copy, else its URL].")
@click.option("--online", is_flag=True, help="Download the recipe's dataset from its real URL even if a copy ships.")
@click.option("--model-name", default="", help="Registered model name [default: kfops-<recipe>].")
@click.option("--protocol", type=click.Choice(["both", "v2", "v1"]), default=defaults.SERVING_PROTOCOL,
              show_default=True,
              help="Serve the champion over Open Inference v2 (MLServer), Seldon v1 (seldon-core wrapper) or both.")
@friendly_errors
def pipeline_run(where: str | None, state_dir: Path, recipe: str, trials: int, parallel: int, max_failed: int,
                 algorithm: str, dataset_url: str, online: bool, model_name: str, protocol: str) -> None:
    """Run the workflow: ingest, clean, store, tune, best params, train, register and promote, deploy."""
    from pipelines.run import RunOptions, run_cluster, run_local

    if where is None:
        raise KfopsError("say where the workflow runs", "add --local (this machine) or --cluster (the KFP API)")
    options = RunOptions(recipe=recipe, max_trials=trials, parallel_trials=parallel, max_failed_trials=max_failed,
                         algorithm=algorithm, dataset_url=dataset_url, offline=not online, model_name=model_name,
                         serving_protocol=protocol)
    if where == "cluster":
        summary = _with_progress(trials, lambda on_event: run_cluster(options, on_event=on_event))
        print_summary(summary, mlflow_url=None)
        return
    from infra.local.platform import LocalPlatform
    from infra.local.runner import new_run_dir

    options.check()
    platform = LocalPlatform(local_settings(state_dir))
    env = platform.env()
    run_dir = new_run_dir(platform.state_dir / "runs", recipe)
    summary = _with_progress(trials, lambda on_event: run_local(options, env=env, run_dir=run_dir,
                                                                on_event=on_event))
    print_summary(summary, mlflow_url=env["MLFLOW_TRACKING_URI"])
    _print_curls(platform)


def _with_progress(trials: int, run: Callable[[Callable[[Event], None]], Any]) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task("workflow", total=len(WORKFLOW_STEPS))
        trial_bar = progress.add_task("tune: trials", total=trials, visible=False)
        started: dict[str, float] = {}

        def on_event(event: Event) -> None:
            if event.kind == "step-started":
                started[event.step] = time.monotonic()
                progress.update(overall, description=f"workflow: {event.step}")
                progress.update(trial_bar, visible=event.step == Step.TUNE)
            elif event.kind in ("step-finished", "step-failed"):
                seconds = time.monotonic() - started.get(event.step, time.monotonic())
                mark = "[green]done[/]" if event.kind == "step-finished" else "[red]failed[/]"
                progress.console.print(f"  {event.step:<22} {mark}  {seconds:5.1f} s", highlight=False)
                progress.advance(overall)
            elif event.kind == "trial":
                progress.update(trial_bar, advance=1, description=f"tune: trials ({event.data.get('condition')})")

        return run(on_event)


def print_summary(summary: Any, mlflow_url: str | None, out: Console | None = None) -> None:
    """Print the run summary: its facts as a table, then every URL and path as a line of its own.

    A table folds long cells across its rows, so a URL or a path in one could not be copied; below the table each is
    printed whole on one line (a terminal narrower than the line wraps it softly, which copies as one line).
    """
    out = out or console
    out.print(summary_table(summary))
    links = summary_links(summary, mlflow_url)
    width = max(len(name) for name, _ in links) + 1
    for name, url in links:
        out.print(f"{name + ':':<{width}} {url}", soft_wrap=True, markup=False, highlight=False, emoji=False)


def summary_table(summary: Any) -> Table:
    """The run's facts (the same for both targets); its URLs and paths are :func:`summary_links`."""
    tuning, training, promotion = summary.tuning, summary.training, summary.promotion
    table = Table(title=f"Workflow finished in {summary.seconds:.1f} s ({summary.target})", title_justify="left",
                  show_header=False)
    table.add_column("what", style="bold")
    table.add_column("result", overflow="fold")  # a long model name folds rather than losing its end
    table.add_row("Tuning", f"{tuning.succeeded}/{tuning.trials} trials succeeded ({tuning.failed} failed, "
                            f"{tuning.killed} killed), {tuning.reason}, executor {tuning.executor}")
    table.add_row("Best parameters", ", ".join(f"{k}={float(v):.4g}" if _is_number(v) else f"{k}={v}"
                                               for k, v in tuning.best_params.items()))
    table.add_row(f"Best {tuning.objective_metric} (validation)", f"{tuning.objective:.4f}")
    table.add_row("Model version", f"{training.model} v{training.version} (alias challenger)")
    table.add_row("Held-out metrics", ", ".join(f"{k}={v:.4f}" for k, v in training.test_metrics.items()))
    verdict = "promoted to champion" if summary.promoted else "not promoted"
    table.add_row("Alias decision", f"{verdict}: {promotion['reason']}")
    return table


def summary_links(summary: Any, mlflow_url: str | None) -> list[tuple[str, str]]:
    """``(name, URL or path)`` for everything of the run someone may open or copy."""
    from components.summary import SUMMARY_FILE

    links = [("Champion", f"{summary.champion_uri} (version {summary.champion_version})")]
    if mlflow_url:
        links.append(("MLflow UI", f"{mlflow_url}/#/models/{summary.training.model}"))
    for protocol, url in sorted(summary.serving.endpoints.items(), reverse=True):
        links.append((f"Endpoint ({protocol})", url))
    links.append(("Run", summary.location))
    if summary.log:
        links.append(("Run log", summary.log))
    if summary.target == "local":
        links.append(("Run summary", str(Path(summary.location) / SUMMARY_FILE)))
    for name, path in summary.reports.items():
        links.append((f"{name.capitalize()} report", path))
    return links


def _print_curls(platform: Any) -> None:
    """Ready-to-paste requests for every endpoint serving the champion (with a real row of its input example)."""
    lines = example_requests(platform)
    if lines:
        console.print("Try the champion:", highlight=False)
    for line in lines:
        click.echo(f"  {line}")


def example_requests(platform: Any) -> list[str]:
    """A ``curl`` line per HTTP endpoint serving the champion, and a note per gRPC endpoint.

    Each request sends the first row of the served model's own input example, so it fits the model whatever recipe
    it was trained on.
    """
    from infra.local.serving import LocalServing
    from kfops_serving.protocols import open_inference_v2, seldon_v1

    deployed = LocalServing(platform).deployed()
    if not deployed:
        return []
    example = json.loads((Path(deployed["model"]["path"]) / "serving_input_example.json").read_text())
    row = [example["dataframe_split"]["data"][0]]
    bodies = {"v1": seldon_v1(row).decode(), "v2": open_inference_v2(row).decode()}
    lines = []
    for protocol, url in sorted(deployed["endpoints"].items(), reverse=True):
        if protocol in bodies:
            lines.append(f"curl -X POST {url} -H 'Content-Type: application/json' -d '{bodies[protocol]}'")
        else:
            lines.append(f"{protocol}: {url} (Open Inference ModelInfer; `kfops loadtest --protocol {protocol}`)")
    return lines


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
