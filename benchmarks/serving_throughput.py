"""Serving throughput and latency, side by side in one run: kfops against peers tuned as a user would tune them.

Targets, all serving the same registered wine-quality ElasticNet (one model directory):
- kfops v2: MLServer with the kfops runtime, default settings (every request validated and answered alone);
- kfops v1: the seldon-core wrapper, default settings;
- kfops v2 over gRPC: the same MLServer's Open Inference gRPC port (Locust user ``OpenInferenceGrpcUser``);
- ``mlflow models serve --env-manager local`` with as many uvicorn workers as cores (its default is one);
- stock MLServer 1.7.1 with its MLflow runtime and default settings (one input per column, as it expects);
- the stock ``seldon-core-microservice`` with a user's ten-line MLflow class (``peers/MlflowModel.py``), at its
  default settings and with as many gunicorn workers as cores;
- the ceiling: a constant-answer ASGI app under uvicorn with as many workers as cores (parses the JSON body only).

Locust headless (``FastHttpUser``, closed loop, one real dataset row per request; ``loadtest/``), the targets
interleaved, on the same cores as the servers. Writes JSON and a PNG of the same table to ``benchmarks/results/``.
Usage::

    .venv/bin/python benchmarks/serving_throughput.py [--seconds 20] [--users 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BIN, Served, locust, output_dir, print_table, progress, publish, served_wine_model
from kfops.base.paths import REPO_ROOT

PEERS = REPO_ROOT / "benchmarks" / "peers"
SELDON_BIN = REPO_ROOT / ".venv-seldon" / "bin"
CORES = os.cpu_count() or 1
KFOPS_V2, KFOPS_V1 = "kfops v2 (MLServer + kfops runtime)", "kfops v1 (seldon-core wrapper)"
KFOPS_GRPC = "kfops v2 over gRPC (same MLServer)"
MLFLOW = f"mlflow models serve, {CORES} workers"
STOCK_MLSERVER = "stock MLServer 1.7.1 + MLflow runtime, defaults"
STOCK_SELDON, STOCK_SELDON_TUNED = ("stock seldon-core-microservice, defaults",
                                    f"stock seldon-core-microservice, {CORES} workers")
CEILING = f"ceiling: constant-answer ASGI app, {CORES} workers"


def free_port() -> int:
    from infra.local.processes import free_port as free

    return free()


@contextlib.contextmanager
def process(argv: list[str], port: int, ready_path: str, *, env: dict[str, str] | None = None,
            cwd: Path | None = None, log: Path) -> Iterator[None]:
    """Run a peer as kfops runs its own services (its own process group, ready-checked, stopped as a group)."""
    from infra.local.processes import ServiceSpec, start_service, stop_service

    url = f"http://127.0.0.1:{port}"
    spec = ServiceSpec(name=log.stem, title=log.stem, argv=argv, env=env or {}, ports={"http": port},
                       ready_url=f"{url}{ready_path}", url=url, cwd=cwd)
    record = start_service(spec, log, timeout=180, grace=20)
    try:
        yield
    finally:
        stop_service(record, grace=20)


@contextlib.contextmanager
def peers(served: Served) -> Iterator[dict[str, tuple[str, str]]]:
    """Start every peer on free ports; yield ``{target: (Locust user class, host)}`` including kfops' own."""
    from kfops_serving.protocols import served_model_name

    work = served.workdir
    env = {"PATH": f"{BIN}:{os.environ['PATH']}"}
    ports = {name: free_port() for name in ("mlflow", "mlserver", "seldon", "seldon-tuned", "ceiling")}
    stock_repo = work / "stock-mlserver"
    stock_repo.mkdir()
    name = served_model_name(served.model_name)
    (stock_repo / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": ports["mlserver"], "grpc_port": free_port(), "metrics_port": free_port()}))
    (stock_repo / "model-settings.json").write_text(json.dumps({
        "name": name, "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": served.model_dir}}))
    seldon_env = {"MODEL_DIR": served.model_dir, "PATH": f"{SELDON_BIN}:{os.environ['PATH']}"}

    def seldon(port: int, *extra: str) -> list[str]:
        return [str(SELDON_BIN / "seldon-core-microservice"), "MlflowModel", "--http-port", str(port),
                "--grpc-port", str(free_port()), "--metrics-port", str(free_port()), *extra]

    with contextlib.ExitStack() as stack:
        progress("starting the peers")
        stack.enter_context(process(
            [str(BIN / "mlflow"), "models", "serve", "-m", served.model_dir, "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(ports["mlflow"]), "-w", str(CORES)],
            ports["mlflow"], "/ping", env=env, log=work / "mlflow-serve.log"))
        stack.enter_context(process([str(BIN / "mlserver"), "start", str(stock_repo)], ports["mlserver"],
                                    f"/v2/models/{name}/ready", env=env, log=work / "stock-mlserver.log"))
        stack.enter_context(process(seldon(ports["seldon"]), ports["seldon"], "/health/ping", env=seldon_env,
                                    cwd=PEERS, log=work / "stock-seldon.log"))
        stack.enter_context(process(seldon(ports["seldon-tuned"], "--workers", str(CORES)), ports["seldon-tuned"],
                                    "/health/ping", env=seldon_env, cwd=PEERS, log=work / "stock-seldon-tuned.log"))
        stack.enter_context(process(
            [str(BIN / "uvicorn"), "ceiling:app", "--app-dir", str(PEERS), "--host", "127.0.0.1",
             "--port", str(ports["ceiling"]), "--workers", str(CORES), "--no-access-log", "--log-level", "warning"],
            ports["ceiling"], "/", log=work / "ceiling.log"))
        yield {
            KFOPS_V2: ("OpenInferenceUser", served.host("v2")),
            KFOPS_V1: ("SeldonUser", served.host("v1")),
            KFOPS_GRPC: ("OpenInferenceGrpcUser", served.host("v2-grpc")),
            MLFLOW: ("MlflowServeUser", f"http://127.0.0.1:{ports['mlflow']}"),
            STOCK_MLSERVER: ("StockMLServerUser", f"http://127.0.0.1:{ports['mlserver']}"),
            STOCK_SELDON: ("SeldonUser", f"http://127.0.0.1:{ports['seldon']}"),
            STOCK_SELDON_TUNED: ("SeldonUser", f"http://127.0.0.1:{ports['seldon-tuned']}"),
            CEILING: ("OpenInferenceUser", f"http://127.0.0.1:{ports['ceiling']}"),
        }


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
    args = parser.parse_args()

    out = output_dir("serving")
    cells: dict[str, dict[str, Any]] = {}
    with served_wine_model() as served, peers(served) as targets:
        for index, (name, (user, host)) in enumerate(targets.items(), 1):
            progress(f"[{index}/{len(targets)}] {name}: {args.users} users, {args.seconds} s")
            cells[name] = locust(user, host, args.users, args.seconds, out / f"target-{index}", served.model_name)
    machine = f"{platform.machine()}, {CORES} cores, Python {platform.python_version()}"
    title = (f"{machine}; Locust FastHttpUser closed loop, {args.users} users, {args.seconds} s per target, "
             "1 row per request")
    verdicts = goals(cells)
    (out / "serving.json").write_text(json.dumps({"command": " ".join(["benchmarks/serving_throughput.py",
                                                                       *sys.argv[1:]]),
                                                  "machine": machine, "users": args.users, "seconds": args.seconds,
                                                  "results": cells, "goals": verdicts}, indent=1))
    plot(cells, title, out / "serving.png")
    publish(out, "serving")

    ceiling = cells[CEILING]["rps"]
    print(f"\n{title}\n")
    print_table(("target", "RPS", "p50 ms", "p99 ms", "failed", "share of the ceiling"),
                ((name, f"{cell['rps']:.0f}", f"{cell['p50_ms']:.0f}", f"{cell['p99_ms']:.0f}", cell["failures"],
                  f"{cell['rps'] / ceiling:.0%}") for name, cell in cells.items()))
    print()
    for goal, met in verdicts.items():
        print(f"  {'met ' if met else 'MISS'} {goal}")
    print(f"\nwritten: {out / 'serving.json'}, {out / 'serving.png'} and Locust's reports in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
