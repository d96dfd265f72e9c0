"""How the e2e suites drive the workflow: on the local platform here, on a kind cluster in nightly CI.

Both go through the product's own runners (:mod:`pipelines.run`) and return the same
:class:`~components.summary.RunSummary`, so every assertion is written once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from components.summary import RunSummary
from pipelines.run import RunOptions, run_cluster, run_local
from tests.kind.forwards import local_endpoint
from tests.kind.harness import KindEnvironment


class WorkflowDriver(Protocol):
    """Runs the workflow with pipeline parameters and returns its summary."""

    def run(self, **parameters: Any) -> RunSummary:
        """Run the workflow once."""
        ...


class LocalDriver:
    """The embedded default: KFP's local runner against ``kfops local``."""

    def __init__(self, env: Mapping[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.runs = 0

    def run(self, **parameters: Any) -> RunSummary:
        """See :class:`WorkflowDriver`."""
        self.runs += 1
        return run_local(RunOptions(**parameters), env=self.env, run_dir=self.workdir / f"run-{self.runs}")


class KindDriver:
    """A kind cluster set up by ``pulumi up --stack kind``: the run goes through its KFP API, Katib and Seldon Core.

    Settings (KFP host, namespace) come from the ``KFOPS_*`` variables the kind fixture sets; MLflow from
    ``MLFLOW_TRACKING_URI``. The run reports in-cluster endpoints; the summary handed to the tests has them on the
    port-forwards to the champion's Services instead.
    """

    def __init__(self, environment: KindEnvironment) -> None:
        self.environment = environment

    def run(self, **parameters: Any) -> RunSummary:
        """See :class:`WorkflowDriver`."""
        summary = run_cluster(RunOptions(**parameters))
        local = self.environment.open_serving()
        endpoints = {protocol: local_endpoint(url, local[protocol])
                     for protocol, url in summary.serving.endpoints.items()}
        return dataclasses.replace(summary, serving=dataclasses.replace(summary.serving, endpoints=endpoints))
