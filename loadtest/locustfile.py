"""Load on the champion's prediction endpoints: one ``User`` class per protocol, picked on the command line.

::

    locust -f loadtest/locustfile.py OpenInferenceUser --host http://127.0.0.1:8080 --headless -u 20 -r 20 -t 30s
    locust -f loadtest/locustfile.py SeldonUser --host http://127.0.0.1:9000 --headless -u 20 -r 20 -t 30s
    locust -f loadtest/locustfile.py MlflowServeUser --host http://127.0.0.1:5001 ...   # the benchmark's baseline

Every request carries real rows of the dataset (:mod:`loadtest.payloads`); paths come from the protocols' one
definition (:mod:`kfops_serving.protocols`). The loop is closed by default: each user sends its next request as soon
as the previous answer arrives, so ``-u`` is the number of requests in flight. ``--rate R`` makes each user send at
most ``R`` requests per second instead (open-loop-like pacing with Locust's ``constant_throughput``). The SLO gate
(:mod:`loadtest.slo`) sets Locust's exit code.
"""

from __future__ import annotations

from typing import Any, ClassVar

from locust import FastHttpUser, constant, constant_throughput, events, task

from kfops_serving.protocols import (
    MLFLOW_INVOCATIONS_PATH,
    V1_PREDICTIONS_PATH,
    mlflow_invocations,
    open_inference_v2,
    seldon_v1,
    served_model_name,
    v2_infer_path,
)
from loadtest import slo  # noqa: F401 - registers the SLO gate and its options
from loadtest.payloads import SETTINGS, batches, feature_rows, user_bodies

MODEL = SETTINGS.model_name
JSON = {"Content-Type": "application/json"}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--rate", type=float, default=0.0,
                        help="Requests per second per user (0: closed loop, no wait between requests).")


class PredictionUser(FastHttpUser):
    """Posts prediction requests, each with real dataset rows; anything but HTTP 200 counts as a failure."""

    abstract = True
    #: Path of the prediction endpoint.
    path: ClassVar[str]
    #: Request bodies this protocol sends, built once per process.
    bodies: ClassVar[tuple[bytes, ...]]
    #: Name of the request in Locust's statistics.
    label: ClassVar[str]

    def wait_time(self) -> float:
        """No wait (closed loop), or pacing to ``--rate`` requests per second."""
        rate = self.environment.parsed_options.rate if self.environment.parsed_options else 0.0
        return (constant_throughput(rate) if rate > 0 else constant(0))(self)

    def on_start(self) -> None:
        """Each user cycles through the same bodies from its own offset."""
        self.cycle = user_bodies(self.bodies, self)

    @task
    def predict(self) -> None:
        """One prediction request."""
        self.client.post(self.path, data=next(self.cycle), headers=JSON, name=self.label)


class OpenInferenceUser(PredictionUser):
    """Open Inference (v2) protocol on MLServer: one 2-D FP64 tensor per request."""

    path = v2_infer_path(served_model_name(MODEL))
    bodies = tuple(open_inference_v2(batch) for batch in batches())
    label = "v2 infer"


class SeldonUser(PredictionUser):
    """Seldon (v1) protocol on the seldon-core wrapper: ``{"data": {"ndarray": rows}}``."""

    path = V1_PREDICTIONS_PATH
    bodies = tuple(seldon_v1(batch) for batch in batches())
    label = "v1 predictions"


class MlflowServeUser(PredictionUser):
    """MLflow's own scoring server (``mlflow models serve``): a split-oriented DataFrame."""

    path = MLFLOW_INVOCATIONS_PATH
    bodies = tuple(mlflow_invocations(batch, feature_rows()[0]) for batch in batches())
    label = "mlflow invocations"
