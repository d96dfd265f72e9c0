from __future__ import annotations

import math
import random

import pytest

from components.katib.algorithms import ALGORITHMS, grid_values
from infra.local.katib.suggest import make_suggester
from kfops.base.errors import KfopsError
from kfops.base.recipes import SearchParameter

pytestmark = pytest.mark.unit

SPACE = (
    SearchParameter(name="alpha", type="double", min=1e-3, max=1.0, log=True),
    SearchParameter(name="depth", type="int", min=2, max=6),
)
MIXED = (*SPACE, SearchParameter(name="kind", type="categorical", values=("a", "b")))
GRID = (
    SearchParameter(name="alpha", type="double", min=0.1, max=0.3, step=0.1),
    SearchParameter(name="depth", type="int", min=2, max=4),
)


def within(space: tuple[SearchParameter, ...], assignment: dict[str, str]) -> bool:
    for parameter in space:
        value = assignment[parameter.name]
        if parameter.type == "categorical":
            ok = value in parameter.values
        else:
            number = float(value)
            ok = parameter.min <= number <= parameter.max and (parameter.type != "int" or value.isdigit())
        if not ok:
            return False
    return set(assignment) == {p.name for p in space}


def loss(assignment: dict[str, str]) -> float:
    """A smooth bowl with its minimum at alpha=0.05 (on the log scale), depth=4."""
    return (math.log10(float(assignment["alpha"])) - math.log10(0.05)) ** 2 + (int(assignment["depth"]) - 4) ** 2 / 4


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if a != "grid"])
def test_every_algorithm_suggests_inside_the_space(algorithm: str) -> None:
    space = SPACE if algorithm == "cmaes" else MIXED
    bayes = {"n_initial_points": "2", "acq_optimizer": "sampling"}
    settings = {"random_state": "1"} | (bayes if algorithm == "bayesianoptimization" else {})
    suggester = make_suggester(algorithm, settings, space, "minimize")
    seen = []
    for _ in range(3):
        for token, assignment in suggester.ask(2):
            assert within(space, assignment), assignment
            seen.append(assignment)
            suggester.tell(token, loss(assignment))
    assert len(seen) == 6
    assert not suggester.exhausted


def random_search_loss(draws: int = 20_000) -> float:
    """The mean loss of points drawn uniformly from SPACE (log-uniform alpha): what not learning gives."""
    rng = random.Random(0)
    return sum(loss({"alpha": str(10 ** rng.uniform(-3, 0)), "depth": str(rng.randint(2, 6))})
               for _ in range(draws)) / draws


@pytest.mark.parametrize(("algorithm", "settings", "rounds"), [
    ("tpe", {"random_state": "3"}, 40),
    ("multivariate-tpe", {"random_state": "3"}, 40),
    ("cmaes", {"random_state": "3"}, 40),
    # Each Gaussian-process refit costs ~0.3 s here: fewer rounds, sampled acquisition.
    ("bayesianoptimization", {"random_state": "3", "n_initial_points": "5", "acq_optimizer": "sampling"}, 15),
])
def test_model_based_algorithms_learn_from_what_they_are_told(algorithm: str, settings: dict[str, str],
                                                               rounds: int) -> None:
    suggester = make_suggester(algorithm, settings, SPACE, "minimize")
    losses = []
    for _ in range(rounds):
        (token, assignment), = suggester.ask(1)
        losses.append(loss(assignment))
        suggester.tell(token, losses[-1])
    last = losses[-(rounds // 4):]
    # Once it has learned, what it proposes is far better than searching at random.
    assert sum(last) / len(last) < 0.5 * random_search_loss(), losses


def test_a_failed_trial_is_recorded_as_failed_not_as_a_value() -> None:
    import optuna

    suggester = make_suggester("tpe", {"random_state": "1"}, SPACE, "maximize")
    (failed, _), = suggester.ask(1)
    suggester.tell(failed, None)
    (succeeded, _), = suggester.ask(1)
    suggester.tell(succeeded, 0.5)
    states = [trial.state for trial in suggester.study.trials]  # type: ignore[attr-defined]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert suggester.study.best_value == 0.5  # type: ignore[attr-defined]


def test_grid_enumerates_every_point_once_then_is_exhausted() -> None:
    suggester = make_suggester("grid", {}, GRID, "minimize")
    points = []
    while not suggester.exhausted:
        batch = suggester.ask(4)
        assert batch
        for token, assignment in batch:
            points.append((assignment["alpha"], assignment["depth"]))
            suggester.tell(token, 1.0)
    assert sorted(points) == sorted((a, d) for a in ("0.1", "0.2", "0.3") for d in ("2", "3", "4"))
    assert suggester.ask(2) == []


def test_grid_values_of_each_type() -> None:
    assert grid_values(GRID[0]) == ["0.1", "0.2", "0.3"]
    assert grid_values(SearchParameter(name="d", type="int", min=1, max=9, step=4)) == ["1", "5", "9"]
    assert grid_values(SearchParameter(name="k", type="discrete", values=("1", "10"))) == ["1", "10"]


@pytest.mark.parametrize(("case", "algorithm", "settings", "space", "expected"), [
    ("unknown algorithm", "hyperband", {}, SPACE, "unknown tuning algorithm"),
    ("unknown setting", "cmaes", {"population": "4"}, SPACE, "has no setting 'population'"),
    ("setting of wrong type", "tpe", {"n_startup_trials": "many"}, SPACE, "not a valid int"),
    ("cmaes on one dimension", "cmaes", {}, SPACE[:1], "two or more numeric"),
    ("cmaes with a categorical", "cmaes", {}, MIXED, "no categorical"),
    ("grid over a continuous double", "grid", {}, SPACE, "needs a step for double parameter 'alpha'"),
    ("empty space", "random", {}, (), "search space is empty"),
])
def test_invalid_algorithm_requests(case: str, algorithm: str, settings: dict[str, str],
                                    space: tuple[SearchParameter, ...], expected: str) -> None:
    with pytest.raises(KfopsError, match=expected):
        make_suggester(algorithm, settings, space, "minimize")
