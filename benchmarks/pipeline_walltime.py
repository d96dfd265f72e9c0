"""Wall time of the whole workflow on the local target: the demo recipe with the default trials.

First ``make demo`` itself, three times, as a user runs it: ``kfops local up`` then ``kfops pipeline run --local``
(the commands of the Makefile's ``demo`` recipe, as processes), each on a new state dir on free ports, the first
with an empty kfops cache (as on a machine's first ``make demo``), the second with the cache the first one filled,
the third as the second but with the serving runtimes started by the deploy step instead of at ``up``
(``KFOPS_PRESTART_SERVING=false``). For each: how long ``local up`` took and when the first prediction was answered,
counted from the start of ``local up`` to the moment ``pipeline run`` reports its deploy step done (that step ends
with a smoke test on each protocol).

Then, in this process, a platform as on a machine's first ``up`` (a private, empty cache), another in a new state
dir, and ``--runs`` runs of the workflow on it, with each run's total and per-step times (from the steps' own events).
Everything runs in temp state dirs on free ports, so it never touches a running ``make demo``. Writes JSON and a plot
to ``benchmarks/results/`` and publishes them to ``benchmarks/figures/pipeline.*`` (unless ``--no-publish``). Usage:
    .venv/bin/python benchmarks/pipeline_walltime.py [--runs 2] [--trials N] [--no-publish]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BIN, bar_chart, output_dir, progress, publish
from infra.local.processes import free_port
from infra.local.settings import LocalSettings
from infra.local.target import LocalTarget
from kfops.base.events import Event
from pipelines.run import RunOptions, run_local

#: The line ``kfops pipeline run`` prints when the deploy step (and with it its smoke test) is done.
DEPLOY_DONE = re.compile(r"^\s*deploy\s+done\s+[0-9.]+\s*s\s*$")


def demo_env(state_dir: Path, cache_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    """The environment of a ``make demo`` on ``state_dir`` with the kfops cache ``cache_dir``, on ``ports``."""
    return {**os.environ, "KFOPS_STATE_DIR": str(state_dir), "KFOPS_CACHE_DIR": str(cache_dir),
            **{f"KFOPS_{role.upper()}_PORT": str(port) for role, port in ports.items()},
            # The progress lines are read as they are printed.
            "PYTHONUNBUFFERED": "1"}


def demo(state_dir: Path, cache_dir: Path, trials: int | None, log: Path,
         extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``make demo``'s two commands on a new state dir; their times, and the platform stopped again.

    Raises:
        RuntimeError: A command failed (its output is in ``log``).
    """
    kfops = str(BIN / "kfops")
    env = {**demo_env(state_dir, cache_dir, {role: free_port() for role in ("s3", "mlflow", "mlserver", "seldon")}),
           **(extra_env or {})}
    run = [kfops, "pipeline", "run", "--local", *(["--trials", str(trials)] if trials else [])]
    with log.open("w") as output:
        began = time.perf_counter()
        try:
            up = subprocess.run([kfops, "local", "up"], env=env, stdout=output, stderr=subprocess.STDOUT,
                                timeout=600, check=False)
            up_s = time.perf_counter() - began
            if up.returncode:
                raise RuntimeError(f"`kfops local up` failed with {up.returncode}: see {log}")
            deployed_s = None
            with subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    output.write(line)
                    if deployed_s is None and DEPLOY_DONE.match(line):
                        deployed_s = time.perf_counter() - began
            total_s = time.perf_counter() - began
            if proc.returncode:
                raise RuntimeError(f"`kfops pipeline run --local` failed with {proc.returncode}: see {log}")
        finally:
            subprocess.run([kfops, "local", "down"], env=env, stdout=output, stderr=subprocess.STDOUT, timeout=300,
                           check=False)
    if deployed_s is None:
        progress(f"WARNING: no 'deploy done' line in {log}: the first prediction is counted at the run's end")
    return {"local_up_s": round(up_s, 2), "first_prediction_s": round(deployed_s or total_s, 2),
            "pipeline_run_returned_s": round(total_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--trials", type=int, default=None,
                        help="Tuning trials per run (default: the demo's); fewer for a short trial of the script.")
    parser.add_argument("--no-publish", action="store_true",
                        help="Leave benchmarks/figures/ as it is (for short trial runs).")
    args = parser.parse_args()
    options = RunOptions() if args.trials is None else RunOptions(max_trials=args.trials)
    out = output_dir("pipeline")
    with tempfile.TemporaryDirectory() as tmp:
        demos = {}
        # The last case measures, in the same run, what starting the serving runtimes at `up` saves: the same
        # demo with them started by the deploy step instead (KFOPS_PRESTART_SERVING=false).
        for case, extra in (("empty_cache", {}), ("warm_cache", {}),
                            ("warm_cache_without_prestart", {"KFOPS_PRESTART_SERVING": "false"})):
            progress(f"`make demo` on a new state dir, kfops cache {case.split('_')[0]}"
                     f"{', runtimes started by the deploy step' if extra else ''}")
            demos[case] = demo(Path(tmp) / f"demo-{case}", Path(tmp) / "demo-cache", args.trials,
                               out / f"demo-{case}.log", extra)
            progress(f"first prediction after {demos[case]['first_prediction_s']} s")

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
                run = run_local(options, env=target.platform.env(), run_dir=Path(tmp) / f"run-{index}",
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
              "demo_first_prediction_s": round(up_seconds + runs[0]["wall_s"], 2), "runs": runs,
              # Measured through the CLI, as `make demo` runs it (CLI start-up included).
              "make_demo": demos}
    (out / "pipeline.json").write_text(json.dumps(record, indent=2))
    rows = {"make demo, empty kfops cache: first prediction": demos["empty_cache"]["first_prediction_s"],
            "make demo, warm kfops cache: first prediction": demos["warm_cache"]["first_prediction_s"],
            "make demo, warm cache, runtimes started at deploy: first prediction":
                demos["warm_cache_without_prestart"]["first_prediction_s"],
            "make demo, empty kfops cache: local up": demos["empty_cache"]["local_up_s"],
            "make demo, warm kfops cache: local up": demos["warm_cache"]["local_up_s"],
            "platform up (machine's first)": first_up_seconds, "platform up (new state dir)": up_seconds,
            "demo: first prediction (in-process estimate)": record["demo_first_prediction_s"]}
    for index, run in enumerate(runs, 1):
        rows[f"run {index}: total"] = run["wall_s"]
        rows.update({f"run {index}: {step}": seconds for step, seconds in run["steps_s"].items()})
    bar_chart(rows, title=f"local workflow wall time ({record['machine']})", unit="s", path=out / "pipeline.png",
              highlight=[label for label in rows if label.endswith(("total", ": first prediction"))])
    print(json.dumps(record, indent=2))
    if not args.no_publish:
        publish(out, "pipeline")
    print(f"written: {out / 'pipeline.json'} and {out / 'pipeline.png'}")


if __name__ == "__main__":
    main()
