"""Workflow: the compiled KFP v2 pipeline, deployed as ``Pipeline``/``PipelineVersion`` objects or via the KFP API.

The version name is a hash of everything the version holds, so an unchanged pipeline is an unchanged resource on the
next ``pulumi up``, and a changed one becomes a new version (created before the old one is removed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra.cluster.kfp_api import KfpPipelineVersion, KfpRecurringRun
from infra.cluster.meta import child_options, object_meta
from kfops.base.contract import PIPELINE_NAME, PIPELINE_SERVICE_ACCOUNT
from kfops.base.errors import KfopsError, in_step
from kfops.base.upstream import kfp

_COMPONENT = "workflow"
_GROUP_VERSION = kfp.PIPELINES_API.value
#: Hex digits of the content hash in a version name: collisions are irrelevant at this count of versions.
_DIGEST_LENGTH = 12


@dataclass(frozen=True)
class CompiledPipeline:
    """A compiled pipeline: the IR document, the optional platform (Kubernetes) document, and derived names.

    Attributes:
        pipeline_spec: The PipelineSpec document (``pipelineInfo``, ``root``, ``components``...).
        platform_spec: The PlatformSpec document kfp-kubernetes adds (secrets as env...), or None.
        description: The pipeline's description (from ``pipelineInfo``), possibly empty.
    """

    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any] | None
    description: str

    @classmethod
    @in_step("workflow")
    def parse(cls, text: str) -> CompiledPipeline:
        """Read the YAML a KFP compiler wrote.

        Args:
            text: One or two YAML documents (pipeline spec, then platform spec).

        Returns:
            The parsed pipeline.

        Raises:
            KfopsError: If the text is not a compiled KFP v2 pipeline.
        """
        try:
            documents = [doc for doc in yaml.safe_load_all(text) if doc]
        except yaml.YAMLError as error:
            raise KfopsError(f"the compiled pipeline is not YAML: {error}",
                             "compile it with `kfops pipeline compile` and check the output") from error
        if not documents or not {"pipelineInfo", "root"} <= set(documents[0]):
            raise KfopsError("the compiled pipeline has no pipelineInfo/root: not a KFP v2 IR document",
                             "pass the YAML kfp.compiler.Compiler writes (kfops pipeline compile)")
        if len(documents) > 2:
            raise KfopsError(f"the compiled pipeline has {len(documents)} YAML documents, expected 1-2",
                             "pass one pipeline's compiled YAML")
        spec = documents[0]
        platform = documents[1] if len(documents) == 2 else None
        return cls(spec, platform, str(spec["pipelineInfo"].get("description", "")))

    def digest(self) -> str:
        """Content hash of the version: same pipeline, same digest, whatever the YAML key order or comments."""
        canonical = json.dumps([self.pipeline_spec, self.platform_spec, self.description], sort_keys=True,
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class WorkflowArgs:
    """Inputs of :class:`Workflow`.

    Attributes:
        pipeline_spec_yaml: The compiled pipeline (``pipelines.compile.compile_workflow()``).
        namespace: Namespace of the Pipeline objects / KFP namespace of the uploaded pipeline.
        mode: ``kubernetes`` (Pipeline + PipelineVersion objects) or ``api`` (KFP REST API).
        pipeline_name: Name of the pipeline in KFP.
        api_url: KFP REST API base URL (API mode and recurring runs).
        recurring_schedule: Six-field cron schedule of an optional recurring run.
        recurring_experiment: KFP experiment of the recurring run.
        service_account: ServiceAccount the recurring run's pods use.
    """

    pipeline_spec_yaml: str
    namespace: pulumi.Input[str]
    mode: Literal["kubernetes", "api"] = "kubernetes"
    pipeline_name: str = PIPELINE_NAME
    api_url: str | None = None
    recurring_schedule: str | None = None
    recurring_experiment: str = "kfops"
    service_account: pulumi.Input[str] = PIPELINE_SERVICE_ACCOUNT


class Workflow(pulumi.ComponentResource):
    """The deployed pipeline and its current version (and, optionally, a recurring run of that version).

    Attributes:
        pipeline_name: Name of the pipeline in KFP.
        version_name: Name of the current version (``<pipeline>-<content hash>``).
        pipeline_id: KFP id of the pipeline (the Pipeline object's uid in Kubernetes-native mode).
        version_id: KFP id of the version.
    """

    pipeline_name: pulumi.Output[str]
    version_name: pulumi.Output[str]
    pipeline_id: pulumi.Output[str]
    version_id: pulumi.Output[str]

    def __init__(self, name: str, args: WorkflowArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfops:platform:Workflow", name, None, opts)
        self._child = child_options(self, opts)
        compiled = CompiledPipeline.parse(args.pipeline_spec_yaml)
        version_name = f"{args.pipeline_name}-{compiled.digest()[:_DIGEST_LENGTH]}"
        if args.mode == "api":
            self._upload(name, args, compiled, version_name)
        else:
            self._apply(name, args, compiled, version_name)
        self.pipeline_name = pulumi.Output.from_input(args.pipeline_name)
        self.version_name = pulumi.Output.from_input(version_name)

        if args.recurring_schedule:
            KfpRecurringRun(f"{name}-recurring", {
                "api_url": args.api_url, "namespace": args.namespace, "experiment": args.recurring_experiment,
                "run_name": f"{args.pipeline_name}-recurring", "schedule": args.recurring_schedule,
                "pipeline_id": self.pipeline_id, "version_id": self.version_id,
                "service_account": args.service_account,
            }, self._child)

        self.register_outputs({"pipeline_name": self.pipeline_name, "version_name": self.version_name,
                               "pipeline_id": self.pipeline_id, "version_id": self.version_id})

    def _apply(self, name: str, args: WorkflowArgs, compiled: CompiledPipeline, version_name: str) -> None:
        pipeline = k8s.apiextensions.CustomResource(
            f"{name}-pipeline", api_version=_GROUP_VERSION, kind="Pipeline",
            metadata=object_meta(args.pipeline_name, args.namespace, _COMPONENT),
            spec={"description": compiled.description}, opts=self._child)
        spec: dict[str, Any] = {
            "pipelineName": args.pipeline_name,
            "displayName": version_name,
            "description": compiled.description,
            "pipelineSpec": compiled.pipeline_spec,
        }
        if compiled.platform_spec is not None:
            spec["platformSpec"] = compiled.platform_spec
        version = k8s.apiextensions.CustomResource(
            f"{name}-version", api_version=_GROUP_VERSION, kind="PipelineVersion",
            metadata=object_meta(version_name, args.namespace, _COMPONENT),
            spec=spec,
            # KFP's webhook rejects spec updates; the name carries the content hash, so a new spec is a new object.
            opts=pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(
                depends_on=[pipeline], replace_on_changes=["spec"])))
        self.pipeline_id = pipeline.metadata.apply(lambda meta: meta.get("uid", ""))
        self.version_id = version.metadata.apply(lambda meta: meta.get("uid", ""))

    def _upload(self, name: str, args: WorkflowArgs, compiled: CompiledPipeline, version_name: str) -> None:
        version = KfpPipelineVersion(f"{name}-version", {
            "api_url": args.api_url, "namespace": args.namespace, "pipeline_name": args.pipeline_name,
            "version_name": version_name, "description": compiled.description,
            "pipeline_spec_yaml": args.pipeline_spec_yaml,
        }, self._child)
        self.pipeline_id = version.pipeline_id
        self.version_id = version.version_id
