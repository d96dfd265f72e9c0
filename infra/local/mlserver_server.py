"""MLServer's own command line, started with what loading a model imports already imported.

The local target starts MLServer at ``kfops local up``, before any model exists, so that the first deploy only loads
the champion through MLServer's model repository API. Inference runs in the server process (``parallel_workers:
0``), so a model load imports MLflow, scikit-learn and pandas into it: done here, while ``up`` waits for the other
services anyway, instead of during the workflow's deploy step. Nothing else differs from ``mlserver start``.
"""

from __future__ import annotations

import importlib
import sys

from kfops_serving.quiet import mlserver_import_warnings_silenced
from kfops_serving.scoring import MODEL_LOAD_IMPORTS

#: Imported before MLServer starts: the kfops runtime and what loading an MLflow scikit-learn model imports.
PRELOADED = ("kfops_serving.mlserver_runtime", *MODEL_LOAD_IMPORTS)


def main(argv: list[str] | None = None) -> None:
    """Import :data:`PRELOADED`, then run ``mlserver`` with ``argv`` (``start <repository>``)."""
    with mlserver_import_warnings_silenced():
        for module in PRELOADED:
            importlib.import_module(module)
        from mlserver.cli.main import main as mlserver_main

    sys.argv = ["mlserver", *(sys.argv[1:] if argv is None else argv)]
    mlserver_main()


if __name__ == "__main__":
    main()
