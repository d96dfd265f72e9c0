"""The cluster target's Katib executor and Seldon roll-out, against a fake API returning the shapes upstream writes.

The fake plays the controllers: Katib moves an Experiment through Created, Running and Succeeded (or Failed) and
creates Trials labelled with the Experiment's name; Seldon Core's operator sets ``status.state`` of a
SeldonDeployment to Creating, Available or Failed (kfops.base.upstream.katib and .seldon name the sources).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from components.deploy import ServingSettings, seldon_deployment
from components.katib.results import best_trial, summary
from components.tune import build_tuning_experiment
from infra.cluster.katib import GROUP, VERSION, run_on_cluster
from infra.cluster.seldon import apply_and_wait, rollback_manifest
from kfops.base.errors import KfopsError
from kfops.base.upstream import katib
from tests.fakes.kube import FakeCustomObjects, katib_trial

pytestmark = pytest.mark.unit

NAMESPACE = "kubeflow"


def trial(name: str, alpha: str, rmse: float | None, condition: str = "Succeeded") -> dict[str, Any]:
    metrics = [] if rmse is None else [{"name": "rmse", "latest": str(rmse), "min": str(rmse), "max": str(rmse)}]
    return {"name": name, "condition": condition, "reason": f"Trial{condition}",
            "parameterAssignments": [{"name": "alpha", "value": alpha}, {"name": "l1_ratio", "value": "0.5"}],
            "observation": {"metrics": metrics}}


def katib_controller(api: FakeCustomObjects, trials: list[dict[str, Any]], outcome: str = "Succeeded",
                     reason: str = "ExperimentMaxTrialsReached") -> None:
    """Katib as seen through reads: each read of the Experiment moves it on by one step."""
    steps = iter(range(1, 100))

    def react(key: tuple[str, ...], obj: dict[str, Any]) -> None:
        if key[3] != "experiments":
            return
        step = next(steps)
        conditions = [{"type": "Created", "status": "True", "reason": "ExperimentCreated"}]
        if step == 1:
            conditions.append({"type": "Running", "status": "True", "reason": "ExperimentRunning"})
            for record in trials[:1]:
                api.put("kubeflow.org", "v1beta1", NAMESPACE, "trials", katib_trial(key[4], NAMESPACE, record))
        else:
            for record in trials:
                api.put("kubeflow.org", "v1beta1", NAMESPACE, "trials", katib_trial(key[4], NAMESPACE, record))
            conditions += [{"type": "Running", "status": "False", "reason": "ExperimentRunning"},
                           {"type": outcome, "status": "True", "reason": reason}]
        best = min((t for t in trials if t["condition"] == "Succeeded"),
                   key=lambda t: float(t["observation"]["metrics"][0]["latest"]), default=None)
        obj["status"] = {"conditions": conditions, "trials": len(trials),
                         "currentOptimalTrial": {"bestTrialName": best["name"] if best else "",
                                                 "parameterAssignments": best["parameterAssignments"] if best else [],
                                                 "observation": best["observation"] if best else {"metrics": []}}}

    api.on_get(react)


def experiment() -> dict[str, Any]:
    return build_tuning_experiment("winequality", "s3://datasets/x.parquet", max_trials=3, parallel_trials=2,
                                   max_failed_trials=1, run_id="abc", namespace=NAMESPACE)


def test_the_experiment_is_created_followed_and_its_trials_collected() -> None:
    api = FakeCustomObjects()
    records = [trial("t1", "0.1", 0.71), trial("t2", "0.01", 0.65), trial("t3", "0.5", None, "Failed")]
    katib_controller(api, records)
    seen: list[str] = []
    result = run_on_cluster(experiment(), poll=0, api=api, on_trial=lambda record: seen.append(record["name"]))
    assert ("create", (GROUP, VERSION, NAMESPACE, "experiments", "kfops-winequality-abc")) in api.calls
    # The Trials are found by the label Katib gives them, each reported once, as it reached a final condition.
    assert sorted(seen) == ["t1", "t2", "t3"]
    assert len(seen) == len(set(seen))
    outcome = summary(result)
    assert (outcome["outcome"], outcome["reason"]) == ("Succeeded", "ExperimentMaxTrialsReached")
    params, value = best_trial(result, "rmse")
    assert (params["alpha"], value) == ("0.01", 0.65)
    assert result["executor"] == "katib"


def test_a_failed_experiment_is_returned_as_failed() -> None:
    api = FakeCustomObjects()
    katib_controller(api, [trial("t1", "0.1", None, "Failed"), trial("t2", "0.2", None, "Failed")], "Failed",
                     "ExperimentMaxFailedTrialsReached")
    outcome = summary(run_on_cluster(experiment(), poll=0, api=api))
    assert (outcome["outcome"], outcome["reason"]) == ("Failed", "ExperimentMaxFailedTrialsReached")


def test_an_experiment_the_webhook_refuses_names_the_answer_and_the_fix() -> None:
    api = FakeCustomObjects()

    def webhook(body: dict[str, Any]) -> ApiException:
        error = ApiException(status=400, reason="Bad Request")
        # The validating webhook's answer for a namespace without the injection label.
        error.body = ('{"kind":"Status","message":"admission webhook \\"validator.experiment.katib.kubeflow.org\\" '
                      'denied the request: Cannot create the Experiment in namespace without label '
                      f'{next(iter(katib.INJECTION_LABEL.value))}"}}')
        return error

    api.refuse = webhook
    with pytest.raises(KfopsError, match="Katib refused Experiment kubeflow/kfops-winequality-abc: 400") as raised:
        run_on_cluster(experiment(), poll=0, api=api)
    assert "metrics-collector-injection" in raised.value.cause
    assert "RBAC" in raised.value.fix
    assert raised.value.step == "tune"


def test_a_retried_tune_step_follows_the_experiment_its_first_attempt_created() -> None:
    """Argo retries a step whose pod was evicted (KFP's workflowDefaults retryStrategy OnError): same run, same name."""
    from infra.cluster.katib import with_spec_digest

    api = FakeCustomObjects()
    api.put(GROUP, VERSION, NAMESPACE, "experiments", with_spec_digest(experiment()))
    katib_controller(api, [trial("t1", "0.1", 0.7)])
    result = run_on_cluster(experiment(), poll=0, api=api)
    assert best_trial(result, "rmse") == ({"alpha": "0.1", "l1_ratio": "0.5"}, 0.7)
    assert [call for call, _ in api.calls].count("create") == 1, "its create met the first attempt's Experiment"


def test_an_experiment_of_the_same_name_and_another_spec_is_refused_with_the_fix() -> None:
    api = FakeCustomObjects()
    other = build_tuning_experiment("winequality", "s3://datasets/other.parquet", max_trials=3, parallel_trials=2,
                                    max_failed_trials=1, run_id="abc", namespace=NAMESPACE)
    api.put(GROUP, VERSION, NAMESPACE, "experiments", other)
    with pytest.raises(KfopsError, match="409") as raised:
        run_on_cluster(experiment(), poll=0, api=api)
    assert "kubectl -n kubeflow delete experiment kfops-winequality-abc" in raised.value.fix


def test_an_experiment_that_does_not_finish_in_time_is_left_for_inspection() -> None:
    api = FakeCustomObjects()
    with pytest.raises(KfopsError, match="did not finish within 0 s") as raised:
        run_on_cluster(experiment(), timeout=0, poll=0, api=api)
    assert "kubectl -n kubeflow describe experiment kfops-winequality-abc" in raised.value.fix
    assert [call for call, _ in api.calls].count("delete") == 0


class FakeSeldon:
    """SeldonDeployments as the API server and Seldon Core's operator keep them.

    Apply replaces the spec; the status keeps saying what it said for the previous spec for ``lag`` reads (the
    operator has not reconciled yet, and its readiness counts the old pods while a rolling update keeps them), then
    goes through the states the test scripts for that version. A version's model pods are Ready once its status
    reports Available, unless the test says they never are (a model that crashes on start).
    """

    def __init__(self, states_by_version: dict[str, list[str]], lag: int = 0,
                 never_ready: tuple[str, ...] = ()) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.applied: list[dict[str, Any]] = []
        self.states_by_version = states_by_version
        self.pending: list[str] = []
        self.refuse: ApiException | None = None
        self.lag = lag
        self.stale = 0
        self.never_ready = never_ready
        self.available: set[str] = set()

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        obj = self.objects.get((namespace, name))
        if obj is None:
            return None
        if self.stale:
            self.stale -= 1
        elif self.pending:
            obj["status"] = {"state": self.pending.pop(0), "description": "1 of 1 replicas unavailable"}
            if obj["status"]["state"] == "Available":
                self.available.add(obj["metadata"]["labels"]["kfops.model-version"])
        return {key: value for key, value in obj.items()}

    def apply(self, body: dict[str, Any]) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.applied.append(body)
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        status = self.objects.get(key, {}).get("status")
        self.objects[key] = {**body, "metadata": {**body["metadata"], "uid": "u-1", "generation": 2},
                             **({"status": status} if status else {})}
        version = body["metadata"]["labels"]["kfops.model-version"]
        self.pending = list(self.states_by_version.get(version, ["Available"]))
        self.stale = self.lag if status else 0

    def ready_pods(self, namespace: str, labels: dict[str, str]) -> int:
        version = labels["kfops.model-version"]
        return int(version in self.available and version not in self.never_ready)


def manifest(version: str) -> dict[str, Any]:
    return seldon_deployment("v2", model_name="kfops-winequality", version=version, model_uri=f"s3://m/{version}",
                             namespace=NAMESPACE, settings=ServingSettings())


def test_a_rollout_that_becomes_available_is_done() -> None:
    api = FakeSeldon({"2": ["Creating", "Creating", "Available"]})
    apply_and_wait(manifest("2"), timeout=5, poll=0, api=api)  # type: ignore[arg-type]
    assert [body["metadata"]["labels"]["kfops.model-version"] for body in api.applied] == ["2"]


def test_a_failed_rollout_puts_the_previous_model_back() -> None:
    api = FakeSeldon({"1": ["Available"], "2": ["Creating", "Failed"]})
    apply_and_wait(manifest("1"), timeout=5, poll=0, api=api)  # type: ignore[arg-type]
    with pytest.raises(KfopsError, match="is Failed after") as raised:
        apply_and_wait(manifest("2"), timeout=5, poll=0, api=api)  # type: ignore[arg-type]
    assert "previous model keeps serving" in raised.value.fix
    assert raised.value.step == "deploy"
    restored = api.applied[-1]
    assert restored["metadata"]["labels"]["kfops.model-version"] == "1"
    assert restored["spec"] == manifest("1")["spec"]
    assert "uid" not in restored["metadata"], "server fields are not applied back"
    assert "status" not in restored


def test_a_rollout_that_never_settles_times_out_and_rolls_back() -> None:
    api = FakeSeldon({"1": ["Available"], "2": ["Creating"] * 1000})
    apply_and_wait(manifest("1"), timeout=5, poll=0, api=api)  # type: ignore[arg-type]
    with pytest.raises(KfopsError, match="is Creating after 0 s"):
        apply_and_wait(manifest("2"), timeout=0.05, poll=0, api=api)  # type: ignore[arg-type]
    assert api.applied[-1]["metadata"]["labels"]["kfops.model-version"] == "1"


def test_a_first_rollout_that_fails_has_nothing_to_roll_back_to() -> None:
    api = FakeSeldon({"1": ["Failed"]})
    with pytest.raises(KfopsError, match="is Failed") as raised:
        apply_and_wait(manifest("1"), timeout=5, poll=0, api=api)  # type: ignore[arg-type]
    assert "kubectl -n kubeflow describe seldondeployment kfops-model" in raised.value.fix
    assert len(api.applied) == 1


def test_a_deployment_seldons_webhook_refuses_is_reported_and_nothing_changes() -> None:
    api = FakeSeldon({})
    api.refuse = ApiException(status=400, reason="Bad Request")
    api.refuse.body = '{"message":"admission webhook \\"v1.vseldondeployment.kb.io\\" denied the request"}'
    with pytest.raises(KfopsError, match="Seldon refused SeldonDeployment kubeflow/kfops-model: 400"):
        apply_and_wait(manifest("1"), timeout=5, poll=0, api=api)  # type: ignore[arg-type]
    assert api.objects == {}


def test_a_status_still_available_from_the_previous_spec_is_not_taken_for_a_served_model() -> None:
    """Seldon has no observedGeneration: right after an apply its status still says Available for the old pods."""
    api = FakeSeldon({"1": ["Available"], "2": ["Creating"] + ["Available"] * 1000}, lag=3, never_ready=("2",))
    apply_and_wait(manifest("1"), timeout=5, poll=0, api=api)  # type: ignore[arg-type]
    with pytest.raises(KfopsError, match="Available for the previous spec") as raised:
        apply_and_wait(manifest("2"), timeout=0.2, poll=0, api=api)  # type: ignore[arg-type]
    assert "0 of 1 new pods ready" in str(raised.value)
    assert api.applied[-1]["metadata"]["labels"]["kfops.model-version"] == "1", "rolled back"


def test_a_new_version_is_served_once_its_own_pods_are_ready() -> None:
    api = FakeSeldon({"1": ["Available"], "2": ["Creating", "Available"]}, lag=3)
    apply_and_wait(manifest("1"), timeout=5, poll=0, api=api)  # type: ignore[arg-type]
    apply_and_wait(manifest("2"), timeout=5, poll=0, api=api)  # type: ignore[arg-type]
    assert [body["metadata"]["labels"]["kfops.model-version"] for body in api.applied] == ["1", "2"]
    assert "2" in api.available, "it returned only after the operator reported the new spec"


def test_the_model_pods_carry_what_the_deploy_step_selects_them_by() -> None:
    v2 = seldon_deployment("v2", model_name="My Wine Model", version="7", model_uri="s3://m/7", namespace=NAMESPACE,
                           settings=ServingSettings())
    v1 = seldon_deployment("v1", model_name="My Wine Model", version="7", model_uri="s3://m/7", namespace=NAMESPACE,
                           settings=ServingSettings())
    labels = [m["spec"]["predictors"][0]["labels"] for m in (v2, v1)]
    assert labels[0] != labels[1], "v1 and v2 pods of one version must not count for each other"
    for value in (v for label in labels for v in label.values()):
        assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", value), value


def test_rollback_manifest_keeps_only_what_kfops_applied() -> None:
    previous = {**manifest("1"), "status": {"state": "Available"}}
    previous["metadata"] = {**previous["metadata"], "uid": "u", "resourceVersion": "9", "managedFields": []}
    restored = rollback_manifest(previous)
    assert set(restored["metadata"]) == {"name", "namespace", "labels"}
    assert "status" not in restored
