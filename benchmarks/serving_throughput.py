"""Serving throughput and latency, side by side: kfops v2 (MLServer), kfops v1 (seldon-core wrapper) and
``mlflow models serve --env-manager local``, for the same model, in one run.

Starts its own local platform on free ports in a temp state dir, registers a wine-quality ElasticNet, deploys it on
both kfops runtimes with the default settings, starts MLflow's scoring server on the same model directory, then runs
Locust headless (``FastHttpUser``, closed loop, bodies sampled from the dataset; ``loadtest/``) against each target
at each concurrency. Usage:
    .venv/bin/python benchmarks/serving_throughput.py [--seconds 20] [--users 1 20]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kfops.base.paths import REPO_ROOT

BIN = Path(sys.executable).parent


def locust(user: str, host: str, users: int, seconds: int, workdir: Path, model: str) -> dict[str, float]:
    prefix = workdir / f"{user}-{users}"
    subprocess.run([str(BIN / "locust"), "-f", str(REPO_ROOT / "loadtest" / "locustfile.py"), user, "--headless",
                    "-u", str(users),
                    "-r", str(users), "-t", f"{seconds}s", "--host", host, "--csv", str(prefix), "--only-summary"],
                   env={**os.environ, "KFOPS_MODEL_NAME": model}, cwd=workdir, capture_output=True, check=True,
                   timeout=seconds + 60)
    with open(f"{prefix}_stats.csv") as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    return {"requests": int(total["Request Count"]), "failures": int(total["Failure Count"]),
            "rps": float(total["Requests/s"]), "p50_ms": float(total["50%"]), "p95_ms": float(total["95%"]),
            "p99_ms": float(total["99%"])}


def wait_for(url: str, timeout: float = 120) -> None:
    from infra.local.processes import http_ok

    deadline = time.monotonic() + timeout
    while not http_ok(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 20])
    args = parser.parse_args()

    from components.clean import clean_file
    from components.store import store_dataset
    from infra.local.platform import LocalPlatform
    from infra.local.processes import free_port
    from infra.local.serving import LocalServing
    from infra.local.settings import LocalSettings
    from kfops.base.recipes import WINE_QUALITY
    from trainer.train import train_and_register

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        settings = LocalSettings(state_dir=workdir / "state", s3_port=free_port(), mlflow_port=free_port(),
                                 mlserver_port=free_port(), seldon_port=free_port())
        local = LocalPlatform(settings)
        local.up()
        mlflow_serve = None
        try:
            os.environ.update(local.env())
            cleaned = workdir / "wine.parquet"
            clean_file(REPO_ROOT / "data" / "winequality-red.csv", WINE_QUALITY, cleaned)
            dataset = store_dataset(cleaned, "datasets", "benchmark")
            model = train_and_register(WINE_QUALITY, dataset, {"alpha": "0.0005", "l1_ratio": "0.5"},
                                       model_name="bench-wine", experiment="benchmark")
            serving = LocalServing(local)
            served = serving.fetch(model.name, model.version)
            endpoints = serving.deploy(served)
            port = free_port()
            mlflow_serve = subprocess.Popen(
                [str(BIN / "mlflow"), "models", "serve", "-m", served.path, "--env-manager", "local", "-h",
                 "127.0.0.1", "-p", str(port)], env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            wait_for(f"http://127.0.0.1:{port}/ping")
            targets = {
                "kfops v2 (MLServer)": ("OpenInferenceUser", endpoints["v2"].split("/v2/")[0]),
                "kfops v1 (seldon-core)": ("SeldonUser", endpoints["v1"].split("/api/")[0]),
                "mlflow models serve": ("MlflowServeUser", f"http://127.0.0.1:{port}"),
            }
            results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in targets}
            for users in args.users:
                for name, (scenario, host) in targets.items():  # interleaved: drift hits every target alike
                    results[name][str(users)] = locust(scenario, host, users, args.seconds, workdir, model.name)
        finally:
            if mlflow_serve is not None:
                os.killpg(mlflow_serve.pid, 15)
                mlflow_serve.wait()
            local.down()

    baseline = results["mlflow models serve"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.seconds} s per cell, Locust FastHttpUser closed loop, 1 row per request\n")
    print("| target | users | RPS | p50 ms | p95 ms | p99 ms | failures | RPS vs mlflow serve | p99 vs mlflow serve |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, by_users in results.items():
        for users, cell in by_users.items():
            base = baseline[users]
            print(f"| {name} | {users} | {cell['rps']:.0f} | {cell['p50_ms']:.0f} | {cell['p95_ms']:.0f} | "
                  f"{cell['p99_ms']:.0f} | {cell['failures']} | {cell['rps'] / base['rps']:.1f}x | "
                  f"{cell['p99_ms'] / base['p99_ms']:.2f}x |")
    out = REPO_ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / f"serving-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
