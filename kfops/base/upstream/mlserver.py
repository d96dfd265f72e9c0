"""MLServer, which serves the champion over the Open Inference (v2) protocol, here and on the cluster.

Read at tag 1.7.1 of SeldonIO/MLServer (byte-identical to the installed package).
"""

from __future__ import annotations

from typing import Final

from kfops.base.upstream import Fact, Source

REPO: Final = "SeldonIO/MLServer"
VERSION: Final = "1.7.1"


def _at(path: str, lines: str = "") -> Source:
    return Source(REPO, VERSION, path, lines)


#: With ``parallel_workers`` above 0 (1 by default), MLServer creates ``<cwd>/.metrics`` at start-up (the default of
#: MLSERVER_METRICS_DIR, fixed when mlserver.settings is imported); in a working dir it cannot write, it fails.
#: With 0, inference runs in the server process and no metrics dir is created.
METRICS_DIR: Final = Fact("<cwd>/.metrics", _at("mlserver/settings.py", "40,246"))
PARALLEL_WORKERS_DEFAULT: Final = Fact(1, _at("mlserver/settings.py"))
#: Adaptive batching merges requests before anyone validates them, and a failing batch fails every request in it.
BATCHING_MERGES_UNVALIDATED: Final = Fact(True, _at("mlserver/batching/requests.py", "152-182"))
#: Settings read from the environment: ``MLSERVER_`` for the server, ``MLSERVER_MODEL_`` for a model (also filling
#: fields a model-settings.json leaves out).
ENV_PREFIXES: Final = Fact(("MLSERVER_", "MLSERVER_MODEL_"), _at("mlserver/settings.py", "34"))
#: Without a model-settings.json, the model is built from MLSERVER_MODEL_* variables.
MODEL_FROM_ENV: Final = Fact(True, _at("mlserver/repository/repository.py", "54-63"))
#: Health endpoints.
HEALTH_PATHS: Final = Fact(("/v2/health/ready", "/v2/health/live"), _at("mlserver/rest/endpoints.py"))
