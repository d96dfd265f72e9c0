"""Fixtures of the Pulumi program's unit tests: a small real compiled pipeline and stack config builders."""

# No `from __future__ import annotations`: KFP reads the component signature below at run time.

import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.cluster.mock_runtime import Rendering, run_program
from kfops.base.contract import PIPELINE_NAME, PROJECT_IMAGE

#: Config of a stack on a real cluster (what Pulumi.example.yaml holds, with plain values for the secrets).
CLUSTER_CONFIG = {
    "kfops:namespace": "team-ml",
    "kfops:s3Endpoint": "http://s3.storage.svc.cluster.local:9000",
    "kfops:s3AccessKey": "AKIATESTACCESSKEY000",
    "kfops:s3SecretKey": "test-secret-key-that-must-never-be-rendered",
    "kubernetes:context": "some-cluster",
}
CLUSTER_SECRETS = ("kfops:s3AccessKey", "kfops:s3SecretKey")


def compile_small_pipeline(path: Path) -> str:
    """Compile a one-step KFP v2 pipeline configured for the cluster the way the real workflow's steps are."""
    from kfp import compiler, dsl

    from pipelines.workflow import _for_cluster

    @dsl.component(base_image=PROJECT_IMAGE)
    def echo(message: str) -> str:
        return message

    @dsl.pipeline(name=PIPELINE_NAME, description="A small pipeline for the Pulumi program's tests.")
    def small(message: str = "hello") -> None:
        _for_cluster(echo(message=message))

    compiler.Compiler().compile(small, str(path))
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def pipeline_yaml(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The small pipeline, compiled once per session."""
    return compile_small_pipeline(tmp_path_factory.mktemp("pipeline") / "small.yaml")


@pytest.fixture
def small_workflow(pipeline_yaml: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the program deploy the small pipeline instead of the real workflow (fast, and independent of it)."""
    module = types.ModuleType("pipelines.compile")
    module.compile_workflow = lambda: pipeline_yaml  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pipelines.compile", module)
    return pipeline_yaml


@pytest.fixture
def render_program(small_workflow: str) -> Callable[..., Rendering]:
    """Run infra/__main__.py under the mock runtime: ``render_program(config, secret_keys)``."""

    def render(config: dict[str, str] | None = None, secret_keys: tuple[str, ...] = CLUSTER_SECRETS) -> Rendering:
        return run_program(CLUSTER_CONFIG if config is None else config, secret_keys)

    return render


@pytest.fixture
def cluster_rendering(render_program: Callable[..., Rendering]) -> Rendering:
    """The program rendered with :data:`CLUSTER_CONFIG`."""
    return render_program()


@pytest.fixture(scope="session")
def real_rendering() -> Rendering:
    """The program with the real compiled workflow (not the small one): what `pulumi up` would deploy."""
    return run_program(CLUSTER_CONFIG, CLUSTER_SECRETS)
