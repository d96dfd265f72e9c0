"""The local Katib executor: Katib's completion semantics, with real trial processes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from components.katib.experiment import build_experiment
from components.katib.results import best_trial, summary
from infra.local.katib.executor import run_local_experiment
from infra.local.katib.trials import parse_metrics
from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.recipes import WINE_QUALITY
from tests.datasets import cleaned_wine

pytestmark = pytest.mark.unit


def experiment(code: str, *, goal: float | None = None, max_trials: int = 4, parallel: int = 2,
               max_failed: int | None = 1, timeout: int | None = None, algorithm: str = "random",
               collector: str = "StdOut") -> dict[str, Any]:
    """A Katib Experiment whose trial runs ``python -c CODE <x>``; CODE prints ``loss=...``."""
    objective: dict[str, Any] = {"type": "minimize", "objectiveMetricName": "loss"}
    if goal is not None:
        objective["goal"] = goal
    job_spec: dict[str, Any] = {"template": {"spec": {"containers": [
        {"name": "main", "command": ["python", "-c", code, "${trialParameters.x}"]}]}}}
    if timeout:
        job_spec["activeDeadlineSeconds"] = timeout
    spec: dict[str, Any] = {
        "objective": objective,
        "algorithm": {"algorithmName": algorithm, "algorithmSettings": [{"name": "random_state", "value": "1"}]},
        "parallelTrialCount": parallel, "maxTrialCount": max_trials,
        "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
        "metricsCollectorSpec": {"collector": {"kind": collector}},
        "trialTemplate": {"primaryContainerName": "main", "trialParameters": [{"name": "x", "reference": "x"}],
                          "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": job_spec}},
    }
    if max_failed is not None:
        spec["maxFailedTrialCount"] = max_failed
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
            "metadata": {"name": "probe", "namespace": "local"}, "spec": spec}


QUADRATIC = "import sys; x = float(sys.argv[1]); print(f'loss={(x - 0.3) ** 2}')"


def test_max_trials_reached(tmp_path: Path) -> None:
    result = run_local_experiment(experiment(QUADRATIC, max_trials=5), tmp_path)
    outcome = summary(result)
    assert (outcome["outcome"], outcome["reason"]) == ("Succeeded", "ExperimentMaxTrialsReached")
    assert (outcome["trials"], outcome["succeeded"], outcome["failed"]) == (5, 5, 0)
    params, value = best_trial(result, "loss")
    assert value == pytest.approx((float(params["x"]) - 0.3) ** 2)
    assert value == min(float(m["min"]) for t in result["trials"] for m in t["observation"]["metrics"])


def test_without_max_trials_a_grid_runs_to_the_end_of_its_suggestions(tmp_path: Path) -> None:
    # Katib: maxTrialCount is optional; a grid experiment without it succeeds once every combination ran.
    spec = experiment(QUADRATIC, algorithm="grid", parallel=2)
    del spec["spec"]["maxTrialCount"]
    spec["spec"]["parameters"][0]["feasibleSpace"]["step"] = "0.25"
    result = run_local_experiment(spec, tmp_path)
    outcome = summary(result)
    assert (outcome["outcome"], outcome["reason"]) == ("Succeeded", "ExperimentSuggestionEndReached")
    tried = sorted(float(t["parameterAssignments"][0]["value"]) for t in result["trials"])
    assert tried == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert "seeded random order" in result["differsFromKatib"]


def test_a_nan_metric_is_no_value(tmp_path: Path) -> None:
    # Katib's filter reads "loss=nan" as an empty value; locally the trial has no metric: MetricsUnavailable.
    result = run_local_experiment(experiment("print('loss=nan')", max_trials=1, parallel=1, max_failed=1), tmp_path)
    [trial] = result["trials"]
    assert (trial["condition"], trial["reason"]) == ("Failed", "MetricsUnavailable")


def test_goal_reached_stops_early(tmp_path: Path) -> None:
    result = run_local_experiment(experiment("print('loss=0.0')", goal=0.01, max_trials=20, parallel=1), tmp_path)
    outcome = summary(result)
    assert (outcome["outcome"], outcome["reason"]) == ("Succeeded", "ExperimentGoalReached")
    assert outcome["trials"] == 1


def test_every_trial_crashing_fails_the_experiment_after_max_failed(tmp_path: Path) -> None:
    code = "import sys; print('cannot read dataset', file=sys.stderr); sys.exit(3)"
    result = run_local_experiment(experiment(code, max_trials=10, parallel=1, max_failed=2), tmp_path)
    outcome = summary(result)
    assert (outcome["outcome"], outcome["reason"]) == ("Failed", "ExperimentFailed")
    assert (outcome["trials"], outcome["failed"]) == (3, 3), "fails once failed trials exceed maxFailedTrialCount"
    assert all(t["message"] == "exit code 3: cannot read dataset" for t in result["trials"])
    with pytest.raises(KfopsError, match=r"failed \(ExperimentFailed: .*3 failed trials > maxFailedTrialCount 2\)"
                                         r".*exit code 3: cannot read dataset") as raised, in_step(Step.BEST_PARAMS):
        best_trial(result, "loss")
    assert raised.value.step == "best-params"


def test_a_trial_without_the_objective_metric_is_failed(tmp_path: Path) -> None:
    result = run_local_experiment(experiment("print('accuracy=0.9')", max_trials=2, parallel=1, max_failed=5),
                                  tmp_path)
    assert {(t["condition"], t["reason"]) for t in result["trials"]} == {("Failed", "MetricsUnavailable")}
    assert summary(result)["reason"] == "ExperimentMaxTrialsReached"
    with pytest.raises(KfopsError, match="no trial reported 'loss'"):
        best_trial(result, "loss")


def test_at_most_parallel_trials_run_at_once(tmp_path: Path) -> None:
    code = ("import sys, time; start = time.time(); time.sleep(0.4); "
            "print(f'window={start}:{time.time()}'); print('loss=1')")
    result = run_local_experiment(experiment(code, max_trials=6, parallel=2), tmp_path)
    windows = []
    for trial in result["trials"]:
        match = re.search(r"window=([\d.]+):([\d.]+)", Path(trial["log"]).read_text())
        assert match
        windows.append((float(match.group(1)), float(match.group(2))))
    concurrency = max(sum(start <= moment < end for start, end in windows) for moment, _ in windows)
    assert concurrency == 2


def test_deadline_kills_a_hung_trial(tmp_path: Path) -> None:
    result = run_local_experiment(experiment("import time; time.sleep(600)", max_trials=1, parallel=1, timeout=1),
                                  tmp_path)
    trial, = result["trials"]
    assert (trial["condition"], trial["reason"]) == ("Failed", "DeadlineExceeded")
    assert trial["message"] == "killed after activeDeadlineSeconds=1"


@pytest.mark.parametrize(("case", "change", "expected"), [
    ("unsupported collector", {"collector": "File"}, "metrics collector 'File' is not supported"),
    ("unknown algorithm", {"algorithm": "darts"}, "unknown tuning algorithm 'darts'"),
])
def test_specs_the_local_executor_cannot_run(tmp_path: Path, case: str, change: dict[str, str],
                                             expected: str) -> None:
    with pytest.raises(KfopsError, match=expected):
        run_local_experiment(experiment(QUADRATIC, **change), tmp_path)  # type: ignore[arg-type]


def test_placeholder_without_trial_parameter_is_rejected(tmp_path: Path) -> None:
    spec = experiment(QUADRATIC)
    spec["spec"]["trialTemplate"]["trialParameters"] = []
    with pytest.raises(KfopsError, match=r"uses \$\{trialParameters.x\} but trialParameters has no 'x'"):
        run_local_experiment(spec, tmp_path)


def test_metric_lines_parsed_like_katibs_stdout_collector() -> None:
    text = "epoch 1\nloss=0.5\nloss = 0.25 accuracy=0.9\nnoise=abc\nloss=1e-3\n"
    assert parse_metrics(text, ("loss", "accuracy")) == {"loss": [0.5, 0.25, 0.001], "accuracy": [0.9]}


def wine_experiment(tmp_path: Path, dataset: str) -> dict[str, Any]:
    return build_experiment(WINE_QUALITY, name="wine", namespace="local", dataset_uri=dataset, max_trials=4,
                            parallel_trials=2, max_failed_trials=0, algorithm="random",
                            algorithm_settings={"random_state": "7"})


@pytest.mark.integration  # starts a fresh interpreter per trial: seconds, not milliseconds
def test_forked_trainer_trials_match_fresh_interpreters(tmp_path: Path) -> None:
    dataset = str(cleaned_wine(tmp_path))
    forked = run_local_experiment(wine_experiment(tmp_path, dataset), tmp_path / "forked", fork=True)
    fresh = run_local_experiment(wine_experiment(tmp_path, dataset), tmp_path / "fresh", fork=False)

    def metrics(result: dict[str, Any]) -> dict[tuple[str, ...], str]:
        return {tuple(a["value"] for a in t["parameterAssignments"]): t["observation"]["metrics"][0]["latest"]
                for t in result["trials"]}

    assert summary(forked)["succeeded"] == 4
    # Which points a run tries depends on timing: with two trials in parallel, the suggestion for a later trial sees
    # however many earlier trials had finished (as Katib's hyperopt service does). The first two never depend on it.
    # Every point both runs tried must give the same metric to the last digit.
    forked_metrics, fresh_metrics = metrics(forked), metrics(fresh)
    common = forked_metrics.keys() & fresh_metrics.keys()
    assert len(common) >= 2, (forked_metrics, fresh_metrics)
    assert {point: forked_metrics[point] for point in common} == {point: fresh_metrics[point] for point in common}


@pytest.mark.integration  # starts interpreters: seconds each
def test_trainer_errors_reach_the_trial_records(tmp_path: Path) -> None:
    result = run_local_experiment(wine_experiment(tmp_path, str(tmp_path / "missing.parquet")), tmp_path)
    assert summary(result)["outcome"] == "Failed"
    # Two trials run at once and the first failure ends the experiment: the other one may be killed, and either may
    # fail first (the first trial's record was checked before: it was sometimes the killed one).
    failed = [trial for trial in result["trials"] if trial["condition"] == "Failed"]
    assert failed
    for trial in failed:
        assert "dataset" in trial["message"]
        assert "does not exist" in trial["message"]


@pytest.mark.integration  # starts interpreters: seconds each
def test_many_fast_forked_trials_in_parallel_all_complete(tmp_path: Path) -> None:
    # Forked trials of a small model finish within milliseconds of each other: the server's "started" answer and
    # other trials' "exit" reports then arrive in one read, and none may be lost.
    dataset = str(cleaned_wine(tmp_path))
    spec = build_experiment(WINE_QUALITY, name="burst", namespace="local", dataset_uri=dataset, max_trials=16,
                            parallel_trials=4, max_failed_trials=0, algorithm="random")
    result = run_local_experiment(spec, tmp_path, timeout=120)
    assert summary(result)["succeeded"] == 16


def test_experiment_timeout_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KfopsError, match=r"did not finish within 1 s"):
        run_local_experiment(experiment("import time; time.sleep(20)", max_trials=2, parallel=1), tmp_path,
                             timeout=1)


def test_the_default_timeout_is_what_the_spec_allows_at_most() -> None:
    from infra.local.katib.executor import DEFAULT_TRIAL_SECONDS, default_timeout
    from infra.local.katib.spec import parse_spec

    # 5 trials, 2 at a time: 3 rounds of at most 10 s each, plus the executor's own slack.
    bounded = parse_spec(experiment(QUADRATIC, max_trials=5, parallel=2, timeout=10))
    assert default_timeout(bounded) == pytest.approx(3 * 10 * 1.1 + 5)
    unbounded = parse_spec(experiment(QUADRATIC, max_trials=4, parallel=4))
    assert default_timeout(unbounded) == pytest.approx(DEFAULT_TRIAL_SECONDS * 1.1 + 5)
    grid = experiment(QUADRATIC, algorithm="grid", parallel=2, timeout=10)
    del grid["spec"]["maxTrialCount"]
    grid["spec"]["parameters"][0]["feasibleSpace"]["step"] = "0.25"  # 5 points, 3 rounds
    assert default_timeout(parse_spec(grid), grid_points=5) == pytest.approx(3 * 10 * 1.1 + 5)
    endless = experiment(QUADRATIC, timeout=10)
    del endless["spec"]["maxTrialCount"]
    assert default_timeout(parse_spec(endless)) is None, "without a trial limit Katib runs until the goal"


def test_a_broken_stop_condition_fails_within_what_the_spec_allows(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop condition that never holds must not hang the run until the test's (or CI's) own limit."""
    from infra.local.katib.executor import LocalExperiment

    monkeypatch.setattr(LocalExperiment, "_outcome", lambda *_args: None)
    with pytest.raises(KfopsError, match=r"did not finish within 7 s, the most its spec allows \(2 trials, 1 at a "
                                         r"time, each at most 1 s\)") as raised:
        run_local_experiment(experiment(QUADRATIC, max_trials=2, parallel=1, timeout=1), tmp_path)
    assert "trials" in raised.value.fix
