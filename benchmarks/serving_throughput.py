"""Serving throughput and latency, side by side in one run: kfops against peers tuned as a user would tune them.

The targets (kfops v2 over HTTP and gRPC, kfops v1, `mlflow models serve`, stock MLServer, the stock seldon-core
microservice, KServe's model server and the ceiling) are started by :mod:`benchmarks.targets`, which says how each is
tuned; before any load every model server must answer the same prediction for the same row.

Locust headless (``FastHttpUser``, closed loop, one real dataset row per request; ``loadtest/``), the targets
one after another, on the same cores as the servers. Writes JSON and a PNG of the same table to
``benchmarks/results/`` and publishes them to ``benchmarks/figures/serving.*`` (unless ``--no-publish``). Usage::

    .venv/bin/python benchmarks/serving_throughput.py [--seconds 20] [--users 20] [--no-publish]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import locust, output_dir, print_table, progress, publish, served_wine_model
from benchmarks.targets import (
    CEILING,
    CORES,
    KFOPS_GRPC,
    KFOPS_V1,
    KFOPS_V2,
    KSERVE,
    MLFLOW,
    STOCK_MLSERVER,
    STOCK_SELDON,
    STOCK_SELDON_TUNED,
    check_predictions,
    peers,
)


def goals(cells: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """The performance goals, judged on one run's figures."""
    v2, v1 = cells[KFOPS_V2], cells[KFOPS_V1]
    best_seldon = max((cells[STOCK_SELDON], cells[STOCK_SELDON_TUNED]), key=lambda cell: cell["rps"])
    return {
        "v2 >= 3x the tuned mlflow models serve": v2["rps"] >= 3 * cells[MLFLOW]["rps"],
        "v2 >= stock MLServer": v2["rps"] >= cells[STOCK_MLSERVER]["rps"],
        "v2 >= 50% of the ceiling": v2["rps"] >= 0.5 * cells[CEILING]["rps"],
        "v2 has the lowest p99 of the model servers": v2["p99_ms"] <= min(
            cell["p99_ms"] for name, cell in cells.items() if name not in (KFOPS_V2, KFOPS_GRPC, CEILING)),
        "v1 >= 1.5x the stock microservice at its best": v1["rps"] >= 1.5 * best_seldon["rps"],
        "v1 p99 below the stock microservice's at its best": v1["p99_ms"] < best_seldon["p99_ms"],
    }


def ratios(cells: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """kfops' throughput against each peer's (x times) on one run's figures; None where the peer served nothing."""
    def times(ours: float, theirs: float) -> float | None:
        return ours / theirs if theirs else None

    best_seldon = max(cells[STOCK_SELDON]["rps"], cells[STOCK_SELDON_TUNED]["rps"])
    v2, v1 = cells[KFOPS_V2]["rps"], cells[KFOPS_V1]["rps"]
    return {"v2 / mlflow models serve": times(v2, cells[MLFLOW]["rps"]),
            "v2 / stock MLServer": times(v2, cells[STOCK_MLSERVER]["rps"]),
            "v2 / KServe ModelServer": times(v2, cells[KSERVE]["rps"]),
            "v2 / ceiling": times(v2, cells[CEILING]["rps"]),
            "v1 / stock microservice at its best": times(v1, best_seldon)}


def plot(cells: dict[str, dict[str, Any]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(cells)
    figure, (rps, p99) = plt.subplots(1, 2, figsize=(13, 0.55 * len(names) + 1.5), sharey=True)
    colours = ["#d33" if name.startswith("kfops") else "#999" if name.startswith("ceiling") else "#2a6fb0"
               for name in names]
    rps.barh(names, [cells[n]["rps"] for n in names], color=colours)
    p99.barh(names, [cells[n]["p99_ms"] for n in names], color=colours)
    rps.set(title="requests per second (higher is better)")
    p99.set(title="p99 latency, ms (lower is better)")
    rps.invert_yaxis()
    for axis, key, fmt in ((rps, "rps", "{:.0f}"), (p99, "p99_ms", "{:.0f} ms")):
        for index, name in enumerate(names):
            axis.annotate(fmt.format(cells[name][key]), (cells[name][key], index), xytext=(3, -3),
                          textcoords="offset points", fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--no-publish", action="store_true",
                        help="Leave benchmarks/figures/ as it is (for short trial runs).")
    args = parser.parse_args()

    out = output_dir("serving")
    cells: dict[str, dict[str, Any]] = {}
    with served_wine_model() as served, peers(served) as targets:
        predictions = check_predictions(targets, served.model_name)
        for index, (name, (user, host)) in enumerate(targets.items(), 1):
            progress(f"[{index}/{len(targets)}] {name}: {args.users} users, {args.seconds} s")
            cells[name] = locust(user, host, args.users, args.seconds, out / f"target-{index}", served.model_name)
    machine = f"{platform.machine()}, {CORES} cores, Python {platform.python_version()}"
    title = (f"{machine}; Locust FastHttpUser closed loop, {args.users} users, {args.seconds} s per target, "
             "1 row per request")
    verdicts, compared = goals(cells), ratios(cells)
    (out / "serving.json").write_text(json.dumps({"command": " ".join(["benchmarks/serving_throughput.py",
                                                                       *sys.argv[1:]]),
                                                  "machine": machine, "users": args.users, "seconds": args.seconds,
                                                  "results": cells, "goals": verdicts, "ratios": compared,
                                                  "predictions_of_the_first_row": predictions}, indent=1))
    plot(cells, title, out / "serving.png")
    if not args.no_publish:
        publish(out, "serving")

    ceiling = cells[CEILING]["rps"]
    print(f"\n{title}\n")
    print_table(("target", "RPS", "p50 ms", "p99 ms", "failed", "share of the ceiling"),
                ((name, f"{cell['rps']:.0f}", f"{cell['p50_ms']:.0f}", f"{cell['p99_ms']:.0f}", cell["failures"],
                  f"{cell['rps'] / ceiling:.0%}") for name, cell in cells.items()))
    print()
    for pair, ratio in compared.items():
        print(f"  {pair}: {'-' if ratio is None else f'{ratio:.2f}x'}")
    for goal, met in verdicts.items():
        print(f"  {'met ' if met else 'MISS'} {goal}")
    print(f"\nwritten: {out / 'serving.json'}, {out / 'serving.png'} and Locust's reports in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
