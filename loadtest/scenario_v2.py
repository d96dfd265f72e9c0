"""Open Inference (v2) protocol load on MLServer: ``/v2/models/<KFOPS_MODEL_NAME>/infer``.

Closed loop: each simulated user sends the next request as soon as the previous answer arrives (no think time), so
``-u`` is the number of requests in flight. ``locust -f loadtest/scenario_v2.py --host http://127.0.0.1:8080``.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

from loadtest import slo  # noqa: F401 - registers the SLO gate
from loadtest.payloads import batches, user_bodies
from serving.protocols import open_inference_v2

MODEL = os.environ.get("KFOPS_MODEL_NAME", "kfops-winequality")
BODIES = [open_inference_v2(batch) for batch in batches()]


class OpenInferenceUser(FastHttpUser):
    """Posts v2 inference requests with real dataset rows."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Each user cycles through the same bodies from its own offset."""
        self.bodies = user_bodies(BODIES, self)

    @task
    def infer(self) -> None:
        """One inference request; anything but HTTP 200 counts as a failure."""
        self.client.post(f"/v2/models/{MODEL}/infer", data=next(self.bodies),
                         headers={"Content-Type": "application/json"}, name="v2 infer")
