"""Where a v2 request's time goes in MLServer with the kfops runtime, from HTTP bytes in to HTTP bytes out.

Serves the benchmark wine model (a private platform on free ports), loads it with Locust (``OpenInferenceUser``,
closed loop, one row per request) and samples the MLServer process with py-spy meanwhile. Each sample is put in one
stage, the most specific one its stack shows:

- model predict: the scorer (``kfops_serving.scoring``), i.e. the model's arithmetic;
- kfops decode and validation: the request's tensors turned into a checked float64 array;
- kfops coalescing: handing validated rows to the model and the answers back;
- response: the ``InferenceResponse`` built and serialised;
- request parsing: FastAPI's dependency solving and pydantic's ``InferenceRequest`` model;
- MLServer data plane: model lookup, request context, Prometheus metrics;
- HTTP server and ASGI: uvicorn (httptools), Starlette's middleware and routing;
- event loop and other: asyncio/uvloop scheduling and anything else.

Writes JSON and a PNG of the same table to ``benchmarks/results/`` (``figures/profile.*`` when published). Needs
py-spy (the ``dev`` dependency group) and permission to read another process's memory (root, or ptrace_scope 0).
Usage::

    .venv/bin/python benchmarks/profile_request.py [--seconds 20] [--users 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BIN, bar_chart, locust, output_dir, print_table, progress, publish, served_wine_model

#: Stages, most specific first: a sample goes to the first stage one of its frames matches (file, function).
STAGES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("model predict", (("kfops_serving/scoring.py", ""),)),
    ("kfops decode and validation", (("kfops_serving/mlserver_runtime.py", "decode"),
                                     ("kfops_serving/mlserver_runtime.py", "_values"),
                                     ("kfops_serving/mlserver_runtime.py", "_shape"),
                                     ("kfops_serving/validation.py", ""))),
    ("kfops coalescing", (("kfops_serving/mlserver_runtime.py", "Coalescer"),)),
    ("response", (("kfops_serving/mlserver_runtime.py", "predict"), ("fastapi/routing.py", "serialize_response"),
                  ("mlserver/rest/responses.py", ""), ("starlette/responses.py", ""))),
    ("request parsing (FastAPI, pydantic)", (("fastapi/dependencies/utils.py", ""), ("starlette/requests.py", ""))),
    ("MLServer data plane (lookup, context, metrics)", (("mlserver/handlers/dataplane.py", ""),
                                                         ("mlserver/registry.py", ""), ("mlserver/context.py", ""),
                                                         ("prometheus_client/", ""))),
    ("HTTP server and ASGI (uvicorn, Starlette)", (("uvicorn/", ""), ("starlette/", ""), ("fastapi/", ""),
                                                   ("httptools", ""), ("h11/", ""))),
)
OTHER = "event loop and other"


def stage(frames: list[str]) -> str:
    """The stage of one py-spy sample (frames as ``function (path:line)``, outermost first)."""
    for name, patterns in STAGES:
        for frame in frames:
            function, _, where = frame.partition(" (")
            if any(path in where and part in function for path, part in patterns):
                return name
    return OTHER


def shares(raw: Path) -> tuple[dict[str, int], int]:
    """Samples per stage in py-spy's raw (collapsed stacks) output, and the total."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stage(stack.split(";"))] += int(count)
    return dict(counts), sum(counts.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = parser.parse_args()
    spy = BIN / "py-spy"
    if not spy.exists():
        print("py-spy is not installed: `make venv` installs the dev dependency group", file=sys.stderr)
        return 2

    import psutil

    out = output_dir("profile")
    with served_wine_model() as served:
        runtime = next(p for p in psutil.Process().children(recursive=True)
                       if "mlserver" in " ".join(p.cmdline()) and "start" in p.cmdline())
        progress(f"profiling MLServer (pid {runtime.pid}) under {args.users} users for {args.seconds} s")
        raw = out / "mlserver.raw"
        sampler = subprocess.Popen([str(spy), "record", "--pid", str(runtime.pid), "--duration",
                                    str(args.seconds - 2), "--rate", str(args.rate), "--format", "raw",
                                    "--output", str(raw), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = runtime.cpu_times()
        load = locust("OpenInferenceUser", served.host("v2"), args.users, args.seconds, out / "v2",
                      served.model_name)
        after = runtime.cpu_times()
        sampler.wait(timeout=120)
    counts, total = shares(raw)
    # CPU time from the kernel's accounting (py-spy's non-blocking sampling drops samples, so it gives shares only).
    cpu_seconds = (after.user - before.user) + (after.system - before.system)
    requests = load["requests"]
    table = {name: counts.get(name, 0) / total for name, _ in (*STAGES, (OTHER, ()))}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    record = {"command": " ".join(["benchmarks/profile_request.py", *sys.argv[1:]]), "machine": machine,
              "users": args.users, "seconds": args.seconds, "rps": round(load["rps"]), "p99_ms": load["p99_ms"],
              "samples": total, "server_cpu_seconds": round(cpu_seconds, 2),
              "server_cpu_us_per_request": round(cpu_seconds / requests * 1e6),
              "shares": {name: round(share, 4) for name, share in table.items()}}
    (out / "profile.json").write_text(json.dumps(record, indent=1))
    us = record["server_cpu_us_per_request"]
    bar_chart({name: share * 100 for name, share in table.items()}, unit="%", path=out / "profile.png",
              title=f"MLServer + kfops runtime, v2 request: share of server time ({us} us/request at "
                    f"{record['rps']} RPS; {machine})")
    publish(out, "profile")
    print(f"\n{record['rps']} requests/s, p99 {load['p99_ms']:.0f} ms; the server's CPU time: {us} us per request\n")
    print_table(("stage", "share of the server's samples", "CPU per request"),
                ((name, f"{share:.0%}", f"{share * us:.0f} us") for name, share in table.items()))
    print(f"\nwritten: {out / 'profile.json'}, {out / 'profile.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
