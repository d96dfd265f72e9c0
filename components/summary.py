"""What a workflow run produced, typed: each step's outcome, and the run summary the CLI prints and tests check.

Steps hand these on as KFP ``dict`` parameters (:meth:`as_dict` / ``from_dict``); the local runner reads them from
the pipeline's outputs, the cluster runner rebuilds them from the run's records (the Katib Experiment, the MLflow
registry, the SeldonDeployments). Either way the result is one :class:`RunSummary`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Self


class _Record:
    """``as_dict``/``from_dict`` for the frozen dataclasses below (unknown keys are ignored when reading)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-serializable form (what a step outputs)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Read the form :meth:`as_dict` wrote (KFP hands counts back as floats: ``int`` fields are made whole)."""
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: int(value) if hints[key] is int else value for key, value in data.items() if key in names})


@dataclass(frozen=True)
class TuningOutcome(_Record):
    """The Katib Experiment's outcome and its best trial.

    Attributes:
        experiment: Experiment name.
        executor: ``katib`` or ``local``.
        outcome: ``Succeeded`` or ``Failed``.
        reason: Katib's reason, e.g. ``ExperimentMaxTrialsReached``.
        trials: Trials started.
        succeeded: Trials that succeeded.
        failed: Trials that failed.
        killed: Trials killed when the experiment ended.
        best_trial: Name of the optimal trial.
        best_params: Its parameter assignments (Katib writes them as strings).
        objective_metric: The metric optimised.
        objective: Its value for the best trial (validation rows).
    """

    experiment: str
    executor: str
    outcome: str
    reason: str
    trials: int
    succeeded: int
    failed: int
    killed: int
    best_trial: str | None
    best_params: dict[str, str]
    objective_metric: str
    objective: float


@dataclass(frozen=True)
class TrainingOutcome(_Record):
    """The model version the train step registered (alias ``challenger``).

    Attributes:
        model: Registered model name.
        version: Its new version.
        run_id: MLflow run of the training.
        source: Where the version's artifacts are (an ``s3://`` URI).
        dataset_uri: The dataset it was trained on.
        params: Hyperparameters it was fitted with.
        test_metrics: Its metrics on the held-out test rows.
    """

    model: str
    version: str
    run_id: str
    source: str
    dataset_uri: str
    params: dict[str, Any]
    test_metrics: dict[str, float]

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.model}/{self.version}"


@dataclass(frozen=True)
class ServingOutcome(_Record):
    """What serves the champion after the deploy step.

    Attributes:
        model: Registered model name.
        version: The version served.
        target: ``seldon`` (cluster) or ``local``.
        endpoints: Prediction URL by protocol (``v2``, ``v1``).
        warnings: E.g. a BSL-licensed Seldon Core version.
    """

    model: str
    version: str
    target: str
    endpoints: dict[str, str]
    warnings: list[str] = field(default_factory=list)


#: The file a local run leaves in its directory: its :class:`RunSummary` as JSON, for scripts (and tests) that ran
#: ``kfops pipeline run`` and want its outcome.
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class RunSummary(_Record):
    """One run of the workflow, whichever target ran it.

    Attributes:
        target: ``local`` or ``cluster``.
        location: Where to look at the run: its directory (local) or its KFP run URL (cluster).
        seconds: Wall time of the run.
        tuning: The tuning outcome.
        training: The registered version.
        promotion: The champion decision (``components.promote.Decision.as_dict()``).
        serving: What serves the champion.
        log: The run's log file (local), if any.
        reports: The run's HTML pages by name (``tuning``, ``promotion``): files locally; on a cluster the KFP
            UI shows them with the run.
    """

    target: str
    location: str
    seconds: float
    tuning: TuningOutcome
    training: TrainingOutcome
    promotion: dict[str, Any]
    serving: ServingOutcome
    log: str = ""
    reports: dict[str, str] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        """Whether this run's version became the champion."""
        return bool(self.promotion["promoted"])

    @property
    def champion_version(self) -> str:
        """The version holding alias ``champion`` after the run."""
        return str(self.promotion["champion_version"])

    @property
    def champion_uri(self) -> str:
        """``models:/<name>@champion``."""
        return str(self.promotion["champion_uri"])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Read the form :meth:`as_dict` wrote (what a local run leaves in its directory as :data:`SUMMARY_FILE`)."""
        return cls(target=data["target"], location=data["location"], seconds=float(data["seconds"]),
                   log=data.get("log", ""), reports=dict(data.get("reports", {})),
                   tuning=TuningOutcome.from_dict(data["tuning"]), training=TrainingOutcome.from_dict(data["training"]),
                   promotion=dict(data["promotion"]), serving=ServingOutcome.from_dict(data["serving"]))

    @classmethod
    def from_outputs(cls, outputs: dict[str, Any], *, target: str, location: str, seconds: float,
                     log: str = "", reports: dict[str, str] | None = None) -> RunSummary:
        """Build the summary from the pipeline's outputs (``tuning``, ``training``, ``decision``, ``serving``)."""
        return cls(target=target, location=location, seconds=seconds, log=log, reports=dict(reports or {}),
                   tuning=TuningOutcome.from_dict(outputs["tuning"]),
                   training=TrainingOutcome.from_dict(outputs["training"]),
                   promotion=dict(outputs["decision"]),
                   serving=ServingOutcome.from_dict(outputs["serving"]))
