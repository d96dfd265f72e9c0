"""Pulumi dynamic providers for an API-backed KFP install: pipeline versions and recurring runs via the REST API.

A pipeline version is uploaded with ``/apis/v2beta1/pipelines/upload`` and ``upload_version``.

Kubernetes-native KFP installs (>= 2.14) do not need these for the pipeline: it is applied as ``Pipeline`` and
``PipelineVersion`` objects instead. Recurring runs are not Kubernetes objects in either mode, so they always go
through the API. The providers run inside ``pulumi up`` with the ``kfp`` client; they are never called under the mock
runtime, which only records the resources.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

_VERSION_KEYS = ("api_url", "namespace", "pipeline_name", "version_name")
_RECURRING_KEYS = ("api_url", "namespace", "experiment", "run_name", "schedule", "pipeline_id", "version_id",
                   "service_account")


def _client(api_url: str, namespace: str) -> Any:
    import kfp

    from infra.cluster.runner import ClusterRunSettings

    # The bearer token, if the API needs one, is the same setting `kfops pipeline run --cluster` uses.
    token = ClusterRunSettings().kfp_token
    return kfp.Client(host=api_url, namespace=namespace, existing_token=token.get_secret_value() if token else None)


def _replace_if_changed(keys: tuple[str, ...], olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
    changed = [key for key in keys if olds.get(key) != news.get(key)]
    return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)


class PipelineVersionProvider(ResourceProvider):
    """Uploads a compiled pipeline as a new version of a named KFP pipeline (creating the pipeline if needed)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Upload the version; its id is KFP's pipeline version id."""
        client = _client(props["api_url"], props["namespace"])
        with tempfile.TemporaryDirectory() as folder:
            package = Path(folder) / "pipeline.yaml"
            package.write_text(props["pipeline_spec_yaml"], encoding="utf-8")
            pipeline_id = client.get_pipeline_id(props["pipeline_name"])
            if pipeline_id is None:
                pipeline_id = client.upload_pipeline(
                    str(package), pipeline_name=props["pipeline_name"], description=props["description"],
                    namespace=props["namespace"]).pipeline_id
            version = client.upload_pipeline_version(
                str(package), pipeline_version_name=props["version_name"], pipeline_id=pipeline_id,
                description=props["description"])
        return CreateResult(version.pipeline_version_id,
                            {**props, "pipeline_id": pipeline_id, "version_id": version.pipeline_version_id})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """A version is immutable: any change of what it is uploads a new one."""
        return _replace_if_changed(_VERSION_KEYS, olds, news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Remove the version (past runs keep their own copy of the spec)."""
        _client(props["api_url"], props["namespace"]).delete_pipeline_version(props["pipeline_id"], _id)


class RecurringRunProvider(ResourceProvider):
    """A KFP recurring run of one pipeline version, in an experiment created on demand."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the recurring run; its id is KFP's recurring run id."""
        client = _client(props["api_url"], props["namespace"])
        experiment = client.create_experiment(props["experiment"], namespace=props["namespace"])
        run = client.create_recurring_run(
            experiment_id=experiment.experiment_id, job_name=props["run_name"], cron_expression=props["schedule"],
            pipeline_id=props["pipeline_id"], version_id=props["version_id"],
            service_account=props["service_account"], max_concurrency=1, no_catchup=True)
        return CreateResult(run.recurring_run_id, props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Any change (schedule, version...) replaces the recurring run."""
        return _replace_if_changed(_RECURRING_KEYS, olds, news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Delete the recurring run (its past runs stay)."""
        _client(props["api_url"], props["namespace"]).delete_recurring_run(_id)


class KfpPipelineVersion(Resource):
    """A pipeline version uploaded through the KFP API.

    Attributes:
        pipeline_id: KFP id of the pipeline.
        version_id: KFP id of the version.
    """

    pipeline_id: pulumi.Output[str]
    version_id: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, pulumi.Input[Any]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(PipelineVersionProvider(), name, {**props, "pipeline_id": None, "version_id": None}, opts)


class KfpRecurringRun(Resource):
    """A recurring run created through the KFP API."""

    def __init__(self, name: str, props: dict[str, pulumi.Input[Any]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(RecurringRunProvider(), name, props, opts)
