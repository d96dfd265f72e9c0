"""Wall time of the whole workflow on the local target: the demo recipe with the default trials.

Starts its own platform in a temp state dir on free ports (so it never touches `make demo`'s), runs the workflow
``--runs`` times and reports each run's total and per-step times (from the steps' own events), as JSON and a plot
in ``benchmarks/results/``. Usage:
    .venv/bin/python benchmarks/pipeline_walltime.py [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bar_chart, output_dir, progress, publish
from infra.local.processes import free_port
from infra.local.settings import LocalSettings
from infra.local.target import LocalTarget
from kfops.base.events import Event
from pipelines.run import RunOptions, run_local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        def settings(name: str) -> LocalSettings:
            # A private template cache: the first platform of the run finds none, as on a machine's first `up`.
            return LocalSettings(state_dir=Path(tmp) / name, cache_dir=Path(tmp) / "cache", s3_port=free_port(),
                                 mlflow_port=free_port(), mlserver_port=free_port(), seldon_port=free_port())

        first = LocalTarget(settings("first"))
        progress("starting a private local platform, as on the machine's first `up` (no MLflow template yet)")
        began = time.perf_counter()
        first.up()
        first_up_seconds = time.perf_counter() - began
        first.platform.down()
        target = LocalTarget(settings("state"))
        progress("starting another in a new state dir (the demo's case: the template exists)")
        began = time.perf_counter()
        target.up()
        up_seconds = time.perf_counter() - began
        try:
            runs = []
            for index in range(args.runs):
                started: dict[str, float] = {}
                steps: dict[str, float] = {}

                def timed(event: Event, started: dict[str, float] = started, steps: dict[str, float] = steps) -> None:
                    if event.kind == "step-started":
                        started[event.step] = time.perf_counter()
                    elif event.kind == "step-finished":
                        steps[event.step] = round(time.perf_counter() - started[event.step], 2)

                progress(f"run {index + 1} of {args.runs}")
                run = run_local(RunOptions(), env=target.platform.env(), run_dir=Path(tmp) / f"run-{index}",
                                on_event=timed)
                runs.append({"wall_s": round(run.seconds, 2), "steps_s": steps, "trials": run.tuning.trials,
                             "promoted": run.promoted})
        finally:
            target.platform.down()
    record = {"command": " ".join(["benchmarks/pipeline_walltime.py", *sys.argv[1:]]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "first_platform_up_s": round(first_up_seconds, 2), "cold_platform_up_s": round(up_seconds, 2),
              # `make demo` on a new state dir: `local up`, then the first run ends with its deploy's smoke test
              # (a prediction on each protocol).
              "demo_first_prediction_s": round(up_seconds + runs[0]["wall_s"], 2), "runs": runs}
    out = output_dir("pipeline")
    (out / "pipeline.json").write_text(json.dumps(record, indent=2))
    rows = {"platform up (machine's first)": first_up_seconds, "platform up (new state dir)": up_seconds,
            "demo: first prediction": record["demo_first_prediction_s"]}
    for index, run in enumerate(runs, 1):
        rows[f"run {index}: total"] = run["wall_s"]
        rows.update({f"run {index}: {step}": seconds for step, seconds in run["steps_s"].items()})
    bar_chart(rows, title=f"local workflow wall time ({record['machine']})", unit="s", path=out / "pipeline.png",
              highlight=[label for label in rows if label.endswith("total")])
    print(json.dumps(record, indent=2))
    publish(out, "pipeline")
    print(f"written: {out / 'pipeline.json'} and {out / 'pipeline.png'}")


if __name__ == "__main__":
    main()
