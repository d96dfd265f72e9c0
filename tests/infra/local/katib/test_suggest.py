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


@pytest.mark.parametrize(("algorithm", "settings", "rounds", "ratio"), [
    # hyperopt's TPE, started as Katib starts it (one random point per trial requested at once), learns slowly:
    # over seeds 3-7 the last quarter of 60 rounds averaged 64 % of random search's loss.
    ("tpe", {"random_state": "3"}, 60, 0.75),
    ("multivariate-tpe", {"random_state": "3"}, 40, 0.5),
    ("cmaes", {"random_state": "3"}, 40, 0.5),
    # Each Gaussian-process refit costs ~0.3 s here: fewer rounds, sampled acquisition.
    ("bayesianoptimization", {"random_state": "3", "n_initial_points": "5", "acq_optimizer": "sampling"}, 15, 0.5),
])
def test_model_based_algorithms_learn_from_what_they_are_told(algorithm: str, settings: dict[str, str],
                                                               rounds: int, ratio: float) -> None:
    suggester = make_suggester(algorithm, settings, SPACE, "minimize")
    losses = []
    for _ in range(rounds):
        (token, assignment), = suggester.ask(1)
        losses.append(loss(assignment))
        suggester.tell(token, losses[-1])
    last = losses[-(rounds // 4):]
    # Once it has learned, what it proposes is far better than searching at random.
    assert sum(last) / len(last) < ratio * random_search_loss(), losses


def test_a_failed_trial_is_recorded_as_failed_not_as_a_value() -> None:
    import optuna

    suggester = make_suggester("multivariate-tpe", {"random_state": "1"}, SPACE, "maximize")
    (failed, _), = suggester.ask(1)
    suggester.tell(failed, None)
    (succeeded, _), = suggester.ask(1)
    suggester.tell(succeeded, 0.5)
    states = [trial.state for trial in suggester.study.trials]  # type: ignore[attr-defined]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert suggester.study.best_value == 0.5  # type: ignore[attr-defined]


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_hyperopt_learns_only_from_succeeded_trials_as_katib_does(algorithm: str) -> None:
    # Katib hands its services only succeeded trials with a value (internal/trial.py, Trial.convert).
    suggester = make_suggester(algorithm, {"random_state": "1"}, SPACE, "maximize")
    (failed, _), (succeeded, _) = suggester.ask(2)
    suggester.tell(failed, None)
    suggester.tell(succeeded, 0.5)
    history = suggester.trials  # type: ignore[attr-defined]
    assert [trial["result"] for trial in history.trials] == [{"loss": -0.5, "status": "ok"}], "maximize: -value"


def test_tpe_takes_katibs_settings_under_hyperopts_names() -> None:
    settings = {"gamma": "0.3", "prior_weight": "2.0", "n_EI_candidates": "12", "random_state": "5"}
    suggester = make_suggester("tpe", settings, SPACE, "minimize")
    assert suggester.options == {"gamma": 0.3, "prior_weight": 2.0, "n_EI_candidates": 12}  # type: ignore[attr-defined]
    for _ in range(6):
        (token, assignment), = suggester.ask(1)
        assert within(SPACE, assignment)
        suggester.tell(token, loss(assignment))


@pytest.mark.parametrize(("algorithm", "settings", "log_sampled"), [
    ("random", {}, True),                      # hyperopt: loguniform when the spec says so
    ("cmaes", {}, False),                      # goptuna never reads the distribution
    ("bayesianoptimization", {"n_initial_points": "400"}, True),  # skopt: every double log-uniform, always
])
def test_each_algorithm_treats_log_uniform_as_its_katib_service_does(algorithm: str, settings: dict[str, str],
                                                                     log_sampled: bool) -> None:
    space = (SearchParameter(name="alpha", type="double", min=1e-4, max=1.0, log=True),
             SearchParameter(name="depth", type="int", min=2, max=6))
    suggester = make_suggester(algorithm, {"random_state": "2", **settings}, space, "minimize")
    values = []
    for _ in range(10 if algorithm == "cmaes" else 1):
        for token, assignment in suggester.ask(20 if algorithm == "cmaes" else 200):
            values.append(float(assignment["alpha"]))
            suggester.tell(token, 1.0)
    median = sorted(values)[len(values) // 2]
    # Sampled log-uniformly on [1e-4, 1] (or, for CMA-ES, around the middle of that scale) the median is near
    # 0.01; uniformly, near 0.5.
    assert (median < 0.1) is log_sampled, median


def test_skopt_samples_a_uniform_double_log_uniformly_as_katib_does() -> None:
    space = (SearchParameter(name="alpha", type="double", min=1e-4, max=1.0),
             SearchParameter(name="depth", type="int", min=2, max=6))
    suggester = make_suggester("bayesianoptimization", {"random_state": "2", "n_initial_points": "400"}, space,
                               "minimize")
    values = [float(assignment["alpha"]) for _, assignment in suggester.ask(200)]
    assert sum(value < 0.01 for value in values) / len(values) > 0.3


def test_every_algorithm_says_where_the_local_search_differs() -> None:
    from infra.local.katib.suggest import DIFFERENCES

    assert set(DIFFERENCES) == set(ALGORITHMS)


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
    ("setting of wrong type", "tpe", {"n_EI_candidates": "many"}, SPACE, "not a valid int"),
    ("optuna's name on hyperopt's tpe", "tpe", {"n_startup_trials": "5"}, SPACE, "has no setting"),
    ("cmaes on one dimension", "cmaes", {}, SPACE[:1], "2 or more numeric"),
    ("cmaes with a categorical", "cmaes", {}, MIXED, "no categorical"),
    ("grid over a continuous double", "grid", {}, SPACE, "needs a step for double parameter 'alpha'"),
    ("empty space", "random", {}, (), "search space is empty"),
])
def test_invalid_algorithm_requests(case: str, algorithm: str, settings: dict[str, str],
                                    space: tuple[SearchParameter, ...], expected: str) -> None:
    with pytest.raises(KfopsError, match=expected):
        make_suggester(algorithm, settings, space, "minimize")
