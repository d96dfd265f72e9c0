"""The nightly job as code: a kind cluster, both images, ``pulumi up`` of the kind stack, port-forwards, forensics.

Used by the session fixture ``kind_env`` (``tests/conftest.py``) when pytest runs with ``--target kind``. The GitHub
workflow only installs the tools and calls ``make e2e-kind``; everything the job does is here and in the modules
beside it (:mod:`.forwards`, :mod:`.forensics`, :mod:`.stack`), so it can be read, reviewed and unit-tested
(``tests/kind/test_harness.py``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfops.base.contract import PROJECT_IMAGE, SERVING_V1_IMAGE
from kfops.base.paths import REPO_ROOT
from tests.kind.forensics import collect_forensics
from tests.kind.forwards import Forward, PortForward, kubectl_forward_command, platform_forwards, serving_forwards
from tests.kind.names import CLUSTER_NAME, NAMESPACE, STACK
from tests.kind.stack import stack_destroy, stack_up


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


def build_images(cluster: Any) -> None:
    """Build both images from this checkout and load them into the kind cluster (tags from the contract)."""
    for dockerfile, tag in (("trainer/Dockerfile", PROJECT_IMAGE), ("serving/Dockerfile", SERVING_V1_IMAGE)):
        subprocess.run(["docker", "build", "-f", dockerfile, "-t", tag, "."], cwd=REPO_ROOT, check=True)
        cluster.load_docker_image(tag)


def tool(name: str) -> Path:
    """A tool the job installs (kind, kubectl): pytest-kind-ng would otherwise download its own defaults (kind
    v0.17.0, kubectl v1.25.3), which cannot run the pinned node image or are far outside kubectl's version skew.

    Raises:
        RuntimeError: It is not on PATH.
    """
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not on PATH: install the version .github/workflows/nightly-kind.yaml pins")
    return Path(found).resolve()


def create_cluster(attempts: int = 3, kind: Path | None = None, kubectl: Path | None = None) -> Any:
    """A new kind cluster named :data:`CLUSTER_NAME` (pytest-kind-ng), recreated on a failed create.

    Raises:
        RuntimeError: A cluster of that name exists already: pytest-kind-ng would reuse it and the teardown would
            delete it, and it may be a developer's own (docs/cluster.md's ``kind create cluster --name kfops``).
    """
    kind, kubectl = kind or tool("kind"), kubectl or tool("kubectl")
    existing = subprocess.run([str(kind), "get", "clusters"], capture_output=True, text=True, check=True).stdout
    if CLUSTER_NAME in existing.split():
        raise RuntimeError(f"a kind cluster named {CLUSTER_NAME} exists already; the nightly harness creates and "
                           f"deletes its own: `kind delete cluster --name {CLUSTER_NAME}` if it is not yours")
    from pytest_kind import KindCluster

    kubeconfig = REPO_ROOT / ".pytest-kind" / CLUSTER_NAME / "kubeconfig"
    cluster = KindCluster(CLUSTER_NAME, kubeconfig=kubeconfig, image=os.environ.get("KIND_NODE_IMAGE"),
                          kind_path=kind, kubectl_path=kubectl)
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
