"""The local target: the workflow's specs executed on this machine, against the local platform.

Twin of :mod:`infra.cluster.target`, with the same interface (:class:`components.targets.Target`): the Katib
Experiment runs on the local executor (:mod:`infra.local.katib`), the SeldonDeployments on MLServer and the
seldon-core wrapper (:mod:`infra.local.serving`). Its settings are :class:`~infra.local.settings.LocalSettings`
(``KFOPS_*`` variables, the state dir first among them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.deploy import Deployed, ServingSettings
from components.targets import TrialListener
from infra.local.platform import LocalPlatform, Reporter, ServiceStatus, remembered
from infra.local.serving import LocalServing, deploy_locally
from infra.local.settings import LocalSettings
from kfops.base.errors import KfopsError

#: What the local target calls its namespace (nothing is created in it).
NAMESPACE = "local"


class LocalTuning:
    """Runs the Experiment with the local executor (Katib's semantics, trials as processes)."""

    def run(self, experiment: dict[str, Any], *, timeout: float, workdir: Path,
            on_trial: TrialListener | None = None) -> dict[str, Any]:
        """See :class:`components.targets.TuningExecutor`."""
        from infra.local.katib.executor import run_local_experiment
        from infra.local.katib.trials import Trial

        objective = experiment["spec"]["objective"]
        metrics = (objective["objectiveMetricName"], *(objective.get("additionalMetricNames") or []))

        def finished(kind: str, trial: Trial) -> None:
            if kind == "finished" and on_trial is not None:
                on_trial(trial.to_dict(metrics))

        result = run_local_experiment(experiment, workdir, on_event=finished, timeout=timeout)
        if result.get("differsFromKatib"):
            algorithm = experiment["spec"]["algorithm"]["algorithmName"]
            print(f"local Katib executor, {algorithm}: {result['differsFromKatib']}")
        return result


class LocalDeployer:
    """Serves the champion with the local runtimes, as the SeldonDeployments would on a cluster."""

    def __init__(self, platform: LocalPlatform) -> None:
        self.platform = platform

    def deploy(self, champion_uri: str, *, protocols: tuple[str, ...], settings: ServingSettings) -> Deployed:
        """See :class:`components.targets.Deployer`."""
        return deploy_locally(champion_uri, protocols=protocols, settings=settings, platform=self.platform)


class LocalTarget:
    """The local platform (SeaweedFS, MLflow), the runtimes serving its champion, and the local executor.

    Args:
        settings: Ports, timeouts and the state dir; by default the ``KFOPS_*`` environment and the last ``up``.
    """

    name = "local"

    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.platform = LocalPlatform(settings or remembered(LocalSettings()))
        self.serving = LocalServing(self.platform)

    def experiment_namespace(self) -> str:
        """See :class:`components.targets.Target`."""
        return NAMESPACE

    def tuning_executor(self) -> LocalTuning:
        """See :class:`components.targets.Target`."""
        return LocalTuning()

    def deployer(self) -> LocalDeployer:
        """See :class:`components.targets.Target`."""
        return LocalDeployer(self.platform)

    def up(self, report: Reporter = lambda _message: None) -> list[ServiceStatus]:
        """Start what is not running, then serve the champion again on the last deployment's protocols.

        Raises:
            KfopsError: A platform service could not start (serving that cannot be restored is only reported).
        """
        self.platform.up(report, also=self.serving.idle_runtime_specs)
        try:
            self.serving.restore(report)
        except KfopsError as error:
            # The platform itself is fine; say what is not served and go on.
            report(f"[yellow]could not restore serving[/]: {error}")
        return self.platform.status()
