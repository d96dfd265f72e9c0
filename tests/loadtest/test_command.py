from __future__ import annotations

import pytest

from loadtest.command import LOCUSTFILE, endpoint_host, locust_command

pytestmark = pytest.mark.unit


def test_each_endpoint_url_gives_locust_its_host() -> None:
    assert endpoint_host("v2", "http://127.0.0.1:8080/v2/models/wine/infer") == "http://127.0.0.1:8080"
    assert endpoint_host("v1", "http://127.0.0.1:40000/api/v1.0/predictions") == "http://127.0.0.1:40000"
    assert endpoint_host("v2-grpc", "grpc://127.0.0.1:9500") == "grpc://127.0.0.1:9500"


def test_the_command_runs_the_one_locustfile_headless_with_every_user_started_at_once() -> None:
    command = locust_command("SeldonUser", "http://h:1", 4, 3, "--csv", "out")
    assert LOCUSTFILE.is_file()
    assert command[1:4] == ["-f", str(LOCUSTFILE), "SeldonUser"]
    assert command[4:] == ["--headless", "-u", "4", "-r", "4", "-t", "3s", "--host", "http://h:1", "--only-summary",
                           "--csv", "out"]
