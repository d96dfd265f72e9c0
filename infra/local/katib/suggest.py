"""Suggestion algorithms for the local executor, by Katib algorithm name, searching as Katib's services do.

Each suggester follows the suggestion service Katib v0.19.0 routes the algorithm to
(:data:`kfops.base.upstream.katib.ALGORITHMS`): the same library where it can run here, the same use of it, the same
treatment of ``logUniform``. Where the local search differs it says so in :data:`DIFFERENCES`, which the tune step
prints with the local run:

- ``random``, ``tpe``: hyperopt, asked the way Katib's hyperopt service asks it (completed trials replayed into its
  history; TPE with ``n_startup_jobs`` equal to the number of trials requested at once).
- ``multivariate-tpe``: optuna's TPE sampler, multivariate, with the constant liar, as Katib's optuna service.
- ``cmaes``: CMA-ES, ignoring ``logUniform`` as Katib's goptuna service does.
- ``bayesianoptimization``: scikit-optimize's ``Optimizer``; every double log-uniform and every int uniform,
  whatever the spec asks, as Katib's skopt service.
- ``grid``: every combination once.

Failed trials teach nothing (Katib only hands succeeded trials with a value to its services).
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


#: Where the local search differs from Katib's, by algorithm (printed by the tune step when it runs locally).
DIFFERENCES: dict[str, str] = {
    "random": "hyperopt 0.2.7 here, 0.2.5 in Katib's image (0.2.5 does not run on NumPy 2); the same seed draws "
              "different points",
    "tpe": "hyperopt 0.2.7 here, 0.2.5 in Katib's image (0.2.5 does not run on NumPy 2); the same seed draws "
           "different points",
    "multivariate-tpe": "optuna 5 here, 3.3.0 in Katib's image",
    "cmaes": "optuna's CMA-ES (the cmaes library) here, goptuna's in Katib; both ignore logUniform; "
             "restart_strategy (ipop, bipop) only applies on Katib: optuna 5 has no restarts",
    "bayesianoptimization": "scikit-optimize 0.10.2 here, >=0.9.0 in Katib's image; both sample every double "
                            "log-uniformly",
    "grid": "combinations in order here; Katib's optuna GridSampler visits them in a seeded random order",
}


class HyperoptSuggester:
    """random and tpe via hyperopt, as Katib's hyperopt suggestion service drives it."""

    def __init__(self, algorithm: str, settings: dict[str, Any], parameters: Sequence[SearchParameter],
                 goal: str) -> None:
        import hyperopt
        import numpy as np

        self.hyperopt = hyperopt
        self.algorithm = algorithm
        options = dict(settings)
        self.rng = np.random.default_rng(options.pop("random_state", None))
        self.options = options  # tpe: gamma, prior_weight, n_EI_candidates, under hyperopt's own names
        self.parameters = list(parameters)
        self.sign = -1.0 if goal == "maximize" else 1.0  # hyperopt always minimizes
        self.domain = hyperopt.Domain(None, {p.name: self._space(p) for p in parameters}, pass_expr_memo_ctrl=None)
        self.trials = hyperopt.Trials()
        self.first_request = True

    def _space(self, parameter: SearchParameter) -> Any:
        """The hyperopt expression Katib's service builds for a parameter (``logUniform`` honoured)."""
        hp = self.hyperopt.hp
        name = parameter.name
        if parameter.type in ("categorical", "discrete"):
            return hp.choice(name, list(parameter.values))
        low, high = parameter.bounds
        if parameter.log:
            if parameter.step:
                return hp.qloguniform(name, math.log(low), math.log(high), parameter.step)
            return hp.loguniform(name, math.log(low), math.log(high))
        if parameter.step:
            return hp.quniform(name, low, high, parameter.step)
        return hp.uniformint(name, low, high) if parameter.type == "int" else hp.uniform(name, low, high)

    def _assignment(self, vals: dict[str, list[Any]]) -> dict[str, str]:
        assignment = {}
        for parameter in self.parameters:
            value = vals[parameter.name][0]
            if parameter.type in ("categorical", "discrete"):
                value = parameter.values[int(value)]
            assignment[parameter.name] = format_value(parameter, value)
        return assignment

    def ask(self, count: int) -> list[tuple[Any, dict[str, str]]]:
        """See :class:`Suggester`."""
        if count <= 0:
            return []
        ids = self.trials.new_trial_ids(count)
        seed = int(self.rng.integers(2**31 - 1))
        if self.algorithm == "random":
            docs = self.hyperopt.rand.suggest(ids, self.domain, self.trials, seed)
        elif self.first_request:
            # TPE starts from random points: as many as Katib requests in its first call.
            docs = self.hyperopt.tpe.suggest(ids, self.domain, self.trials, seed, n_startup_jobs=count,
                                             **self.options)
        else:
            docs = [self.hyperopt.tpe.suggest([new_id], self.domain, self.trials, seed, n_startup_jobs=count,
                                              **self.options)[0] for new_id in ids]
        self.first_request = False
        return [(doc, self._assignment(doc["misc"]["vals"])) for doc in docs]

    def tell(self, token: Any, value: float | None) -> None:
        """See :class:`Suggester`: a succeeded trial joins hyperopt's history, a failed one is forgotten."""
        if value is None or not math.isfinite(value):
            return
        token["state"] = self.hyperopt.JOB_STATE_DONE
        token["result"] = {"loss": self.sign * value, "status": self.hyperopt.STATUS_OK}
        self.trials.insert_trial_docs([token])
        self.trials.refresh()

    @property
    def exhausted(self) -> bool:
        """See :class:`Suggester`; sampling never runs out."""
        return False


class OptunaSuggester:
    """multivariate-tpe (as Katib's optuna service) and cmaes (as Katib's goptuna service) via optuna's ask-and-tell."""

    def __init__(self, algorithm: str, settings: dict[str, Any], parameters: Sequence[SearchParameter],
                 goal: str) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = settings.get("random_state")
        self.parameters = {p.name: p for p in parameters}
        # goptuna never reads a parameter's distribution: cmaes searches in each parameter's own scale.
        honour_log = algorithm != "cmaes"
        self.distributions = {p.name: self._distribution(p, honour_log) for p in parameters}
        if algorithm == "multivariate-tpe":
            options: dict[str, Any] = {"seed": seed, "multivariate": True, "constant_liar": True}
            for name in ("n_startup_trials", "n_ei_candidates"):
                if name in settings:
                    options[name] = settings[name]
            sampler: Any = optuna.samplers.TPESampler(**options)
        elif algorithm == "cmaes":
            # goptuna starts CMA-ES at once (no random start-up trials). Its restart_strategy has no local
            # counterpart: optuna 5 dropped restarts (see DIFFERENCES).
            sampler = optuna.samplers.CmaEsSampler(seed=seed, sigma0=settings.get("sigma"), n_startup_trials=0)
        else:  # pragma: no cover - guarded by make_suggester
            raise KfopsError(f"{algorithm} is not an optuna algorithm", "report this bug")
        self.study = optuna.create_study(direction=goal, sampler=sampler)

    @staticmethod
    def _distribution(parameter: SearchParameter, honour_log: bool) -> Any:
        import optuna

        log = parameter.log and honour_log
        if parameter.type == "double":
            return optuna.distributions.FloatDistribution(parameter.bounds[0], parameter.bounds[1], log=log,
                                                          step=None if log else parameter.step)
        if parameter.type == "int":
            return optuna.distributions.IntDistribution(int(parameter.bounds[0]), int(parameter.bounds[1]),
                                                        log=log, step=1 if log else int(parameter.step or 1))
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
    """bayesianoptimization via scikit-optimize's ``Optimizer``, with the search space Katib's skopt service builds."""

    def __init__(self, settings: dict[str, Any], parameters: Sequence[SearchParameter], goal: str) -> None:
        from skopt import Optimizer
        from skopt.space import Categorical, Integer, Real

        self.parameters = list(parameters)
        dimensions: list[Any] = []
        for p in self.parameters:
            # Katib: every double Real(min, max, "log-uniform"), every int Integer(min, max); distribution and step
            # are not read.
            if p.type == "double":
                dimensions.append(Real(p.bounds[0], p.bounds[1], prior="log-uniform", name=p.name))
            elif p.type == "int":
                dimensions.append(Integer(int(p.bounds[0]), int(p.bounds[1]), name=p.name))
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
    if algorithm in ("random", "tpe"):
        return HyperoptSuggester(algorithm, typed, parameters, goal)
    return OptunaSuggester(algorithm, typed, parameters, goal)

