"""Latency at concurrency 1: one client, one request at a time, one row per request, on otherwise idle servers.

The targets are the serving benchmark's (:mod:`benchmarks.targets`: kfops v2 over HTTP and gRPC, kfops v1, the
tuned peers, KServe's model server, and the constant-answer ceiling as the floor of a Python HTTP endpoint here), all
started first and left idle while another is measured. Each target gets ``--requests`` sequential requests, split into
``--rounds`` rounds that visit the targets in turn (so a burst of noise from a neighbour on a shared machine lands on
all of them, not on one); every round opens a new connection and sends ``--warmup`` unmeasured requests first.

The client is kept small so that it does not dominate what it measures: each HTTP request is a prebuilt byte string
written to one keep-alive TCP connection (``TCP_NODELAY``) and its answer is parsed just enough to know its status and
where it ends; gRPC uses one channel and the generated stub. Python's garbage collector is off while measuring.
Latency is the client's: from before the request is written to after the last byte of the answer is read. A server
that closes the connection after every answer (gunicorn's sync workers: the seldon-core wrapper, the stock
microservice) makes the next request open a new one, and that connect is part of its latency (``new_connections``
counts them).

Goals (the speed issue): kfops v2 p99 at most 1 ms, v1 p99 at most 2.5 ms. Writes JSON and a PNG to
``benchmarks/results/`` and publishes them to ``benchmarks/figures/latency.*`` (unless ``--no-publish``). Usage::

    .venv/bin/python benchmarks/latency.py [--requests 5000] [--rounds 5] [--warmup 200] [--no-publish]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import platform
import random
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import output_dir, print_table, progress, publish, served_wine_model
from benchmarks.targets import CEILING, CORES, KFOPS_GRPC, KFOPS_V1, KFOPS_V2, check_predictions, http_request, peers

#: p99 goals (ms) at concurrency 1, from the speed issue: Open Inference v2 (both transports) and Seldon v1.
GOALS_MS = {KFOPS_V2: 1.0, KFOPS_GRPC: 1.0, KFOPS_V1: 2.5}
#: Distinct dataset rows the requests cycle through (the same rows, in the same order, for every target).
ROWS = 256


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile: the smallest sample with at least ``q`` percent of them at or below it.

    Raises:
        ValueError: No samples, or ``q`` outside (0, 100].
    """
    if not samples:
        raise ValueError("no samples")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is outside (0, 100]")
    ordered = sorted(samples)
    # The rank in exact arithmetic: 99.9 / 100 * 1000 is 999.0000000000001 in floating point.
    return ordered[max(math.ceil(Fraction(str(q)) / 100 * len(ordered)), 1) - 1]


def summarize(samples_ns: Sequence[int]) -> dict[str, float]:
    """Count, mean, p50, p90, p99, p99.9 and maximum of latencies in nanoseconds, in milliseconds."""
    ms = [sample / 1e6 for sample in samples_ns]
    return {"requests": len(ms), "mean_ms": sum(ms) / len(ms), "p50_ms": percentile(ms, 50),
            "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99), "p99_9_ms": percentile(ms, 99.9),
            "max_ms": max(ms)}


def split(total: int, parts: int) -> list[int]:
    """``total`` requests in ``parts`` rounds as equal as can be, the first rounds taking the remainder."""
    if parts < 1:
        raise ValueError("at least one round")
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def goals(results: Mapping[str, Mapping[str, Any]]) -> dict[str, bool]:
    """Each latency goal of a measured target, judged on its p99 (a target with failed requests misses it)."""
    return {f"{name}: p99 <= {limit:g} ms": results[name]["p99_ms"] <= limit and not results[name]["failures"]
            for name, limit in GOALS_MS.items() if name in results}


def table_rows(results: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """The printed and README table: one row per target, in milliseconds to two decimals."""
    return [(name, *(f"{cell[key]:.2f}" for key in ("p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms")),
             str(cell["failures"]), str(cell["new_connections"]))
            for name, cell in results.items()]


TABLE_HEADER = ("target", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "failed", "new connections")


# --- A minimal HTTP/1.1 client: prebuilt requests on one keep-alive connection --------------------------------------


def encode_request(host: str, path: str, body: bytes) -> bytes:
    """A complete ``POST`` of a JSON ``body``, as bytes ready to be written to the connection."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


@dataclasses.dataclass(frozen=True)
class Response:
    """What the client needs of an answer."""

    status: int
    body: bytes
    keep_alive: bool


def parse_response(buffer: bytes, eof: bool = False) -> tuple[Response, int] | None:
    """The complete HTTP/1.1 answer at the start of ``buffer`` and how many bytes it took; None while it is partial.

    Bodies delimited by ``Content-Length``, by chunked transfer coding, or (``eof``: the server closed the connection)
    by the end of the connection are understood.

    Raises:
        ValueError: The bytes are not an HTTP answer, or the connection ended before the answer did.
    """
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        if eof:
            raise ValueError(f"the connection ended inside an answer's head: {buffer[:200]!r}")
        return None
    lines = buffer[:head_end].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP answer: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    start = head_end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, position = b"", start
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                break
            size = int(buffer[position:line_end].split(b";")[0], 16)
            data_start = line_end + 2
            if size == 0:
                if buffer.startswith(b"\r\n", data_start):
                    return Response(int(rest[:3]), body, keep_alive), data_start + 2
                trailers_end = buffer.find(b"\r\n\r\n", line_end)
                if trailers_end < 0:
                    break
                return Response(int(rest[:3]), body, keep_alive), trailers_end + 4
            if len(buffer) < data_start + size + 2:
                break
            body += buffer[data_start:data_start + size]
            position = data_start + size + 2
        if eof:
            raise ValueError("the connection ended inside a chunked answer")
        return None
    if "content-length" in headers:
        end = start + int(headers["content-length"])
        if len(buffer) < end:
            if eof:
                raise ValueError("the connection ended before the answer's Content-Length")
            return None
        return Response(int(rest[:3]), buffer[start:end], keep_alive), end
    if eof:  # no length given: the body runs to the end of the connection
        return Response(int(rest[:3]), buffer[start:], False), len(buffer)
    return None


class HttpClient:
    """One keep-alive connection to ``host:port``, reopened only when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.connects = 0

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, request: bytes) -> Response:
        """Write ``request`` and read its whole answer."""
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connects += 1
        sock = self.sock
        sock.sendall(request)
        buffer = b""
        while True:
            chunk = sock.recv(65536)
            buffer += chunk
            parsed = parse_response(buffer, eof=not chunk)
            if parsed is not None:
                break
        response, _ = parsed
        if not response.keep_alive or not chunk:
            self.close()
        return response


# --- Measuring ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Measured:
    """One target's samples so far."""

    samples_ns: list[int] = dataclasses.field(default_factory=list)
    failures: int = 0
    connects: int = 0
    round_p50_ms: list[float] = dataclasses.field(default_factory=list)


def timed(call: Callable[[int], bool], count: int, warmup: int) -> tuple[list[int], int]:
    """``warmup`` unmeasured calls, then ``count`` timed ones (the collector off); the samples and the failures.

    ``call(i)`` sends request ``i`` and says whether it succeeded.
    """
    for index in range(warmup):
        call(index)
    samples: list[int] = []
    failures = 0
    collecting = gc.isenabled()
    gc.disable()
    try:
        clock = time.perf_counter_ns
        for index in range(count):
            began = clock()
            ok = call(index)
            samples.append(clock() - began)
            failures += not ok
    finally:
        if collecting:
            gc.enable()
    return samples, failures


def one_round(user: str, host: str, model: str, rows: Sequence[Sequence[float]], columns: Sequence[str],
              count: int, warmup: int) -> tuple[list[int], int, int]:
    """One round on one target over a new connection: its samples, failures and the connections it opened."""
    if user == "OpenInferenceGrpcUser":
        import grpc
        from mlserver.grpc import dataplane_pb2_grpc

        from kfops_serving.protocols import served_model_name
        from loadtest.payloads import open_inference_grpc

        requests = [open_inference_grpc([list(row)], served_model_name(model)) for row in rows]
        with grpc.insecure_channel(host.removeprefix("grpc://")) as channel:
            infer = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer

            def call_grpc(index: int) -> bool:
                try:
                    infer(requests[index % len(requests)], timeout=30)
                except grpc.RpcError:
                    return False
                return True

            samples, failures = timed(call_grpc, count, warmup)
        return samples, failures, 1
    where = urlsplit(host)
    address, port = where.hostname or "127.0.0.1", where.port or 80
    raw = [encode_request(f"{address}:{port}", *http_request(user, model, row, columns)) for row in rows]
    client = HttpClient(address, port)

    def call_http(index: int) -> bool:
        try:
            return client.send(raw[index % len(raw)]).status == 200
        except (OSError, ValueError):
            client.close()
            return False

    try:
        for index in range(warmup):
            call_http(index)
        connects_before = client.connects
        samples, failures = timed(call_http, count, 0)
    finally:
        client.close()
    return samples, failures, client.connects - connects_before


def sample_rows(seed: int = 7) -> tuple[list[str], list[list[float]]]:
    """The feature columns and ``ROWS`` dataset rows drawn with a fixed seed: every target gets the same ones."""
    from loadtest.payloads import feature_rows

    columns, rows = feature_rows()
    rng = random.Random(seed)  # noqa: S311 - sampling traffic, not cryptography
    return columns, [rng.choice(rows) for _ in range(ROWS)]


def plot(results: Mapping[str, Mapping[str, Any]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    figure, (p50, p99) = plt.subplots(1, 2, figsize=(13, 0.55 * len(names) + 1.6), sharey=True)
    colours = ["#d33" if name.startswith("kfops") else "#999" if name.startswith("ceiling") else "#2a6fb0"
               for name in names]
    for axis, key in ((p50, "p50_ms"), (p99, "p99_ms")):
        axis.barh(names, [results[n][key] for n in names], color=colours)
        axis.set(title=f"{key.removesuffix('_ms')}, ms (lower is better)")
        for index, name in enumerate(names):
            axis.annotate(f"{results[name][key]:.2f}", (results[name][key], index), xytext=(3, -3),
                          textcoords="offset points", fontsize=8)
    for limit, style in zip(sorted(set(GOALS_MS.values())), ("--", ":"), strict=False):
        which = " and ".join(name.split(" (")[0] for name, goal in GOALS_MS.items() if goal == limit)
        p99.axvline(limit, color="#d33", linestyle=style, linewidth=1, label=f"goal for {which}: {limit:g} ms")
    p99.legend(loc="lower right", fontsize=8)
    p50.invert_yaxis()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="Measured requests per target.")
    parser.add_argument("--rounds", type=int, default=5, help="Rounds the requests are split into (targets in turn).")
    parser.add_argument("--warmup", type=int, default=200, help="Unmeasured requests per target at each round's start.")
    parser.add_argument("--no-publish", action="store_true",
                        help="Leave benchmarks/figures/ as it is (for short trial runs).")
    args = parser.parse_args()
    if not 1 <= args.rounds <= args.requests:
        parser.error("--rounds must be between 1 and --requests")

    out = output_dir("latency")
    columns, rows = sample_rows()
    measured: dict[str, Measured] = {}
    with served_wine_model() as served, peers(served) as targets:
        predictions = check_predictions(targets, served.model_name)
        names = list(targets)
        measured = {name: Measured() for name in names}
        for round_index, count in enumerate(split(args.requests, args.rounds)):
            # Each round starts with another target, so none is always measured first or last.
            order = names[round_index % len(names):] + names[:round_index % len(names)]
            progress(f"round {round_index + 1} of {args.rounds}: {count} requests per target "
                     f"after {args.warmup} unmeasured")
            for name in order:
                user, host = targets[name]
                samples, failures, connects = one_round(user, host, served.model_name, rows, columns, count,
                                                        args.warmup)
                cell = measured[name]
                cell.samples_ns += samples
                cell.failures += failures
                cell.connects += connects
                cell.round_p50_ms.append(percentile(samples, 50) / 1e6)
    results = {name: {**summarize(cell.samples_ns), "failures": cell.failures, "new_connections": cell.connects,
                      "round_p50_ms": cell.round_p50_ms} for name, cell in measured.items()}
    verdicts = goals(results)
    machine = f"{platform.machine()}, {CORES} cores, Python {platform.python_version()}"
    title = (f"{machine}; concurrency 1, {args.requests} sequential requests per target in {args.rounds} rounds "
             f"(+{args.warmup} warm-up each), 1 row per request, client-side latency")
    record = {"command": " ".join(["benchmarks/latency.py", *sys.argv[1:]]), "machine": machine,
              "requests": args.requests, "rounds": args.rounds, "warmup": args.warmup, "goals_ms": GOALS_MS,
              "results": results, "goals": verdicts, "predictions_of_the_first_row": predictions}
    (out / "latency.json").write_text(json.dumps(record, indent=1))
    (out / "latency-samples.json").write_text(json.dumps({name: cell.samples_ns for name, cell in measured.items()}))
    plot(results, title, out / "latency.png")
    if not args.no_publish:
        publish(out, "latency")

    print(f"\n{title}\n")
    print_table(TABLE_HEADER, table_rows(results))
    print(f"\n  floor of a Python HTTP endpoint here ({CEILING}): p99 {results[CEILING]['p99_ms']:.2f} ms")
    for goal, met in verdicts.items():
        print(f"  {'met ' if met else 'MISS'} {goal}")
    print(f"\nwritten: {out / 'latency.json'}, {out / 'latency.png'} (raw samples: {out / 'latency-samples.json'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
