"""The interface of a target: who executes the workflow's Katib Experiment and its SeldonDeployments.

The workflow builds one Experiment spec and one SeldonDeployment spec per protocol. A target decides who runs them:
the cluster target hands them to Katib and Seldon Core (:mod:`infra.cluster.target`); the local target runs the
same specs on this machine (:mod:`infra.local.target`). Both implement :class:`Target`; :mod:`pipelines.targets`
picks one by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from components.deploy import Deployed, ServingSettings

#: Called when a tuning trial finishes, with its trial record (see :mod:`components.katib.results`).
TrialListener = Callable[[dict[str, Any]], None]


class TuningExecutor(Protocol):
    """Runs a Katib ``Experiment`` and returns the tuning result (see :mod:`components.katib.results`)."""

    def run(self, experiment: dict[str, Any], *, timeout: float, workdir: Path,
            on_trial: TrialListener | None = None) -> dict[str, Any]:
        """Run ``experiment`` to completion.

        Args:
            experiment: The Experiment, as :func:`components.katib.experiment.build_experiment` builds it.
            timeout: Seconds the experiment may take.
            workdir: Where trial logs may be written.
            on_trial: Told about every finished trial.

        Returns:
            The result in Katib's status shape, whichever executor ran it.

        Raises:
            KfopsError: The spec was refused or the experiment did not finish.
        """
        ...


class Deployer(Protocol):
    """Serves a registered model as the SeldonDeployment specs describe it."""

    def deploy(self, champion_uri: str, *, protocols: tuple[str, ...], settings: ServingSettings) -> Deployed:
        """Serve the version ``champion_uri`` (``models:/<name>@champion``) names on ``protocols``.

        Raises:
            KfopsError: The model cannot be served; whatever served before keeps serving.
        """
        ...


class Target(Protocol):
    """One of the two places the workflow runs: ``cluster`` or ``local``."""

    name: str

    def experiment_namespace(self) -> str:
        """Namespace the Katib Experiment is created in."""
        ...

    def tuning_executor(self) -> TuningExecutor:
        """Who runs the Katib Experiment."""
        ...

    def deployer(self) -> Deployer:
        """Who serves the champion."""
        ...
