"""Port-forwards from the runner to the cluster's Services: opened once they answer, restarted when they die.

Services reached from the runner (the upstream facts name upstream's, the program names its own):

=====================  ================================  ==========================================
what                   Service (namespace ``kubeflow``)  remote port
=====================  ================================  ==========================================
KFP API                ``ml-pipeline``                   8888 (:data:`kfops.base.upstream.kfp.API`)
object store (S3)      ``seaweedfs``                     9000 (:data:`kfops.base.upstream.kfp.OBJECT_STORE`)
MLflow                 ``kfops-mlflow``                  5000 (:mod:`infra.cluster.tracking`)
champion, v2           ``kfops-model-default``           8000 (Seldon's predictor Service)
champion, v1           ``kfops-model-v1-default``        8000
=====================  ================================  ==========================================
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components.deploy import GRPC_ENDPOINT, SELDON_GRPC_PORT, SELDON_HTTP_PORT, ServingSettings
from infra.cluster.tracking import SERVER_NAME, SERVER_PORT
from kfops.base.upstream import kfp
from tests.kind.names import NAMESPACE


@dataclass(frozen=True)
class Forward:
    """A Service to port-forward: name, namespace, remote port, and the HTTP path that answers once it is up.

    A ``grpc`` forward is up once an HTTP/2 connection to the service is established (no RPC: Seldon's executor
    crashes on the health RPCs it does not implement, kfops.base.upstream.seldon.EXECUTOR_V2_GRPC_METHODS). An HTTP
    forward is up once ``ready_path`` answers, with a 2xx if ``ok_only`` (else any status: an S3 gateway answers an
    anonymous GET with 403).
    """

    service: str
    remote_port: int
    ready_path: str = "/"
    namespace: str = NAMESPACE
    scheme: str = "http"
    ok_only: bool = False


def platform_forwards() -> dict[str, Forward]:
    """The services the tests reach as soon as the stack is up."""
    return {
        "kfp": Forward(kfp.API.name, kfp.API.port, "/apis/v2beta1/healthz"),
        "s3": Forward(kfp.OBJECT_STORE.name, kfp.OBJECT_STORE.port, "/"),
        # An API call, not /health: MLflow exempts /health from its Host check, so /health answering proves nothing
        # about whether the forward's clients (Host 127.0.0.1:<port>) are allowed.
        "mlflow": Forward(SERVER_NAME, SERVER_PORT, "/api/2.0/mlflow/experiments/search?max_results=1",
                          ok_only=True),
    }


def serving_forwards(settings: ServingSettings | None = None) -> dict[str, Forward]:
    """The champion's Services (they exist once the workflow's deploy step ran)."""
    settings = settings or ServingSettings()
    forwards = {protocol: Forward(settings.service_for(protocol), SELDON_HTTP_PORT, "/ready")
                for protocol in ("v2", "v1")}
    forwards[GRPC_ENDPOINT] = Forward(settings.service_for("v2"), SELDON_GRPC_PORT, "", scheme="grpc")
    return forwards


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str, timeout: float = 2.0, ok_only: bool = False) -> bool:
    import urllib.error
    import urllib.request

    if url.startswith("grpc://"):
        import grpc

        with grpc.insecure_channel(url.removeprefix("grpc://")) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=timeout)
            except grpc.FutureTimeoutError:
                return False
            return True

    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - a local port-forward
            return True
    except urllib.error.HTTPError:
        return not ok_only  # the service answered, if not with 2xx
    except OSError:
        return False


class PortForward:
    """``kubectl port-forward`` that waits until the service answers and restarts when the forward dies.

    kubectl's forward dies with its pod or on a broken connection and never comes back by itself; a watcher thread
    restarts it (with backoff) on the same local port for as long as the forward is open.

    Args:
        forward: What to forward.
        command: Builds the process's argv from ``(forward, local_port)``; kubectl by default (a test may run any
            process that listens on the port).
        env: Environment of the process (``KUBECONFIG``).
    """

    def __init__(self, forward: Forward, command: Callable[[Forward, int], list[str]] | None = None,
                 env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.forward = forward
        self.port = free_port()
        self.command = command or kubectl_forward_command
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self.forward.scheme}://127.0.0.1:{self.port}"

    def _start(self) -> None:
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(self.command(self.forward, self.port), env=self.env,
                                            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if self.log:
                output.close()  # type: ignore[union-attr]

    def open(self, timeout: float = 300.0, attempts: int = 5) -> PortForward:
        """Start the forward and wait until the service answers; retry a forward that dies or never answers.

        Raises:
            TimeoutError: It never answered (every attempt's output is in ``log``).
        """
        deadline = time.monotonic() + timeout
        for attempt in range(attempts):
            self._start()
            while time.monotonic() < deadline and self.process is not None and self.process.poll() is None:
                if _answers(self.url + self.forward.ready_path, ok_only=self.forward.ok_only):
                    self._watcher = threading.Thread(target=self._watch, daemon=True,
                                                     name=f"forward-{self.forward.service}")
                    self._watcher.start()
                    return self
                time.sleep(1)
            self._stop_process()
            if time.monotonic() >= deadline:
                break
            time.sleep(min(2 ** attempt, 10))
        raise TimeoutError(f"port-forward to svc/{self.forward.service}:{self.forward.remote_port} in "
                           f"{self.forward.namespace} never answered {self.forward.ready_path}")

    def _watch(self) -> None:
        backoff = 1.0
        while not self._closed.wait(0.5):
            if self.process is not None and self.process.poll() is not None:
                self._closed.wait(backoff)
                if self._closed.is_set():
                    return
                self.restarts += 1
                self._start()
                backoff = min(backoff * 2, 10.0)

    def _stop_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 15)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()

    def close(self) -> None:
        """Stop the forward (and its watcher)."""
        self._closed.set()
        if self._watcher is not None:
            self._watcher.join(5)
        self._stop_process()


def kubectl_forward_command(forward: Forward, local_port: int, kubectl: str = "kubectl") -> list[str]:
    return [kubectl, "-n", forward.namespace, "port-forward", f"svc/{forward.service}",
            f"{local_port}:{forward.remote_port}", "--address", "127.0.0.1"]


def local_endpoint(in_cluster: str, local_base: str) -> str:
    """An in-cluster prediction URL (``http://<svc>.<ns>.svc.cluster.local:8000/<path>``, or ``grpc://<svc>...:5001``)
    on a local forward."""
    _, _, rest = in_cluster.partition("://")
    _, slash, path = rest.partition("/")
    return f"{local_base}{slash}{path}"
