"""Wall time of the whole workflow on the local target: the demo recipe, 8 trials, 2 in parallel.

Starts its own platform in a temp state dir on free ports (so it never touches `make demo`'s), runs the workflow
``--runs`` times and reports each run's total and per-step times (from the KFP local runner's log). Usage:
    .venv/bin/python benchmarks/pipeline_walltime.py [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import tempfile
import time
from datetime import datetime
from pathlib import Path

from infra.local.platform import LocalPlatform
from infra.local.processes import free_port
from infra.local.settings import LocalSettings
from pipelines.run_local import run_locally

_EVENT = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (?:Executing task '([^']+)'|Task '([^']+)' finished)")


def step_times(log: Path) -> dict[str, float]:
    started: dict[str, datetime] = {}
    seconds: dict[str, float] = {}
    for line in re.sub(r"\x1b\[[0-9;]*m", "", log.read_text()).splitlines():
        if match := _EVENT.match(line):
            moment = datetime.strptime(match.group(1), "%H:%M:%S.%f")
            if match.group(2):
                started[match.group(2)] = moment
            else:
                seconds[match.group(3)] = round((moment - started[match.group(3)]).total_seconds(), 2)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = LocalSettings(state_dir=Path(tmp) / "state", s3_port=free_port(), mlflow_port=free_port())
        local = LocalPlatform(settings)
        began = time.perf_counter()
        local.up()
        up_seconds = time.perf_counter() - began
        try:
            runs = []
            for index in range(args.runs):
                run = run_locally(local.env(), Path(tmp) / f"run-{index}", recipe="winequality", max_trials=8,
                                  parallel_trials=2)
                runs.append({"wall_s": round(run.seconds, 2), "steps_s": step_times(run.log),
                             "trials": run.tuning["trials"], "promoted": run.decision["promoted"]})
        finally:
            local.down()
    print(json.dumps({"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
                      "cold_platform_up_s": round(up_seconds, 2), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
