"""The options of a run are checked before anything runs, with the rules the tune step applies."""

from __future__ import annotations

import pytest

from kfops.base import defaults
from kfops.base.errors import KfopsError
from pipelines.run import RunOptions

pytestmark = pytest.mark.unit


def test_a_short_run_with_the_default_parallelism_and_failures_is_accepted() -> None:
    # --trials 2 with the defaults (2 parallel, 3 allowed failures): the tune step fits them to the trial count.
    assert defaults.MAX_FAILED_TRIALS > 2
    RunOptions(max_trials=2).check()
    RunOptions(max_trials=1, parallel_trials=4).check()


@pytest.mark.parametrize(("options", "says"), [
    ({"max_trials": 0}, "invalid trial counts"),
    ({"serving_protocol": "v3"}, "unknown serving protocol"),
    ({"algorithm": "tpe", "recipe": "nope"}, "nope"),
    ({"algorithm": "bayesianoptimization"}, "needs a minimum above 0"),
])
def test_options_a_step_would_refuse_are_refused_first(options: dict, says: str) -> None:
    with pytest.raises(KfopsError, match=says):
        RunOptions(**options).check()
