"""The concurrency-1 latency benchmark's own logic (benchmarks/latency.py): percentiles, goals, its HTTP client."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from benchmarks.latency import (
    GOALS_MS,
    HttpClient,
    encode_request,
    goals,
    parse_response,
    percentile,
    split,
    summarize,
    table_rows,
    timed,
)
from benchmarks.targets import KFOPS_GRPC, KFOPS_V1, KFOPS_V2

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("q", "expected"), [(50, 50), (90, 90), (99, 99), (99.9, 100), (100, 100), (1, 1)])
def test_percentile_is_the_nearest_rank(q: float, expected: int) -> None:
    samples = list(range(100, 0, -1))  # 1..100, unsorted
    assert percentile(samples, q) == expected


def test_percentile_of_few_samples_is_a_sample_never_an_interpolation() -> None:
    assert percentile([3.0, 1.0], 50) == 1.0
    assert percentile([3.0, 1.0], 99) == 3.0
    assert percentile([7.0], 0.1) == 7.0


@pytest.mark.parametrize("q", [0, -1, 100.1])
def test_percentile_outside_its_range_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], q)


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_summary_is_in_milliseconds() -> None:
    summary = summarize([1_000_000 * value for value in range(1, 1001)])  # 1..1000 ms
    assert summary == {"requests": 1000, "mean_ms": 500.5, "p50_ms": 500.0, "p90_ms": 900.0, "p99_ms": 990.0,
                       "p99_9_ms": 999.0, "max_ms": 1000.0}


@pytest.mark.parametrize(("total", "parts", "expected"), [(5000, 5, [1000] * 5), (10, 3, [4, 3, 3]), (2, 3, [1, 1, 0])])
def test_requests_are_split_into_rounds_that_add_up(total: int, parts: int, expected: list[int]) -> None:
    assert split(total, parts) == expected
    assert sum(split(total, parts)) == total


def test_no_rounds_is_refused() -> None:
    with pytest.raises(ValueError, match="round"):
        split(10, 0)


def _cell(p99: float, failures: int = 0) -> dict[str, float]:
    return {"p50_ms": p99 / 2, "p90_ms": p99 * 0.8, "p99_ms": p99, "p99_9_ms": p99 * 1.5, "max_ms": p99 * 2,
            "failures": failures, "new_connections": 0}


def test_goals_are_the_issues_p99_limits() -> None:
    assert GOALS_MS == {KFOPS_V2: 1.0, KFOPS_GRPC: 1.0, KFOPS_V1: 2.5}
    verdicts = goals({KFOPS_V2: _cell(1.0), KFOPS_GRPC: _cell(1.01), KFOPS_V1: _cell(2.4), "a peer": _cell(0.1)})
    assert verdicts == {f"{KFOPS_V2}: p99 <= 1 ms": True, f"{KFOPS_GRPC}: p99 <= 1 ms": False,
                        f"{KFOPS_V1}: p99 <= 2.5 ms": True}


def test_a_target_with_failed_requests_misses_its_goal_however_fast() -> None:
    assert goals({KFOPS_V2: _cell(0.2, failures=1)}) == {f"{KFOPS_V2}: p99 <= 1 ms": False}


def test_table_rows_keep_the_targets_order_in_milliseconds() -> None:
    rows = table_rows({"b": _cell(2.0), "a": _cell(0.5, failures=3)})
    assert rows == [("b", "1.00", "1.60", "2.00", "3.00", "4.00", "0", "0"),
                    ("a", "0.25", "0.40", "0.50", "0.75", "1.00", "3", "0")]


def test_timing_leaves_out_the_warm_up_and_counts_failures() -> None:
    calls: list[int] = []

    def call(index: int) -> bool:
        calls.append(index)
        return index % 2 == 0

    samples, failures = timed(call, 4, 3)
    assert calls == [0, 1, 2, 0, 1, 2, 3]
    assert len(samples) == 4
    assert all(sample >= 0 for sample in samples)
    assert failures == 2


def test_a_request_is_a_complete_post() -> None:
    raw = encode_request("127.0.0.1:8080", "/v2/models/m/infer", b'{"a": 1}')
    assert raw == (b"POST /v2/models/m/infer HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 8\r\n\r\n{\"a\": 1}")


ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"


def test_an_answer_with_a_length_is_complete_only_when_all_of_it_arrived() -> None:
    for cut in range(len(ANSWER)):
        assert parse_response(ANSWER[:cut]) is None
    response, used = parse_response(ANSWER + b"HTTP/1.1 next")  # type: ignore[misc]
    assert (response.status, response.body, response.keep_alive, used) == (200, b'{"a":1}', True, len(ANSWER))


def test_a_chunked_answer_is_joined() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;ext=1\r\n\":1}\r\n0\r\n\r\n"
    for cut in range(len(chunked)):
        assert parse_response(chunked[:cut]) is None
    response, used = parse_response(chunked)  # type: ignore[misc]
    assert (response.status, response.body, used) == (200, b'{"a":1}', len(chunked))
    with_trailer = chunked[:-2] + b"X-Trailer: 1\r\n\r\n"
    assert parse_response(with_trailer) == (response, len(with_trailer))


@pytest.mark.parametrize(("head", "keep_alive"), [
    (b"HTTP/1.1 200 OK\r\nConnection: close", False),
    (b"HTTP/1.1 200 OK\r\nConnection: keep-alive", True),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive", True),
    (b"HTTP/1.0 200 OK", False),
])
def test_whether_the_server_keeps_the_connection(head: bytes, keep_alive: bool) -> None:
    response, _ = parse_response(head + b"\r\nContent-Length: 0\r\n\r\n")  # type: ignore[misc]
    assert response.keep_alive is keep_alive


def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    raw = b"HTTP/1.0 500 Internal Server Error\r\n\r\noops"
    assert parse_response(raw) is None
    response, used = parse_response(raw, eof=True)  # type: ignore[misc]
    assert (response.status, response.body, response.keep_alive, used) == (500, b"oops", False, len(raw))


@pytest.mark.parametrize("raw", [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", b"HTTP/1.1 200 O",
                                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"])
def test_a_connection_that_ends_inside_an_answer_is_an_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="connection ended"):
        parse_response(raw, eof=True)


def test_what_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an HTTP answer"):
        parse_response(b"SSH-2.0-OpenSSH\r\n\r\n")


@pytest.fixture
def server() -> Iterator[tuple[int, list[int]]]:
    """A loopback server: each connection answers two requests, keeping it open after the first only."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.settimeout(5)
            accepted.append(1)
            with connection:
                for close in (False, True):
                    request = b""
                    while not request.endswith(b"{}"):
                        data = connection.recv(4096)
                        if not data:
                            break
                        request += data
                    if not request:
                        break
                    header = b"Connection: close\r\n" if close else b""
                    connection.sendall(b"HTTP/1.1 200 OK\r\n" + header + b"Content-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_the_client_keeps_its_connection_until_the_server_closes_it(server: tuple[int, list[int]]) -> None:
    port, accepted = server
    client = HttpClient("127.0.0.1", port)
    request = encode_request(f"127.0.0.1:{port}", "/", b"{}")
    try:
        answers = [client.send(request) for _ in range(4)]
    finally:
        client.close()
    assert [(answer.status, answer.body) for answer in answers] == [(200, b"ok")] * 4
    assert [answer.keep_alive for answer in answers] == [True, False, True, False]
    assert client.connects == 2
    assert len(accepted) == 2
