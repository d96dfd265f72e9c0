from __future__ import annotations

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


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if a != "grid"])
def test_every_algorithm_suggests_inside_the_space_and_learns(algorithm: str) -> None:
    space = SPACE if algorithm == "cmaes" else MIXED
    # Each Gaussian-process refit costs ~0.3 s here; few initial points and sampling keep the test short.
    bayes = {"n_initial_points": "2", "acq_optimizer": "sampling"}
    settings = {"random_state": "1"} | (bayes if algorithm == "bayesianoptimization" else {})
    suggester = make_suggester(algorithm, settings, space, "minimize")
    seen = []
    for _ in range(3):
        for token, assignment in suggester.ask(2):
            assert within(space, assignment), assignment
            seen.append(assignment)
            suggester.tell(token, abs(float(assignment["alpha"]) - 0.1))
    assert len(seen) == 6
    assert not suggester.exhausted


def test_failed_trials_are_reported_to_the_algorithm() -> None:
    suggester = make_suggester("tpe", {"random_state": "1"}, SPACE, "maximize")
    (token, _), = suggester.ask(1)
    suggester.tell(token, None)
    (token, _), = suggester.ask(1)
    suggester.tell(token, 0.5)


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
