"""Which target executes the workflow's specs: chosen here, and only here.

The ``cluster`` target hands the Katib Experiment to Katib and the SeldonDeployments to Seldon Core
(:mod:`infra.cluster.target`); the ``local`` target runs the same specs on this machine (:mod:`infra.local.target`).
The steps receive the target's name as the pipeline parameter ``target``; ``kfops pipeline run --local`` and
``--cluster`` pick the runner of the same name (:mod:`pipelines.run`).
"""

from __future__ import annotations

from components.targets import Target
from kfops.base.errors import KfopsError

#: Names of the targets.
TARGETS = ("cluster", "local")


def select(name: str) -> Target:
    """The target called ``name``.

    Raises:
        KfopsError: No such target.
    """
    if name == "cluster":
        from infra.cluster.target import ClusterTarget

        return ClusterTarget()
    if name == "local":
        from infra.local.target import LocalTarget

        return LocalTarget()
    raise KfopsError(f"unknown target {name!r}", f"choose one of: {', '.join(TARGETS)}")
