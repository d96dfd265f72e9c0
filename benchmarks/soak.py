"""Soak: each protocol held at 80% of its measured saturation for minutes, with a small share of malformed requests.

Verdicts, per protocol: no good request failed, every malformed request got a 4xx, the serving runtime's resident
memory (its whole process group) grew by less than 10% from the start of the soak to its end, and the p99 of the
last window is within 20% of the first. Runs on a private platform on free ports (never collides with ``make demo``)
and writes JSON, a plot and Locust's reports to ``benchmarks/results/``. Not part of the test suite. Usage:

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--protocols v2 v1] [--malformed-share 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import group_rss, locust, output_dir, progress, publish, served_wine_model
from loadtest.command import ENDPOINT_USERS

#: The serving runtime (its process group's memory is sampled) of each protocol soaked.
SERVICES = {"v2": "mlserver", "v1": "seldon"}


def sample_memory(pid: int, every: float, stop: threading.Event, samples: list[tuple[float, int]]) -> None:
    started = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - started, group_rss(pid)))
        stop.wait(every)


def soak(served: Any, protocol: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    user, service = ENDPOINT_USERS[protocol], SERVICES[protocol]
    host = served.host(protocol)
    progress(f"{protocol}: measuring saturation ({args.saturation_seconds} s closed loop, {args.users} users)")
    saturation = locust(user, host, args.users, args.saturation_seconds, out / f"{protocol}-saturation",
                        served.model_name)
    target_rps = 0.8 * saturation["rps"]
    progress(f"{protocol}: saturation {saturation['rps']:.0f} requests/s; soaking at {target_rps:.0f}/s "
             f"for {args.minutes} min with {args.malformed_share:.0%} malformed requests")
    pid = served.platform.records()[service].pid
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(pid, 10.0, stop, samples), daemon=True)
    sampler.start()
    windows_file = out / f"{protocol}-soak-windows.json"
    try:
        total = locust(user, host, args.users, int(args.minutes * 60), out / f"{protocol}-soak", served.model_name,
                       extra=["--rate", f"{target_rps / args.users:.3f}", "--malformed-share",
                              str(args.malformed_share), "--windows-file", str(windows_file),
                              "--window-seconds", str(args.window_seconds)])
    finally:
        stop.set()
        sampler.join()
    windows = [w for w in json.loads(windows_file.read_text()) if "(malformed)" not in w["name"]]
    full = [w for w in windows if (w["window"] + 1) * args.window_seconds <= args.minutes * 60]
    first, last = full[0], full[-1]
    rss_start, rss_end = samples[0][1], samples[-1][1]
    result = {
        "saturation": saturation, "target_rps": target_rps, "soak": total, "windows": windows,
        "memory": [{"t_s": t, "rss_mb": rss / 2**20} for t, rss in samples],
        "rss_growth": rss_end / rss_start - 1, "p99_first_ms": first["p99_ms"], "p99_last_ms": last["p99_ms"],
        "p99_drift": last["p99_ms"] / first["p99_ms"] - 1,
    }
    result["verdicts"] = {
        "no good request failed": total["failures"] == 0,
        "every malformed request got a 4xx": total["malformed_not_4xx"] == 0 and total["malformed_requests"] > 0,
        "memory growth < 10%": result["rss_growth"] < 0.10,
        "p99 of the last window within 20% of the first": abs(result["p99_drift"]) <= 0.20,
    }
    return result


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, memory) = plt.subplots(1, 2, figsize=(11, 4))
    for protocol, result in results.items():
        windows = result["windows"]
        latency.plot([w["start_s"] / 60 for w in windows], [w["p99_ms"] for w in windows], marker="o",
                     label=f"{protocol} p99")
        latency.plot([w["start_s"] / 60 for w in windows], [w["p50_ms"] for w in windows], linestyle="--",
                     label=f"{protocol} p50")
        memory.plot([m["t_s"] / 60 for m in result["memory"]], [m["rss_mb"] for m in result["memory"]],
                    label=protocol)
    latency.set(title="latency per window (good requests)", xlabel="minute", ylabel="ms")
    memory.set(title="serving runtime resident memory", xlabel="minute", ylabel="MiB")
    latency.legend()
    memory.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--protocols", nargs="+", choices=sorted(SERVICES), default=["v2", "v1"])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--malformed-share", type=float, default=0.02)
    parser.add_argument("--saturation-seconds", type=int, default=20)
    parser.add_argument("--window-seconds", type=float, default=60.0)
    args = parser.parse_args()

    out = output_dir("soak")
    with served_wine_model("soak-wine") as served:
        results = {protocol: soak(served, protocol, args, out) for protocol in args.protocols}
    record = {"command": " ".join(["benchmarks/soak.py", *sys.argv[1:]]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "results": results}
    (out / "soak.json").write_text(json.dumps(record, indent=1))
    plot(results, out / "soak.png")
    publish(out, "soak")

    print(f"\n{record['machine']}; {args.minutes} min per protocol at 80% of saturation, "
          f"{args.malformed_share:.0%} malformed\n")
    print("| protocol | saturation RPS | soak RPS | good requests | failed | malformed (not 4xx) | RSS start -> end "
          "| p99 first -> last window |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    failed = False
    for protocol, result in results.items():
        soaked, memory = result["soak"], result["memory"]
        print(f"| {protocol} | {result['saturation']['rps']:.0f} | {soaked['rps']:.0f} | {soaked['requests']} | "
              f"{soaked['failures']} | {soaked['malformed_requests']} ({soaked['malformed_not_4xx']}) | "
              f"{memory[0]['rss_mb']:.0f} -> {memory[-1]['rss_mb']:.0f} MiB ({result['rss_growth']:+.1%}) | "
              f"{result['p99_first_ms']:.0f} -> {result['p99_last_ms']:.0f} ms ({result['p99_drift']:+.0%}) |")
        for verdict, ok in result["verdicts"].items():
            failed |= not ok
            print(f"  {'ok  ' if ok else 'FAIL'} {protocol}: {verdict}")
    print(f"\nwritten: {out / 'soak.json'}, {out / 'soak.png'} and Locust's HTML and CSV reports in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
