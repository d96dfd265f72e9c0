"""The stack's API mode: the dynamic providers' create, diff and delete, through the real kfp client, against a fake
KFP API speaking the v2beta1 shapes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from infra.cluster.kfp_api import PipelineVersionProvider, RecurringRunProvider
from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT
from pipelines.compile import compile_workflow
from tests.fakes.kfp_api import FakeKfp, serve

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def spec() -> str:
    return compile_workflow()


def version_props(url: str, spec: str, version: str = "kfops-train-and-serve-abc123") -> dict[str, Any]:
    return {"api_url": url, "namespace": "kubeflow-user", "pipeline_name": "kfops-train-and-serve",
            "version_name": version, "description": "kfops workflow", "pipeline_spec_yaml": spec,
            "pipeline_id": None, "version_id": None}


def test_the_first_version_creates_the_pipeline_and_uploads_the_compiled_spec(spec: str) -> None:
    with serve(FakeKfp()) as fake:
        created = PipelineVersionProvider().create(version_props(fake.url, spec))
    [pipeline] = fake.pipelines.values()
    assert pipeline["display_name"] == "kfops-train-and-serve"
    assert pipeline["namespace"] == "kubeflow-user"
    uploaded = fake.versions[created.id]
    assert list(yaml.safe_load_all(uploaded["pipeline_spec"])) == list(yaml.safe_load_all(spec))
    assert created.outs["pipeline_id"] == pipeline["pipeline_id"]
    assert created.outs["version_id"] == created.id


def test_a_new_version_goes_under_the_existing_pipeline(spec: str) -> None:
    with serve(FakeKfp()) as fake:
        first = PipelineVersionProvider().create(version_props(fake.url, spec, "v-one"))
        second = PipelineVersionProvider().create(version_props(fake.url, spec, "v-two"))
    assert len(fake.pipelines) == 1
    assert first.outs["pipeline_id"] == second.outs["pipeline_id"]
    assert fake.versions[first.id]["display_name"] == "v-one"
    assert fake.versions[second.id]["display_name"] == "v-two"
    assert fake.versions[second.id]["pipeline_id"] == first.outs["pipeline_id"]


def test_deleting_removes_exactly_the_version(spec: str) -> None:
    provider = PipelineVersionProvider()
    with serve(FakeKfp()) as fake:
        first = provider.create(version_props(fake.url, spec, "v-one"))
        second = provider.create(version_props(fake.url, spec, "v-two"))
        provider.delete(first.id, first.outs)
    assert first.id not in fake.versions
    assert second.id in fake.versions
    assert ("DELETE", f"/apis/v2beta1/pipelines/{first.outs['pipeline_id']}/versions/{first.id}", None) in \
        fake.requests


def recurring_props(url: str, pipeline_id: str, version_id: str) -> dict[str, Any]:
    return {"api_url": url, "namespace": "kubeflow-user", "experiment": "kfops-nightly", "run_name": "kfops-nightly",
            "schedule": "0 0 3 * * *", "pipeline_id": pipeline_id, "version_id": version_id,
            "service_account": PIPELINE_SERVICE_ACCOUNT}


def test_a_recurring_run_runs_the_deployed_version_as_the_projects_service_account(spec: str) -> None:
    with serve(FakeKfp()) as fake:
        version = PipelineVersionProvider().create(version_props(fake.url, spec))
        created = RecurringRunProvider().create(recurring_props(fake.url, version.outs["pipeline_id"], version.id))
        recurring = fake.recurring_runs[created.id]
        assert recurring["pipeline_version_reference"] == {"pipeline_id": version.outs["pipeline_id"],
                                                           "pipeline_version_id": version.id}
        assert recurring["service_account"] == PIPELINE_SERVICE_ACCOUNT
        assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
        assert int(recurring["max_concurrency"]) == 1
        assert recurring["no_catchup"] is True
        [experiment] = fake.experiments.values()
        assert recurring["experiment_id"] == experiment["experiment_id"]
        RecurringRunProvider().delete(created.id, recurring_props(fake.url, "p", "v"))
    assert fake.recurring_runs == {}


def test_an_api_error_reaches_pulumi_with_kfps_message(spec: str) -> None:
    with serve(FakeKfp()) as fake:
        with pytest.raises(Exception, match="pipeline version not found"):
            RecurringRunProvider().create(recurring_props(fake.url, "no-such-pipeline", "no-such-version"))
        assert fake.recurring_runs == {}


VERSION = {"api_url": "http://localhost:8888", "namespace": "team-ml", "pipeline_name": "p", "version_name": "p-1",
           "description": "d", "pipeline_spec_yaml": "x", "pipeline_id": "pid", "version_id": "vid"}
RECURRING = {"api_url": "http://localhost:8888", "namespace": "team-ml", "experiment": "kfops", "run_name": "r",
             "schedule": "0 0 3 * * *", "pipeline_id": "pid", "version_id": "vid", "service_account": "sa"}


@pytest.mark.parametrize(
    ("case", "change", "replaces"),
    [
        ("unchanged", {}, []),
        ("new content hash", {"version_name": "p-2"}, ["version_name"]),
        ("another API", {"api_url": "http://kfp.example.com"}, ["api_url"]),
        ("same version, output ids differ", {"version_id": None}, []),
    ],
)
def test_a_pipeline_version_is_replaced_only_when_what_it_is_changes(case: str, change: dict,
                                                                     replaces: list[str]) -> None:
    diff = PipelineVersionProvider().diff("vid", VERSION, {**VERSION, **change})
    assert diff.replaces == replaces, case
    assert diff.changes is bool(replaces)
    assert diff.delete_before_replace is False


@pytest.mark.parametrize("key", sorted(RECURRING))
def test_any_change_replaces_a_recurring_run(key: str) -> None:
    diff = RecurringRunProvider().diff("rid", RECURRING, {**RECURRING, key: "changed"})
    assert diff.replaces == [key]
