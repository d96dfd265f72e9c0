"""The cluster target: the workflow's specs executed by Kubeflow, Katib and Seldon Core.

Twin of :mod:`infra.local.target`, with the same interface (:class:`components.targets.Target`): the Katib
Experiment is created in the step's namespace and Katib runs it (:mod:`infra.cluster.katib`); the SeldonDeployments
are applied there and Seldon Core serves them (:mod:`infra.cluster.seldon`). Its settings are the Pulumi stack's
(:mod:`infra.cluster.settings`), which reach the steps through the namespace's ConfigMap, Secrets and PodDefaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.deploy import Deployed, ServingSettings
from components.targets import TrialListener
from infra.cluster.kube import current_namespace


class KatibTuning:
    """Creates the Experiment, waits for Katib to finish it and collects its Trials."""

    def __init__(self, api: Any = None, poll: float = 10) -> None:
        self.api = api
        self.poll = poll

    def run(self, experiment: dict[str, Any], *, timeout: float, workdir: Path,
            on_trial: TrialListener | None = None) -> dict[str, Any]:
        """See :class:`components.targets.TuningExecutor` (``workdir`` is unused: trial logs stay in their pods)."""
        from infra.cluster.katib import run_on_cluster

        return run_on_cluster(experiment, timeout=timeout, poll=self.poll, on_trial=on_trial, api=self.api)


class SeldonDeployer:
    """Applies one SeldonDeployment per protocol and waits for it, rolling back a failed roll-out."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def deploy(self, champion_uri: str, *, protocols: tuple[str, ...], settings: ServingSettings) -> Deployed:
        """See :class:`components.targets.Deployer`."""
        from infra.cluster.seldon import deploy_on_cluster

        return deploy_on_cluster(champion_uri, protocols=protocols, settings=settings, namespace=self.namespace)


class ClusterTarget:
    """Katib and Seldon Core in the namespace the step runs in.

    Args:
        namespace: Where Experiments and SeldonDeployments go; by default the step pod's own namespace.
    """

    name = "cluster"

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or current_namespace()

    def experiment_namespace(self) -> str:
        """See :class:`components.targets.Target`."""
        return self.namespace

    def tuning_executor(self) -> KatibTuning:
        """See :class:`components.targets.Target`."""
        return KatibTuning()

    def deployer(self) -> SeldonDeployer:
        """See :class:`components.targets.Target`."""
        return SeldonDeployer(self.namespace)
