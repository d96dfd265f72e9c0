from __future__ import annotations

import re
from typing import Any

import pytest

from components.reports import promotion_report, scatter_svg, tuning_report

pytestmark = pytest.mark.unit


def trial(name: str, alpha: str, l1: str, rmse: str | None, condition: str = "Succeeded") -> dict[str, Any]:
    metrics = [] if rmse is None else [{"name": "rmse", "latest": rmse, "min": rmse, "max": rmse}]
    return {"name": name, "condition": condition, "reason": "", "message": "",
            "parameterAssignments": [{"name": "alpha", "value": alpha}, {"name": "l1_ratio", "value": l1}],
            "observation": {"metrics": metrics}}


def result(trials: list[dict[str, Any]], best: str | None, succeeded: bool = True) -> dict[str, Any]:
    """A tuning result in the shape both executors write (Katib's Experiment status plus the trials)."""
    optimal = next((t for t in trials if t["name"] == best), None)
    status: dict[str, Any] = {
        "conditions": [{"type": "Succeeded" if succeeded else "Failed", "status": "True",
                        "reason": "ExperimentMaxTrialsReached" if succeeded else "ExperimentMaxFailedTrialsReached",
                        "message": ""}],
        "trials": len(trials), "trialsSucceeded": sum(t["condition"] == "Succeeded" for t in trials),
        "trialsFailed": sum(t["condition"] == "Failed" for t in trials)}
    if optimal:
        status["currentOptimalTrial"] = {"bestTrialName": best,
                                         "parameterAssignments": optimal["parameterAssignments"],
                                         "observation": optimal["observation"]}
    return {"executor": "local", "trials": trials, "experiment": {
        "metadata": {"name": "winequality-abc"},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "rmse"},
                 "parameters": [{"name": "alpha", "parameterType": "double"},
                                {"name": "l1_ratio", "parameterType": "double"}]},
        "status": status}}


TRIALS = [trial("t-1", "0.5", "0.1", "0.80"), trial("t-2", "0.0001", "0.9", "0.64"),
          trial("t-3", "0.01", "0.5", "0.66"), trial("t-4", "2.0", "0.3", None, "Failed")]


def test_tuning_report_shows_every_trial_and_marks_the_best() -> None:
    page = tuning_report(result(TRIALS, "t-2"))
    rows = re.findall(r"<tr( class=\"best\")?><td class=\"name\">(t-\d)</td>", page)
    assert [name for _, name in rows] == ["t-1", "t-2", "t-3", "t-4"]
    assert [name for best, name in rows if best] == ["t-2"]
    # One chart of the objective by trial and one per hyperparameter, each with the best trial marked once.
    assert page.count("<svg") == 3
    assert page.count('class="best" cx') == 3
    assert page.count('class="point"') == 3 * 2  # the two other scored trials; the failed one has no point
    assert "rmse = 0.64" in page
    assert "alpha (log scale)" in page  # alpha spans 0.0001..0.5: a linear axis would hide the small values
    assert "l1_ratio (log scale)" not in page


def test_a_failed_experiment_still_gets_its_page() -> None:
    failed = [trial("t-1", "0.5", "0.1", None, "Failed"), trial("t-2", "0.1", "0.2", None, "Failed")]
    page = tuning_report(result(failed, None, succeeded=False))
    assert "no trial reported the objective" in page
    assert "Failed" in page
    assert page.count('<td class="name">t-') == 2


def test_names_from_the_experiment_are_escaped() -> None:
    page = tuning_report(result([trial("<script>alert(1)</script>", "0.5", "0.1", "0.7")],
                                "<script>alert(1)</script>"))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_scatter_of_one_point_or_equal_values_does_not_divide_by_zero() -> None:
    assert 'class="best"' in scatter_svg([(1.0, 2.0, True)], x_label="x", y_label="y")
    assert scatter_svg([(1.0, 2.0, False), (1.0, 2.0, False)], x_label="x", y_label="y").count("<circle") == 2


DECISION = {"model_name": "wine", "challenger_version": "3", "previous_champion": "2", "promoted": True,
            "metric": "rmse", "challenger_value": 0.61, "champion_value": 0.65, "reason": "0.61 < 0.65",
            "champion_uri": "models:/wine@champion", "champion_version": "3"}


def test_promotion_report_compares_challenger_and_champion() -> None:
    page = promotion_report(DECISION)
    assert "<b>promoted</b>" in page
    rows = re.findall(r"<tr( class=\"best\")?><td class=\"name\">([^<]+)</td><td>(\d+)</td><td>([\d.]+)</td>", page)
    assert rows == [(' class="best"', "challenger", "3", "0.61"), ("", "champion before this run", "2", "0.65")]


def test_promotion_report_of_a_kept_champion_and_of_a_first_model() -> None:
    kept = promotion_report({**DECISION, "promoted": False, "challenger_value": 0.7, "champion_version": "2"})
    assert "kept the champion" in kept
    assert re.search(r'<tr class="best"><td class="name">champion before this run</td><td>2</td>', kept)
    first = promotion_report({**DECISION, "previous_champion": None, "champion_value": None})
    assert "champion before this run" not in first
    assert first.count("<rect") == 1
