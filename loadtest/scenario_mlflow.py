"""Baseline load on ``mlflow models serve`` (MLflow's own scoring server): ``/invocations``.

Closed loop: no think time, ``-u`` requests in flight. ``locust -f loadtest/scenario_mlflow.py --host
http://127.0.0.1:5001``.
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task

from loadtest import slo  # noqa: F401 - registers the SLO gate
from loadtest.payloads import batches, feature_rows, user_bodies
from serving.protocols import mlflow_invocations

BODIES = [mlflow_invocations(batch, feature_rows()[0]) for batch in batches()]


class MlflowServeUser(FastHttpUser):
    """Posts MLflow scoring requests with real dataset rows."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Each user cycles through the same bodies from its own offset."""
        self.bodies = user_bodies(BODIES, self)

    @task
    def invocations(self) -> None:
        """One scoring request; anything but HTTP 200 counts as a failure."""
        self.client.post("/invocations", data=next(self.bodies), headers={"Content-Type": "application/json"},
                         name="mlflow invocations")
