"""Load on the champion's prediction endpoints: one ``User`` class per protocol, picked on the command line.

::

    locust -f loadtest/locustfile.py OpenInferenceUser --host http://127.0.0.1:8080 --headless -u 20 -r 20 -t 30s
    locust -f loadtest/locustfile.py SeldonUser --host http://127.0.0.1:9000 --headless -u 20 -r 20 -t 30s
    locust -f loadtest/locustfile.py MlflowServeUser --host http://127.0.0.1:5001 ...   # benchmark peers:
    locust -f loadtest/locustfile.py StockMLServerUser --host http://127.0.0.1:8090 ... # see benchmarks/
    locust -f loadtest/locustfile.py OpenInferenceGrpcUser --host grpc://127.0.0.1:8081 ...  # v2 over gRPC

Every request carries real rows of the dataset (:mod:`loadtest.payloads`); paths come from the protocols' one
definition (:mod:`kfops_serving.protocols`). The loop is closed by default: each user sends its next request as soon
as the previous answer arrives, so ``-u`` is the number of requests in flight. ``--rate R`` makes each user send at
most ``R`` requests per second instead (open-loop-like pacing with Locust's ``constant_throughput``). The SLO gate
(:mod:`loadtest.slo`) sets Locust's exit code.
"""

from __future__ import annotations

import random
import time
from typing import Any, ClassVar

# gRPC's own threads must cooperate with gevent, on which Locust runs its users: before any channel exists.
import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import FastHttpUser, User, constant, constant_throughput, events, task

from kfops_serving.protocols import (
    MLFLOW_INVOCATIONS_PATH,
    V1_PREDICTIONS_PATH,
    mlflow_invocations,
    open_inference_v2,
    seldon_v1,
    served_model_name,
    v2_infer_path,
)
from loadtest import slo, windows  # noqa: F401 - register the SLO gate, the per-window statistics and their options
from loadtest.payloads import (
    SETTINGS,
    batches,
    feature_rows,
    malformed_bodies,
    open_inference_columns,
    open_inference_grpc,
    user_bodies,
)

grpc_gevent.init_gevent()

MODEL = SETTINGS.model_name
JSON = {"Content-Type": "application/json"}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--rate", type=float, default=0.0,
                        help="Requests per second per user (0: closed loop, no wait between requests).")
    parser.add_argument("--malformed-share", type=float, default=0.0,
                        help="Share of requests sent malformed (0-1); each must be answered 4xx to count as a success.")


def _wait_time(user: User) -> float:
    """No wait (closed loop), or pacing to ``--rate`` requests per second."""
    rate = user.environment.parsed_options.rate if user.environment.parsed_options else 0.0
    return (constant_throughput(rate) if rate > 0 else constant(0))(user)


class PredictionUser(FastHttpUser):
    """Posts prediction requests, each with real dataset rows; anything but HTTP 200 counts as a failure."""

    abstract = True
    #: Path of the prediction endpoint.
    path: ClassVar[str]
    #: Request bodies this protocol sends, built once per process.
    bodies: ClassVar[tuple[bytes, ...]]
    #: Name of the request in Locust's statistics.
    label: ClassVar[str]
    #: Malformed bodies of this protocol (sent with ``--malformed-share``); empty where none are defined.
    malformed: ClassVar[tuple[bytes, ...]] = ()

    def wait_time(self) -> float:
        """No wait (closed loop), or pacing to ``--rate`` requests per second."""
        return _wait_time(self)

    def on_start(self) -> None:
        """Each user cycles through the same bodies from its own offset."""
        self.cycle = user_bodies(self.bodies, self)
        options = self.environment.parsed_options
        self.malformed_share = options.malformed_share if options and self.malformed else 0.0
        self.random = random.Random(id(self))  # noqa: S311 - traffic mix, not cryptography

    @task
    def predict(self) -> None:
        """One prediction request: a good one, or (``--malformed-share``) a malformed one that must get a 4xx."""
        if self.malformed_share and self.random.random() < self.malformed_share:
            body = self.random.choice(self.malformed)
            with self.client.post(self.path, data=body, headers=JSON, name=f"{self.label} (malformed)",
                                  catch_response=True) as response:
                if 400 <= response.status_code < 500:
                    response.success()
                else:
                    response.failure(f"malformed request answered {response.status_code}, not 4xx")
            return
        self.client.post(self.path, data=next(self.cycle), headers=JSON, name=self.label)


class OpenInferenceUser(PredictionUser):
    """Open Inference (v2) protocol on MLServer: one 2-D FP64 tensor per request."""

    path = v2_infer_path(served_model_name(MODEL))
    bodies = tuple(open_inference_v2(batch) for batch in batches())
    label = "v2 infer"
    malformed = malformed_bodies("v2", batches()[0])


class SeldonUser(PredictionUser):
    """Seldon (v1) protocol on the seldon-core wrapper: ``{"data": {"ndarray": rows}}``."""

    path = V1_PREDICTIONS_PATH
    bodies = tuple(seldon_v1(batch) for batch in batches())
    label = "v1 predictions"
    malformed = malformed_bodies("v1", batches()[0])


class MlflowServeUser(PredictionUser):
    """MLflow's own scoring server (``mlflow models serve``): a split-oriented DataFrame."""

    path = MLFLOW_INVOCATIONS_PATH
    bodies = tuple(mlflow_invocations(batch, feature_rows()[0]) for batch in batches())
    label = "mlflow invocations"


class StockMLServerUser(PredictionUser):
    """Stock MLServer with its MLflow runtime (the benchmark's peer): one 1-D input per named column."""

    path = v2_infer_path(MODEL)
    bodies = tuple(open_inference_columns(batch, feature_rows()[0]) for batch in batches())
    label = "stock v2 infer"


class OpenInferenceGrpcUser(User):
    """Open Inference (v2) protocol over gRPC (MLServer's gRPC port): ``--host grpc://127.0.0.1:<port>``."""

    label = "v2 grpc infer"

    def wait_time(self) -> float:
        """No wait (closed loop), or pacing to ``--rate`` requests per second."""
        return _wait_time(self)

    def on_start(self) -> None:
        """One channel per user, each cycling through the same requests from its own offset."""
        from mlserver.grpc import dataplane_pb2_grpc

        self.channel = grpc.insecure_channel((self.host or "").removeprefix("grpc://"))
        self.stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.cycle = user_bodies(tuple(open_inference_grpc(batch, served_model_name(MODEL)) for batch in batches()),
                                 self)

    def on_stop(self) -> None:
        """Close the channel."""
        self.channel.close()

    @task
    def predict(self) -> None:
        """One ``ModelInfer`` call, timed and reported as Locust reports an HTTP request."""
        began = time.perf_counter()
        length, error = 0, None
        try:
            length = self.stub.ModelInfer(next(self.cycle), timeout=30).ByteSize()
        except grpc.RpcError as failure:
            error = failure
        self.environment.events.request.fire(request_type="grpc", name=self.label, response_length=length,
                                             response_time=(time.perf_counter() - began) * 1000, exception=error,
                                             context={})
