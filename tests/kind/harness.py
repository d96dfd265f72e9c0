"""The nightly job as code: a kind cluster, both images, ``pulumi up`` of the kind stack, port-forwards, forensics.

Used by the session fixture ``kind_environment`` (``tests/kind/conftest.py``) when pytest runs with
``--target kind``. The GitHub workflow only installs the tools and calls ``make e2e-kind``; everything the job does is
here, so it can be read, reviewed and unit-tested (``tests/kind/test_harness.py``).

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
import functools
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.deploy import GRPC_ENDPOINT, SELDON_GRPC_PORT, SELDON_HTTP_PORT, ServingSettings
from infra.cluster.tracking import SERVER_NAME, SERVER_PORT
from kfops.base.contract import PROJECT_IMAGE, SERVING_V1_IMAGE
from kfops.base.paths import REPO_ROOT
from kfops.base.upstream import cert_manager, katib, kfp, seldon

#: Cluster name: Pulumi.kind.yaml's ``kubernetes:context`` is ``kind-<name>``.
CLUSTER_NAME = "kfops"
STACK = "kind"
NAMESPACE = kfp.NAMESPACE
#: Namespaces whose pods, events and logs are collected when a test fails.
FORENSIC_NAMESPACES = (NAMESPACE, cert_manager.NAMESPACE, seldon.WEBHOOK.namespace)


@dataclass(frozen=True)
class Forward:
    """A Service to port-forward: name, namespace, remote port, and the HTTP path that answers once it is up.

    A ``grpc`` forward is up once an HTTP/2 connection to the service is established (no RPC: Seldon's executor
    crashes on the health RPCs it does not implement, kfops.base.upstream.seldon.EXECUTOR_V2_GRPC_METHODS).
    """

    service: str
    remote_port: int
    ready_path: str = "/"
    namespace: str = NAMESPACE
    scheme: str = "http"


def platform_forwards() -> dict[str, Forward]:
    """The services the tests reach as soon as the stack is up."""
    return {
        "kfp": Forward(kfp.API.name, kfp.API.port, "/apis/v2beta1/healthz"),
        "s3": Forward(kfp.OBJECT_STORE.name, kfp.OBJECT_STORE.port, "/"),
        "mlflow": Forward(SERVER_NAME, SERVER_PORT, "/health"),
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


def _answers(url: str, timeout: float = 2.0) -> bool:
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
        return True  # the service answered, if not with 200 (MinIO-style S3 answers 403 to an anonymous GET)
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
                if _answers(self.url + self.forward.ready_path):
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


Kubectl = Callable[..., str]


def forensic_commands(namespaces: Sequence[str] = FORENSIC_NAMESPACES) -> list[tuple[str, list[str]]]:
    """``(file name, kubectl args)`` of what to keep when the nightly job fails (pod logs are listed later)."""
    commands: list[tuple[str, list[str]]] = [
        ("nodes.txt", ["describe", "nodes"]),
        ("pods-all.txt", ["get", "pods", "-A", "-o", "wide"]),
    ]
    for namespace in namespaces:
        commands += [
            (f"{namespace}/events.txt", ["-n", namespace, "get", "events", "--sort-by=.lastTimestamp"]),
            (f"{namespace}/describe-pods.txt", ["-n", namespace, "describe", "pods"]),
        ]
    commands += [
        (f"{NAMESPACE}/experiments.yaml", ["-n", NAMESPACE, "get", "experiments,trials", "-o", "yaml"]),
        (f"{NAMESPACE}/seldondeployments.yaml", ["-n", NAMESPACE, "get", "seldondeployments", "-o", "yaml"]),
        (f"{NAMESPACE}/pipelines.yaml", ["-n", NAMESPACE, "get", "pipelines,pipelineversions", "-o", "yaml"]),
        (f"{NAMESPACE}/workflows.yaml", ["-n", NAMESPACE, "get", "workflows.argoproj.io", "-o", "yaml"]),
    ]
    return commands


def collect_forensics(kubectl: Kubectl, out: Path, namespaces: Sequence[str] = FORENSIC_NAMESPACES) -> list[str]:
    """Write what explains a failure under ``out``: cluster state, events, and every container's logs.

    A command that fails is noted in its file and the rest still run. Returns the files written.
    """
    written = []

    def keep(name: str, args: list[str]) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = kubectl(*args)
        except Exception as error:  # forensics must go on whatever failed
            text = f"kubectl {' '.join(args)} failed: {error}\n"
        path.write_text(text)
        written.append(name)

    for name, args in forensic_commands(namespaces):
        keep(name, args)
    for namespace in namespaces:
        try:
            pods = json.loads(kubectl("-n", namespace, "get", "pods", "-o", "json")).get("items", [])
        except Exception as error:  # the namespace may not exist (yet)
            (out / f"{namespace}-pods.error.txt").write_text(str(error))
            pods = []
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            spec = pod.get("spec", {})
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                for previous in (False, True):
                    suffix = ".previous" if previous else ""
                    args = ["-n", namespace, "logs", pod_name, "-c", container["name"]]
                    keep(f"{namespace}/logs/{pod_name}.{container['name']}{suffix}.log",
                         [*args, "--previous"] if previous else args)
    return written


def clear_katib_finalizers(kubectl: Kubectl, namespace: str = NAMESPACE) -> list[str]:
    """Remove the finalizers of every Katib Experiment and Trial in ``namespace``.

    Katib's controller removes them itself (``update-prometheus-metrics``, ``clean-metrics-in-db``); once ``pulumi
    destroy`` has removed the controller, deleting the namespace would hang on them forever.
    """
    cleared = []
    for kind in ("experiments.kubeflow.org", "trials.kubeflow.org"):
        try:
            names = kubectl("-n", namespace, "get", kind, "-o", "name").split()
        except Exception as error:  # the CRD may already be gone
            print(f"not clearing {kind} finalizers: {error}")
            names = []
        for name in names:
            kubectl("-n", namespace, "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
            cleared.append(name)
    return cleared


#: Finalizers the facts say only Katib's controller removes.
KATIB_FINALIZERS = (katib.EXPERIMENT_FINALIZER.value, katib.TRIAL_FINALIZER.value)


def bounded(action: Callable[[], Any], seconds: float, what: str) -> Any:
    """Run ``action`` in a thread; raise TimeoutError if it is not done within ``seconds`` (it is left running)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = action()
        except BaseException as error:  # re-raised in the caller's thread
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True, name=what)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not finish within {seconds:.0f} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


@dataclass
class KindEnvironment:
    """What the e2e tests need from the cluster: URLs on the runner, credentials, and the kubectl to use."""

    kubeconfig: Path
    urls: dict[str, str]
    outputs: dict[str, Any] = field(default_factory=dict)
    forwards: dict[str, PortForward] = field(default_factory=dict)
    kubectl: str = "kubectl"
    logs: Path = Path("kind-forensics")

    def forward(self, name: str, forward: Forward) -> PortForward:
        """Open (once) a port-forward with this cluster's kubectl and kubeconfig."""
        if name not in self.forwards:
            self.logs.mkdir(parents=True, exist_ok=True)
            command = functools.partial(kubectl_forward_command, kubectl=self.kubectl)
            self.forwards[name] = PortForward(forward, command=command,
                                              env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
                                              log=self.logs / f"forward-{name}.log").open()
        return self.forwards[name]

    def env(self) -> dict[str, str]:
        """Variables the product's cluster runner and the tests' MLflow and S3 clients read."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "KFOPS_KFP_HOST": self.urls["kfp"],
            "KFOPS_NAMESPACE": NAMESPACE,
            "MLFLOW_TRACKING_URI": self.urls["mlflow"],
            "MLFLOW_S3_ENDPOINT_URL": self.urls["s3"],
            "AWS_ENDPOINT_URL_S3": self.urls["s3"],
            "AWS_ACCESS_KEY_ID": str(self.outputs.get("s3AccessKey", "")),
            "AWS_SECRET_ACCESS_KEY": str(self.outputs.get("s3SecretKey", "")),
        }

    def open_serving(self) -> dict[str, str]:
        """Port-forward the champion's Services (after the deploy step); their local base URLs by protocol."""
        return {protocol: self.forward(protocol, forward).url for protocol, forward in serving_forwards().items()}


def local_endpoint(in_cluster: str, local_base: str) -> str:
    """An in-cluster prediction URL (``http://<svc>.<ns>.svc.cluster.local:8000/<path>``, or ``grpc://<svc>...:5001``)
    on a local forward."""
    _, _, rest = in_cluster.partition("://")
    _, slash, path = rest.partition("/")
    return f"{local_base}{slash}{path}"


def build_images(cluster: Any) -> None:
    """Build both images from this checkout and load them into the kind cluster (tags from the contract)."""
    for dockerfile, tag in (("trainer/Dockerfile", PROJECT_IMAGE), ("serving/Dockerfile", SERVING_V1_IMAGE)):
        subprocess.run(["docker", "build", "-f", dockerfile, "-t", tag, "."], cwd=REPO_ROOT, check=True)
        cluster.load_docker_image(tag)


def create_cluster(attempts: int = 3) -> Any:
    """A kind cluster named :data:`CLUSTER_NAME` (pytest-kind-ng), recreated on a failed create."""
    from pytest_kind import KindCluster

    cluster = KindCluster(CLUSTER_NAME, image=os.environ.get("KIND_NODE_IMAGE"))
    for attempt in range(attempts):
        try:
            cluster.create()
            cluster.kubectl("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=300s")
            return cluster
        except subprocess.CalledProcessError:
            with contextlib.suppress(subprocess.CalledProcessError):
                cluster.delete()
            if attempt == attempts - 1:
                raise
            time.sleep(10)
    raise AssertionError("unreachable")


def stack(kubeconfig: Path) -> Any:
    """The ``kind`` stack of this project (Pulumi Automation API; a local state backend unless one is set)."""
    from pulumi import automation as auto

    env = {"KUBECONFIG": str(kubeconfig)}
    backend = os.environ.get("PULUMI_BACKEND_URL")
    if not backend:
        state = REPO_ROOT / ".pulumi-state"
        state.mkdir(exist_ok=True)
        env["PULUMI_BACKEND_URL"] = f"file://{state}"
    options = auto.LocalWorkspaceOptions(work_dir=str(REPO_ROOT), env_vars=env)
    return auto.create_or_select_stack(STACK, work_dir=str(REPO_ROOT), opts=options)


def stack_up(kubeconfig: Path) -> dict[str, Any]:
    """``pulumi up`` of the kind stack, then prove it idempotent: a second preview must plan no change.

    Raises:
        pulumi.automation.errors.CommandError: ``up`` failed, or the preview found changes.
    """
    kind_stack = stack(kubeconfig)
    kind_stack.up(on_output=print, color="never")
    kind_stack.preview(expect_no_changes=True, on_output=print, color="never")
    return {name: output.value for name, output in kind_stack.outputs().items()}


def stack_destroy(kubeconfig: Path, kubectl: Kubectl, seconds: float = 1200) -> None:
    """``pulumi destroy``, bounded in time; Katib's finalizers are cleared first so nothing can hang on them."""
    clear_katib_finalizers(kubectl)
    kind_stack = stack(kubeconfig)
    bounded(lambda: kind_stack.destroy(on_output=print, color="never"), seconds, "pulumi destroy")


@contextlib.contextmanager
def kind_environment(forensics: Path, failed: Callable[[], bool]) -> Iterator[KindEnvironment]:
    """The whole nightly setup, torn down whatever happens; forensics under ``forensics`` if ``failed()``."""
    cluster = create_cluster()
    kubeconfig = Path(cluster.kubeconfig_path)
    environment = KindEnvironment(kubeconfig, urls={}, kubectl=str(cluster.kubectl_path), logs=forensics)
    try:
        build_images(cluster)
        environment.outputs = stack_up(kubeconfig)
        doctor(kubeconfig, forensics)
        for name, forward in platform_forwards().items():
            environment.urls[name] = environment.forward(name, forward).url
        yield environment
    except BaseException:
        collect_forensics(cluster.kubectl, forensics)
        raise
    else:
        if failed():
            collect_forensics(cluster.kubectl, forensics)
    finally:
        for forward in environment.forwards.values():
            forward.close()
        try:
            stack_destroy(kubeconfig, cluster.kubectl)
        finally:
            cluster.delete()


def doctor(kubeconfig: Path, out: Path) -> None:
    """``kfops doctor --stack kind --json`` right after ``up``: its report is kept with the forensics."""
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "kfops"), "doctor", "--stack", STACK, "--json"],
                            env={**os.environ, "KUBECONFIG": str(kubeconfig)}, capture_output=True, text=True,
                            check=False)
    (out / "doctor.json").write_text(result.stdout or result.stderr)
