"""Clients that stall mid-request against the real seldon-core wrapper: they hold no worker, everyone else keeps
being answered, and each stalled client gets a 408 once its read timeout is up (no worker is killed)."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from infra.local.serving import LocalServing
from kfops_serving.protocols import seldon_v1
from tests.serving.conftest import NAME
from tests.serving.test_local_serving import TUTORIAL_ROW

pytestmark = pytest.mark.integration

#: Longer than any answer takes: only a hang trips it (the test makes no claim about time).
PATIENCE = 60


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=PATIENCE)
    return sock


def answer_of(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_clients_stalled_mid_upload_hold_no_worker_and_get_a_408(serving: LocalServing) -> None:
    url = serving.endpoints(NAME)["v1"]
    record = serving.platform.records()["seldon"]
    workers = {p.pid for p in psutil.Process(record.pid).children()}
    expected = requests.post(url, data=seldon_v1([TUTORIAL_ROW]), headers={"Content-Type": "application/json"},
                             timeout=PATIENCE).json()["data"]["ndarray"]
    body = seldon_v1([TUTORIAL_ROW] * 50)
    head = (f"POST /api/v1.0/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    stalled = []
    for part in [head + body[:100]] * 6 + [head[:30]] * 3 + [b""] * 3:  # mid-body, mid-header, nothing sent
        sock = connect(url)
        sock.sendall(part)
        stalled.append(sock)
    try:
        with requests.Session() as session:
            for _ in range(20):
                response = session.post(url, data=seldon_v1([TUTORIAL_ROW]), timeout=PATIENCE,
                                        headers={"Content-Type": "application/json"})
                assert response.status_code == 200, response.text
                assert response.json()["data"]["ndarray"] == expected
        for sock in stalled:
            answer = answer_of(sock)
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["status"]["code"] == 408
    finally:
        for sock in stalled:
            sock.close()
    assert {p.pid for p in psutil.Process(record.pid).children()} == workers, "a worker was replaced"
