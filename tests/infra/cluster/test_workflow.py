from __future__ import annotations

import pytest

from infra.cluster.mock_runtime import Rendering, record
from infra.cluster.validate import validate_all
from infra.cluster.workflow import CompiledPipeline, Workflow, WorkflowArgs
from kfops.base.contract import PIPELINE_NAME, S3_SECRET_NAME
from kfops.base.errors import KfopsError

pytestmark = pytest.mark.unit


def build(pipeline_yaml: str, **changes: object) -> Rendering:
    args = {"pipeline_spec_yaml": pipeline_yaml, "namespace": "team-ml", **changes}
    return record(lambda: Workflow("workflow", WorkflowArgs(**args)))  # type: ignore[arg-type]


def test_kubernetes_mode_applies_a_pipeline_and_its_version(pipeline_yaml: str) -> None:
    rendering = build(pipeline_yaml)
    pipeline = rendering.find("Pipeline", PIPELINE_NAME)
    assert pipeline["metadata"]["namespace"] == "team-ml"
    [version] = [obj for obj in rendering.manifests() if obj["kind"] == "PipelineVersion"]
    assert version["spec"]["pipelineName"] == PIPELINE_NAME
    assert version["metadata"]["name"].startswith(f"{PIPELINE_NAME}-")
    assert version["spec"]["pipelineSpec"]["pipelineInfo"]["name"] == PIPELINE_NAME
    assert "workflow-pipeline" in rendering.named("workflow-version").depends_on


def test_version_carries_the_platform_spec_that_mounts_the_s3_secret(pipeline_yaml: str) -> None:
    [version] = [obj for obj in build(pipeline_yaml).manifests() if obj["kind"] == "PipelineVersion"]
    executors = version["spec"]["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert all(executor["secretAsEnv"][0]["secretName"] == S3_SECRET_NAME for executor in executors.values())


def test_version_name_follows_content_not_formatting(pipeline_yaml: str) -> None:
    same = CompiledPipeline.parse(pipeline_yaml)
    reformatted = CompiledPipeline.parse("# a comment the compiler might add\n" + pipeline_yaml)
    assert same.digest() == reformatted.digest()
    changed = CompiledPipeline.parse(pipeline_yaml.replace("hello", "goodbye"))
    assert changed.digest() != same.digest()


def test_unchanged_pipeline_renders_the_same_version(pipeline_yaml: str) -> None:
    def version_name() -> str:
        return next(obj["metadata"]["name"] for obj in build(pipeline_yaml).manifests()
                    if obj["kind"] == "PipelineVersion")

    assert version_name() == version_name()


def test_api_mode_uploads_through_the_kfp_api(pipeline_yaml: str) -> None:
    rendering = build(pipeline_yaml, mode="api", api_url="http://localhost:8888")
    assert [obj["kind"] for obj in rendering.manifests()] == []
    [upload] = rendering.of_type("pulumi-python:dynamic:Resource")
    assert upload.inputs["api_url"] == "http://localhost:8888"
    assert upload.inputs["pipeline_spec_yaml"] == pipeline_yaml
    assert upload.inputs["version_name"].startswith(f"{PIPELINE_NAME}-")


def test_recurring_run_targets_the_deployed_version(pipeline_yaml: str) -> None:
    rendering = build(pipeline_yaml, api_url="http://localhost:8888", recurring_schedule="0 0 3 * * *")
    [recurring] = rendering.of_type("pulumi-python:dynamic:Resource")
    assert recurring.inputs["schedule"] == "0 0 3 * * *"
    assert recurring.inputs["version_id"]
    assert {"workflow-version", "workflow-pipeline"} <= recurring.depends_on


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("not YAML", "pipelineInfo: [unclosed"),
        ("not a pipeline", "apiVersion: v1\nkind: ConfigMap\n"),
        ("empty", ""),
        ("three documents", "pipelineInfo: {name: a}\nroot: {}\n---\na: 1\n---\nb: 2\n"),
    ],
)
def test_text_that_is_not_a_compiled_pipeline_is_refused(case: str, text: str) -> None:
    with pytest.raises(KfopsError, match="compiled pipeline"):
        CompiledPipeline.parse(text)


def test_every_object_is_valid(pipeline_yaml: str) -> None:
    validate_all(build(pipeline_yaml).manifests())
