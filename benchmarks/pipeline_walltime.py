"""Wall time of the whole workflow on the local target: the demo recipe with the default trials.

Starts its own platform in a temp state dir on free ports (so it never touches `make demo`'s), runs the workflow
``--runs`` times and reports each run's total and per-step times (from the steps' own events). Usage:
    .venv/bin/python benchmarks/pipeline_walltime.py [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

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
        settings = LocalSettings(state_dir=Path(tmp) / "state", s3_port=free_port(), mlflow_port=free_port(),
                                 mlserver_port=free_port(), seldon_port=free_port())
        target = LocalTarget(settings)
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

                run = run_local(RunOptions(), env=target.platform.env(), run_dir=Path(tmp) / f"run-{index}",
                                on_event=timed)
                runs.append({"wall_s": round(run.seconds, 2), "steps_s": steps, "trials": run.tuning.trials,
                             "promoted": run.promoted})
        finally:
            target.platform.down()
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                      "cold_platform_up_s": round(up_seconds, 2), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
