"""Run the workflow on a target and summarise the run: what ``kfops pipeline run`` and the e2e tests call.

``--local`` runs the pipeline function with KFP's local runner against the local platform
(:mod:`infra.local.runner`); ``--cluster`` submits the compiled workflow to the cluster's KFP API and follows it
(:mod:`infra.cluster.runner`). Both end in the same :class:`~components.summary.RunSummary`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from components.summary import SUMMARY_FILE, RunSummary
from kfops.base import defaults
from kfops.base.events import Event
from kfops.base.files import write_json


@dataclass(frozen=True)
class RunOptions:
    """The workflow's parameters for one run (defaults from :mod:`kfops.base.defaults`)."""

    recipe: str = defaults.RECIPE
    max_trials: int = defaults.MAX_TRIALS
    parallel_trials: int = defaults.PARALLEL_TRIALS
    max_failed_trials: int = defaults.MAX_FAILED_TRIALS
    algorithm: str = ""
    dataset_url: str = ""
    offline: bool = defaults.OFFLINE
    model_name: str = ""
    mlflow_experiment: str = defaults.MLFLOW_EXPERIMENT
    serving_protocol: str = defaults.SERVING_PROTOCOL

    def arguments(self) -> dict[str, Any]:
        """The pipeline's parameters."""
        return asdict(self)

    def check(self) -> None:
        """Refuse settings a step would refuse later, before anything runs.

        Raises:
            KfopsError: Unknown recipe or protocol, or tuning settings Katib would refuse.
        """
        from components.deploy import parse_protocols
        from components.tune import build_tuning_experiment

        parse_protocols(self.serving_protocol)
        # The tune step's own builder: it fits parallelism and allowed failures to the trial count as the run will.
        build_tuning_experiment(self.recipe, "s3://bucket/key", max_trials=self.max_trials,
                                parallel_trials=self.parallel_trials, max_failed_trials=self.max_failed_trials,
                                algorithm=self.algorithm, run_id="preflight")


def run_local(options: RunOptions, *, env: Mapping[str, str], run_dir: Path,
              on_event: Callable[[Event], None] = lambda _event: None) -> RunSummary:
    """Run the workflow with the KFP local runner against the local platform whose environment is ``env``.

    Raises:
        KfopsError: Bad options, or a step failed (its own message, naming the run log).
    """
    from infra.local.runner import collect_reports, run_pipeline
    from pipelines.workflow import kfops_pipeline

    options.check()
    began = time.monotonic()
    outputs, log = run_pipeline(kfops_pipeline, {**options.arguments(), "target": "local"}, env=env,
                                run_dir=run_dir, on_event=on_event)
    summary = RunSummary.from_outputs(outputs, target="local", location=str(run_dir), log=str(log),
                                      seconds=time.monotonic() - began, reports=collect_reports(run_dir))
    write_json(run_dir / SUMMARY_FILE, summary.as_dict())
    return summary


def run_cluster(options: RunOptions, settings: Any = None,
                on_event: Callable[[Event], None] = lambda _event: None, **runner: Any) -> RunSummary:
    """Submit the compiled workflow to the cluster's KFP API, follow it and read its outcome back.

    Args:
        options: The run's parameters.
        settings: A :class:`~infra.cluster.runner.ClusterRunSettings`; from ``KFOPS_*`` variables when omitted.
        on_event: Receives each step's start, end or failure.
        runner: Passed on to :func:`infra.cluster.runner.run_on_cluster` (``client``, ``collect_outcome``).

    Raises:
        KfopsError: Bad options, the run failed, or it left no outcome to read.
    """
    from infra.cluster.runner import ClusterRunSettings, run_on_cluster
    from pipelines.compile import compile_workflow

    options.check()
    return run_on_cluster(compile_workflow(), options.arguments(), settings or ClusterRunSettings(),
                          on_event=on_event, **runner)
