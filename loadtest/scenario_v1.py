"""Seldon (v1) protocol load on the seldon-core wrapper: ``/api/v1.0/predictions``.

Closed loop: no think time, ``-u`` requests in flight. ``locust -f loadtest/scenario_v1.py --host
http://127.0.0.1:9000``.
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task

from loadtest import slo  # noqa: F401 - registers the SLO gate
from loadtest.payloads import batches, user_bodies
from serving.protocols import seldon_v1

BODIES = [seldon_v1(batch) for batch in batches()]


class SeldonUser(FastHttpUser):
    """Posts Seldon predictions with real dataset rows."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Each user cycles through the same bodies from its own offset."""
        self.bodies = user_bodies(BODIES, self)

    @task
    def predict(self) -> None:
        """One prediction request; anything but HTTP 200 counts as a failure."""
        self.client.post("/api/v1.0/predictions", data=next(self.bodies),
                         headers={"Content-Type": "application/json"}, name="v1 predictions")
