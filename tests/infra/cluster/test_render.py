from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from pulumi.runtime import rpc

from infra.cluster.mock_runtime import SECRET_PLACEHOLDER, scrub
from infra.cluster.render import MARKER, render_stack
from infra.cluster.stack_config import ENCRYPTED_CONFIG_STAND_IN, load_stack_config
from infra.cluster.validate import validate_manifest
from kfops.base.errors import KfopsError
from kfops.base.paths import REPO_ROOT

pytestmark = pytest.mark.unit


def stack_dir(tmp_path: Path, config: str) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    (root / "Pulumi.test.yaml").write_text(config, encoding="utf-8")
    return root


@pytest.mark.parametrize("stack", ["kind", "example"])
def test_checked_in_stacks_render_to_valid_manifests(stack: str, tmp_path: Path, small_workflow: str) -> None:
    written = render_stack(stack, tmp_path / "out")
    manifests = [path for path in written if not path.name.startswith("_")]
    assert len(manifests) >= 15
    for path in manifests:
        validate_manifest(yaml.safe_load(path.read_text()))
    assert {path.name for path in written} >= {"_pulumi-resources.yaml", "_stack-outputs.yaml"}


def test_render_writes_one_file_per_object_named_after_it(tmp_path: Path, small_workflow: str) -> None:
    written = render_stack("kind", tmp_path / "out")
    names = {path.name for path in written}
    assert "01-namespace-kubeflow.yaml" in names
    assert any(name.endswith("-secret-kubeflow-mlpipeline-minio-artifact.yaml") for name in names)


def test_secret_values_are_never_written(tmp_path: Path, small_workflow: str) -> None:
    credential = "a-credential-that-must-not-leak-1234"
    root = stack_dir(tmp_path, f"""config:
  kfops:namespace: team-ml
  kfops:s3Endpoint: http://s3:9000
  kfops:s3AccessKey:
    secure: {credential}
  kfops:s3SecretKey:
    secure: {credential}
""")
    written = render_stack("test", tmp_path / "out", root=root)
    for path in written:
        text = path.read_text()
        assert credential not in text
        assert ENCRYPTED_CONFIG_STAND_IN not in text, path.name
    secret = yaml.safe_load(next(path for path in written if "mlpipeline-minio-artifact" in path.name).read_text())
    assert set(secret["stringData"].values()) == {SECRET_PLACEHOLDER}
    outputs = yaml.safe_load((tmp_path / "out" / "_stack-outputs.yaml").read_text())
    assert outputs["s3AccessKey"] == outputs["s3SecretKey"] == SECRET_PLACEHOLDER


def test_encrypted_config_is_a_secret_the_program_cannot_read() -> None:
    _project, config, secret_keys = load_stack_config("example")
    assert config["kfops:s3AccessKey"] == ENCRYPTED_CONFIG_STAND_IN
    assert set(secret_keys) == {"kfops:s3AccessKey", "kfops:s3SecretKey"}


def test_bad_config_fails_naming_the_key(tmp_path: Path, small_workflow: str) -> None:
    root = stack_dir(tmp_path, "config:\n  kfops:installPlatform: true\n  kfops:mlflowMod: external\n")
    with pytest.raises(KfopsError, match=r"kfops:mlflowMod.*did you mean kfops:mlflowMode"):
        render_stack("test", tmp_path / "out", root=root)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stack", ["nope", "../kind", ""])
def test_unknown_stack_lists_the_known_ones(stack: str, tmp_path: Path) -> None:
    with pytest.raises(KfopsError, match="kind") as caught:
        render_stack(stack, tmp_path / "out")
    assert repr(stack) in str(caught.value)


def test_a_directory_with_other_files_is_not_overwritten(tmp_path: Path, small_workflow: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.yaml").write_text("mine")
    with pytest.raises(KfopsError, match="did not write"):
        render_stack("kind", out)
    assert (out / "notes.yaml").read_text() == "mine"


def test_a_previous_render_is_replaced(tmp_path: Path, small_workflow: str) -> None:
    out = tmp_path / "out"
    first = render_stack("kind", out)
    (out / "99-stale.yaml").write_text("old")
    second = render_stack("kind", out)
    assert (out / MARKER).is_file()
    assert not (out / "99-stale.yaml").exists()
    assert [path.name for path in first] == [path.name for path in second]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (rpc.wrap_rpc_secret("s3cr3t"), SECRET_PLACEHOLDER),
        ({"a": rpc.wrap_rpc_secret({"k": "v", "n": 1})}, {"a": {"k": SECRET_PLACEHOLDER, "n": SECRET_PLACEHOLDER}}),
        ({"replicas": 1.0, "ratio": 0.5}, {"ratio": 0.5, "replicas": 1}),
        ({"__provider": "pickled", "kept": True}, {"kept": True}),
    ],
)
def test_scrub(value: object, expected: object) -> None:
    assert scrub(value) == expected


def test_the_real_workflow_renders(tmp_path: Path) -> None:
    """The program with pipelines.compile as it is in the repository (the other tests use a small pipeline)."""
    written = render_stack("kind", tmp_path / "out")
    version = yaml.safe_load(next(path for path in written if "-pipelineversion-" in path.name).read_text())
    assert version["spec"]["pipelineSpec"]["pipelineInfo"]["name"] == version["spec"]["pipelineName"]
