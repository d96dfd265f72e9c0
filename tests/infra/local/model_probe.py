"""A stand-in step that does what the workflow's steps do with libraries, and reports which ones it had to import
for that (a warm step server has imported them already).

``model DIR``: save and load a model, as train, register-and-promote and deploy do; ``tune``: what the tune step
imports to run the local Katib experiment.
"""

from __future__ import annotations

import json
import sys

#: Libraries whose import a step would pay for, every run.
HEAVY = ("mlflow", "sklearn", "skops", "pandas", "numpy", "scipy", "hyperopt", "components", "infra")


def _model(path: str) -> None:
    import mlflow.pyfunc
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import ElasticNet

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]})
    model = ElasticNet().fit(frame, [0.0, 1.0, 2.0])
    mlflow.sklearn.save_model(model, path, serialization_format="skops",
                              pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True))
    mlflow.pyfunc.load_model(path).predict(frame)


def _tune() -> None:
    import components.tune  # noqa: F401 - what the tune step imports
    import infra.local.target  # noqa: F401
    from infra.local.katib.suggest import make_suggester
    from kfops.base.recipes import WINE_QUALITY

    make_suggester(WINE_QUALITY.algorithm, {}, WINE_QUALITY.search_space, WINE_QUALITY.goal)


if __name__ == "__main__":
    from mlflow.utils import requirements_utils

    before = set(sys.modules)
    mapped = requirements_utils._MODULES_TO_PACKAGES is not None
    if sys.argv[1] == "model":
        _model(sys.argv[2])
    else:
        _tune()
    imported = sorted(name for name in set(sys.modules) - before if name.split(".")[0] in HEAVY)
    print(json.dumps({"imported": imported, "requirements_map_ready": mapped}))
