"""Taking the workflow's Katib objects down before ``pulumi destroy``, with a Katib that finalizes them as v0.19.0
does (tests/fakes/katib.py)."""

from __future__ import annotations

import pytest

from infra.cluster.teardown import KatibDrainProvider, drain_katib
from kfops.base.errors import KfopsError
from tests.fakes.katib import FakeKatib
from tests.upstream.world import World, kind_world

pytestmark = pytest.mark.unit


def test_experiments_deleted_while_katib_runs_are_finished_with_their_trials() -> None:
    katib = FakeKatib()
    katib.add_experiment("kfops-winequality-1")
    katib.add_experiment("kfops-winequality-2", trials=3)
    assert drain_katib(katib, "kubeflow", timeout=10, sleep=lambda _s: katib.reconcile()) == [
        "kfops-winequality-1", "kfops-winequality-2"]
    assert katib.objects == {}


def test_clearing_finalizers_while_katib_runs_does_not_stick() -> None:
    """Why the old teardown hung: the controller puts the finalizer back on an Experiment not being deleted."""
    katib = FakeKatib()
    katib.add_experiment("kfops-winequality-1")
    katib.patch_finalizers("experiments", "kfops-winequality-1")
    katib.reconcile()
    assert katib.objects[("experiments", "kfops-winequality-1")]["metadata"]["finalizers"]


def test_a_katib_that_cannot_finish_is_named_not_waited_for_forever() -> None:
    katib = FakeKatib()
    katib.add_experiment("kfops-winequality-1")
    katib.database_answers = False
    with pytest.raises(KfopsError, match=r"trials/kfops-winequality-1-0.*katib-db-manager"):
        drain_katib(katib, "kubeflow", timeout=4, poll=1, sleep=lambda _s: katib.reconcile())


def test_nothing_to_drain_once_katibs_crds_are_gone() -> None:
    katib = FakeKatib()
    katib.crds_installed = False
    assert drain_katib(katib, "kubeflow", timeout=1, sleep=lambda _s: None) == []


def test_the_programs_drain_runs_at_destroy(monkeypatch: pytest.MonkeyPatch) -> None:
    katib = FakeKatib()
    katib.add_experiment("kfops-winequality-1")
    monkeypatch.setattr("infra.cluster.teardown.custom_objects_api", lambda context: katib)
    monkeypatch.setattr("infra.cluster.teardown._sleep", lambda _s: katib.reconcile())
    provider = KatibDrainProvider()
    created = provider.create({"namespace": "kubeflow", "context": "kind-kfops"})
    assert katib.objects, "creating it touches nothing"
    provider.delete(created.id, created.outs)
    assert katib.objects == {}


def test_the_drain_is_destroyed_before_any_of_katib() -> None:
    """Pulumi deletes dependents first: the drain must depend on every object of the Katib install."""
    world: World = kind_world()
    katib_objects = {p.resource for p in world.placed if p.resource and p.resource.startswith("platform-katib-")}
    katib_objects.discard("platform-katib-drain")
    assert len(katib_objects) > 10
    needs = world.dependencies("platform-katib-drain")
    assert katib_objects <= needs, katib_objects - needs
    drain = world.rendering.named("platform-katib-drain")
    assert drain.inputs["namespace"] == "kubeflow"
    assert drain.inputs["context"] == "kind-kfops"
