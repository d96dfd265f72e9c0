from __future__ import annotations

import pytest

from infra.cluster.kfp_api import PipelineVersionProvider, RecurringRunProvider

pytestmark = pytest.mark.unit

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
