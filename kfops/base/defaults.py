"""Defaults of a workflow run, defined once.

The pipeline's parameters (:mod:`pipelines.workflow`), the ``kfops pipeline run`` options and ``make demo`` all take
their defaults from here, so a run started any of these ways does the same thing.
"""

from __future__ import annotations

from typing import Final

#: Dataset recipe (see :mod:`kfops.base.recipes`).
RECIPE: Final = "winequality"
#: Katib ``maxTrialCount``.
MAX_TRIALS: Final = 8
#: Katib ``parallelTrialCount``: two trials at a time suits a two-core machine and a kind node alike.
PARALLEL_TRIALS: Final = 2
#: Katib ``maxFailedTrialCount``.
MAX_FAILED_TRIALS: Final = 3
#: Protocols the champion is served on: ``v2`` (Open Inference, MLServer), ``v1`` (Seldon, seldon-core) or ``both``.
SERVING_PROTOCOL: Final = "both"
#: How long the tune step waits for the Experiment.
TUNING_TIMEOUT_MINUTES: Final = 60
#: MLflow experiment of the training runs.
MLFLOW_EXPERIMENT: Final = "kfops"
#: Ingest a recipe's bundled copy of its dataset when one ships (it is in the project image too), else its URL.
OFFLINE: Final = True
