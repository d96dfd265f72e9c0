"""Per-trial overhead of the local Katib executor, beyond the trainer's own compute.

Runs the demo recipe's Experiment (wine quality, ElasticNet) three ways in one process, on the same cleaned dataset
and the same trial assignments:

1. the trainer's compute alone: ``run_trial`` in-process, warm (what a trial must cost at minimum);
2. the local executor with forked trials (the default);
3. the local executor with one fresh interpreter per trial (what a naive subprocess executor costs).

Overhead per trial = (executor wall time - start-up - sum of compute) / trials. Writes JSON and a plot to
``benchmarks/results/``. Usage:
    .venv/bin/python benchmarks/tuning_overhead.py [--trials 24] [--parallel 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import bar_chart, output_dir, publish
from components.clean import clean_file
from components.katib.experiment import build_experiment
from infra.local.katib.executor import LocalExperiment
from kfops.base.paths import REPO_ROOT
from kfops.base.recipes import WINE_QUALITY
from trainer.train import run_trial


def executor_run(dataset: str, trials: int, parallel: int, fork: bool, workdir: Path) -> dict[str, float]:
    experiment = build_experiment(WINE_QUALITY, name="bench", namespace="local", dataset_uri=dataset,
                                  max_trials=trials, parallel_trials=parallel, max_failed_trials=0,
                                  algorithm="random", algorithm_settings={"random_state": "11"})
    starts: list[float] = []
    began = time.perf_counter()
    executor = LocalExperiment(experiment, workdir, fork=fork,
                               on_event=lambda kind, _t: starts.append(time.perf_counter()) if kind == "started"
                               else None)
    result = executor.run()
    wall = time.perf_counter() - began
    assert result["experiment"]["status"]["trialsSucceeded"] == trials, result["experiment"]["status"]
    startup = starts[0] - began  # building the suggester and (when forking) the warm server's preload
    return {"wall": wall, "startup": startup, "trials": trials,
            "assignments": [t["parameterAssignments"] for t in result["trials"]]}  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        dataset = workdir / "wine.parquet"
        clean_file(REPO_ROOT / "data" / "winequality-red.csv", WINE_QUALITY, dataset)

        forked = executor_run(str(dataset), args.trials, args.parallel, True, workdir / "forked")
        fresh = executor_run(str(dataset), args.trials, args.parallel, False, workdir / "fresh")

        # Compute of exactly the assignments the executor ran, warm, in this process.
        run_trial(WINE_QUALITY, str(dataset), {"alpha": "0.01", "l1_ratio": "0.5"})
        compute = []
        for assignments in forked["assignments"]:
            began = time.perf_counter()
            run_trial(WINE_QUALITY, str(dataset), {a["name"]: a["value"] for a in assignments})
            compute.append(time.perf_counter() - began)

    total_compute = sum(compute)
    rows = {}
    for name, run in (("forked (default)", forked), ("fresh interpreter", fresh)):
        overhead = (run["wall"] - run["startup"] - total_compute) / args.trials
        rows[name] = {"wall_s": round(run["wall"], 3), "startup_s": round(run["startup"], 3),
                      "per_trial_overhead_s": round(overhead, 4),
                      "per_trial_wall_s": round((run["wall"] - run["startup"]) / args.trials, 4)}
    report = {
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
        "trials": args.trials, "parallel": args.parallel,
        "compute_per_trial_s": {"mean": round(statistics.mean(compute), 4),
                                "median": round(statistics.median(compute), 4)},
        "executors": rows,
        "overhead_ratio_fresh_vs_forked": round(rows["fresh interpreter"]["per_trial_overhead_s"]
                                                / rows["forked (default)"]["per_trial_overhead_s"], 1),
    }
    report["command"] = " ".join(["benchmarks/tuning_overhead.py", *sys.argv[1:]])
    out = output_dir("tuning")
    (out / "tuning.json").write_text(json.dumps(report, indent=2))
    bars = {"trainer compute alone": statistics.mean(compute),
            **{f"{name}: overhead": row["per_trial_overhead_s"] for name, row in rows.items()}}
    bar_chart(bars, title=f"local Katib executor, seconds per trial ({report['machine']})", unit="s",
              path=out / "tuning.png", highlight=["forked (default): overhead"])
    print(json.dumps(report, indent=2))
    publish(out, "tuning")
    print(f"written: {out / 'tuning.json'} and {out / 'tuning.png'}")


if __name__ == "__main__":
    main()
