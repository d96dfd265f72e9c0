"""Recognising a process again later, or knowing that it is gone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from components.promote import Lease
from kfops.base.liveness import ProcessIdentity, _proc_start_time, process_start_time

pytestmark = pytest.mark.unit


def test_this_process_is_alive_and_a_killed_one_is_not() -> None:
    assert ProcessIdentity.current().alive() is True
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    identity = ProcessIdentity(ProcessIdentity.current().host, child.pid, process_start_time(child.pid) or 0.0)
    assert identity.alive() is True
    child.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not collected: a zombie
    assert identity.alive() is False, "an exited process is gone even before its parent collects it"
    child.wait()
    assert identity.alive() is False


def test_a_recycled_pid_is_not_the_same_process() -> None:
    me = ProcessIdentity.current()
    assert ProcessIdentity(me.host, me.pid, me.started - 60).alive() is False


def test_another_hosts_process_cannot_be_told() -> None:
    assert ProcessIdentity("some-other-host", 1, 1.0).alive() is None


def test_proc_and_psutil_agree_on_the_start_time() -> None:
    assert _proc_start_time(os.getpid()) == pytest.approx(process_start_time(os.getpid()), abs=0.05)


@pytest.mark.parametrize(("tag", "token", "expires"), [("abc 1700000000", "abc", 1700000000.0),
                                                       ("abc", "abc", 0.0), ("abc soon", "abc", 0.0)])
def test_a_lease_of_an_older_kfops_can_only_expire(tag: str, token: str, expires: float) -> None:
    lease = Lease.from_tag(tag)
    assert lease is not None
    assert (lease.token, lease.expires, lease.holder) == (token, expires, None)
    assert not lease.dead_holder()


def test_a_lease_round_trips_through_its_tag() -> None:
    lease = Lease("t", 123.5, ProcessIdentity.current())
    assert Lease.from_tag(lease.to_tag()) == lease
    assert Lease.from_tag("") is None
