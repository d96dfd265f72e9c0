"""Suggestion algorithms for the local executor, by Katib algorithm name.

Katib's suggestion services wrap hyperopt (random, tpe), optuna (multivariate-tpe, cmaes, grid) and scikit-optimize
(bayesianoptimization). Locally the optuna samplers stand in for hyperopt's (same method: independent random
sampling, Parzen-estimator TPE), scikit-optimize runs bayesianoptimization itself, and grid is a plain enumeration
(optuna's GridSampler stops its study from inside ``tell``, which only works in optuna's own optimize loop).
Settings use Katib's names.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Protocol

from components.katib.algorithms import grid_values, typed_settings, validate_settings
from kfops.base.errors import KfopsError
from kfops.base.recipes import SearchParameter


def format_value(parameter: SearchParameter, value: Any) -> str:
    """A sampled value as Katib writes parameter assignments (strings)."""
    if parameter.type == "int":
        return str(int(value))
    if parameter.type == "double":
        return repr(float(value))
    return str(value)


class Suggester(Protocol):
    """Asks for assignments and learns from their results."""

    def ask(self, count: int) -> list[tuple[Any, dict[str, str]]]:
        """Up to ``count`` new assignments, each with a token to report its result with."""
        ...

    def tell(self, token: Any, value: float | None) -> None:
        """The objective value of an assignment, or ``None`` if its trial failed."""
        ...

    @property
    def exhausted(self) -> bool:
        """Whether the algorithm has nothing left to suggest (grid search done)."""
        ...


class GridSuggester:
    """grid: every combination of the parameters' grid values, in order, each once (then exhausted)."""

    def __init__(self, parameters: Sequence[SearchParameter]) -> None:
        self.names = [p.name for p in parameters]
        self.points = itertools.product(*(grid_values(p) for p in parameters))
        self.size = math.prod(len(grid_values(p)) for p in parameters)
        self.asked = 0

    def ask(self, count: int) -> list[tuple[Any, dict[str, str]]]:
        """See :class:`Suggester`."""
        batch = list(itertools.islice(self.points, max(count, 0)))
        self.asked += len(batch)
        return [(None, dict(zip(self.names, point, strict=True))) for point in batch]

    def tell(self, token: Any, value: float | None) -> None:
        """See :class:`Suggester`; a grid does not learn."""

    @property
    def exhausted(self) -> bool:
        """See :class:`Suggester`."""
        return self.asked >= self.size


class OptunaSuggester:
    """random, tpe, multivariate-tpe and cmaes via optuna's ask-and-tell interface."""

    def __init__(self, algorithm: str, settings: dict[str, Any], parameters: Sequence[SearchParameter],
                 goal: str) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = settings.get("random_state")
        self.parameters = {p.name: p for p in parameters}
        self.distributions = {p.name: self._distribution(p) for p in parameters}
        if algorithm == "random":
            sampler: Any = optuna.samplers.RandomSampler(seed=seed)
        elif algorithm in ("tpe", "multivariate-tpe"):
            options: dict[str, Any] = {"seed": seed, "multivariate": algorithm == "multivariate-tpe",
                                       # parallel trials: treat running ones as bad so they are not re-proposed
                                       "constant_liar": True}
            if "n_startup_trials" in settings:
                options["n_startup_trials"] = settings["n_startup_trials"]
            candidates = settings.get("n_ei_candidates", settings.get("n_EI_candidates"))
            if candidates:
                options["n_ei_candidates"] = candidates
            if "prior_weight" in settings:
                options["prior_weight"] = settings["prior_weight"]
            if "gamma" in settings:
                share = settings["gamma"]
                options["gamma"] = lambda n: min(math.ceil(share * n), 25)
            sampler = optuna.samplers.TPESampler(**options)
        elif algorithm == "cmaes":
            sampler = optuna.samplers.CmaEsSampler(seed=seed, sigma0=settings.get("sigma"),
                                                   restart_strategy=settings.get("restart_strategy"))
        else:  # pragma: no cover - guarded by validate_settings
            raise KfopsError(f"{algorithm} is not an optuna algorithm", "report this bug")
        self.study = optuna.create_study(direction=goal, sampler=sampler)

    @staticmethod
    def _distribution(parameter: SearchParameter) -> Any:
        import optuna

        if parameter.type == "double":
            return optuna.distributions.FloatDistribution(parameter.min, parameter.max, log=parameter.log,
                                                          step=None if parameter.log else parameter.step)
        if parameter.type == "int":
            return optuna.distributions.IntDistribution(int(parameter.bounds[0]), int(parameter.bounds[1]),
                                                        log=parameter.log, step=int(parameter.step or 1))
        return optuna.distributions.CategoricalDistribution(list(parameter.values))

    def ask(self, count: int) -> list[tuple[Any, dict[str, str]]]:
        """See :class:`Suggester`."""
        result = []
        for _ in range(max(count, 0)):
            trial = self.study.ask(self.distributions)
            result.append((trial, {name: format_value(self.parameters[name], value)
                                   for name, value in trial.params.items()}))
        return result

    def tell(self, token: Any, value: float | None) -> None:
        """See :class:`Suggester`."""
        import optuna

        if value is None or not math.isfinite(value):
            self.study.tell(token, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(token, value)

    @property
    def exhausted(self) -> bool:
        """See :class:`Suggester`; sampling never runs out."""
        return False


class SkoptSuggester:
    """bayesianoptimization via scikit-optimize's ``Optimizer`` (what Katib's skopt suggestion service runs)."""

    def __init__(self, settings: dict[str, Any], parameters: Sequence[SearchParameter], goal: str) -> None:
        from skopt import Optimizer
        from skopt.space import Categorical, Integer, Real

        self.parameters = list(parameters)
        dimensions: list[Any] = []
        for p in self.parameters:
            prior = "log-uniform" if p.log else "uniform"
            if p.type == "double":
                dimensions.append(Real(p.min, p.max, prior=prior, name=p.name))
            elif p.type == "int":
                dimensions.append(Integer(int(p.bounds[0]), int(p.bounds[1]), prior=prior, name=p.name))
            else:
                dimensions.append(Categorical(list(p.values), name=p.name))
        self.sign = 1.0 if goal == "minimize" else -1.0  # skopt always minimizes
        self.optimizer = Optimizer(
            dimensions,
            base_estimator=settings.get("base_estimator", "GP"),
            n_initial_points=settings.get("n_initial_points", 10),
            acq_func=settings.get("acq_func", "gp_hedge"),
            acq_optimizer=settings.get("acq_optimizer", "auto"),
            random_state=settings.get("random_state"),
        )

    def ask(self, count: int) -> list[tuple[Any, dict[str, str]]]:
        """See :class:`Suggester`; several points at once use skopt's constant-liar strategy."""
        if count <= 0:
            return []
        points = self.optimizer.ask(n_points=count) if count > 1 else [self.optimizer.ask()]
        return [(point, {p.name: format_value(p, v) for p, v in zip(self.parameters, point, strict=True)})
                for point in points]

    def tell(self, token: Any, value: float | None) -> None:
        """See :class:`Suggester`; failed trials teach the model nothing (as in Katib)."""
        if value is not None and math.isfinite(value):
            self.optimizer.tell(list(token), self.sign * value)

    @property
    def exhausted(self) -> bool:
        """See :class:`Suggester`; Bayesian optimization never runs out."""
        return False


def make_suggester(algorithm: str, settings: dict[str, str], parameters: Sequence[SearchParameter],
                   goal: str) -> Suggester:
    """The suggester for a Katib algorithm name and its (string) settings.

    Raises:
        KfopsError: Unknown algorithm or setting, or a search space the algorithm cannot handle.
    """
    validate_settings(algorithm, settings, parameters)
    typed = typed_settings(algorithm, settings)
    if algorithm == "bayesianoptimization":
        return SkoptSuggester(typed, parameters, goal)
    if algorithm == "grid":
        return GridSuggester(parameters)
    return OptunaSuggester(algorithm, typed, parameters, goal)

