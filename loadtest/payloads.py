"""Request bodies built from real dataset rows, for every protocol the benchmark compares.

Rows are sampled once at start-up (with a fixed seed) from the cleaned wine-quality data, so every request carries
different real values, as production traffic would, and every target receives the same mix.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kfops.base.paths import BUNDLED_DATA


class LoadtestSettings(BaseSettings):
    """What the load tests send. Each field is read from ``KFOPS_<FIELD NAME>``."""

    model_config = SettingsConfigDict(env_prefix="KFOPS_", extra="ignore", use_attribute_docstrings=True)

    model_name: str = "kfops-winequality"
    """Registered model name in the Open Inference (v2) path, ``/v2/models/<name>/infer``."""

    loadtest_batch: int = Field(1, ge=1, le=100_000)
    """Rows per request: 1 for online traffic, more for batch scoring."""

    loadtest_data: Path = BUNDLED_DATA / "winequality-red.csv"
    """The dataset rows are sampled from: a ``;``-separated file in the layout of the bundled wine-quality data."""


SETTINGS = LoadtestSettings()
DATA = SETTINGS.loadtest_data
BATCH = SETTINGS.loadtest_batch
#: Distinct bodies prepared per scenario.
SAMPLES = 256


@lru_cache(maxsize=1)
def feature_rows() -> tuple[list[str], list[list[float]]]:
    """Column names (normalised like the clean step does) and the feature rows of the dataset."""
    import csv

    from kfops.base.recipes import normalize_name

    with DATA.open() as handle:
        reader = csv.reader(handle, delimiter=";")
        header = [normalize_name(name) for name in next(reader)]
        rows = [[float(value) for value in row] for row in reader if row]
    target = header.index("quality")
    columns = [name for i, name in enumerate(header) if i != target]
    return columns, [[value for i, value in enumerate(row) if i != target] for row in rows]


def batches(seed: int = 7) -> list[list[list[float]]]:
    """``SAMPLES`` batches of ``BATCH`` rows each."""
    _, rows = feature_rows()
    rng = random.Random(seed)  # noqa: S311 - sampling traffic, not cryptography
    return [[rng.choice(rows) for _ in range(BATCH)] for _ in range(SAMPLES)]


def user_bodies(bodies: Sequence[bytes], user: object) -> Iterator[bytes]:
    """An endless cycle over ``bodies``, starting at a different place for each simulated user."""
    start = id(user) % len(bodies)
    return itertools.cycle([*bodies[start:], *bodies[:start]])


def malformed_bodies(protocol: str, batch: Sequence[Sequence[float]]) -> tuple[bytes, ...]:
    """Malformed requests a careless client sends, built from a good ``batch``: each must be answered 4xx.

    Args:
        protocol: ``"v2"`` (Open Inference) or ``"v1"`` (Seldon).
        batch: Good rows the malformed requests are derived from.
    """
    import json

    row = [float(value) for value in batch[0]]
    if protocol == "v2":
        def tensor(data: Sequence[object], shape: list[int]) -> bytes:
            return json.dumps({"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP64",
                                           "data": list(data)}]}).encode()
        return (tensor([*row[:-1], "abc"], [1, len(row)]), tensor(row[:-1], [1, len(row)]),
                tensor([*row, 1.0], [1, len(row) + 1]), b'{"inputs": []}', b'{"inputs": [{"name"')
    if protocol == "v1":
        return (json.dumps({"data": {"ndarray": [[*row[:-1], "abc"]]}}).encode(),
                json.dumps({"data": {"ndarray": [row[:3]]}}).encode(), b'{"data": null}', b'{"data": {"ndarray": [[1')
    raise ValueError(f"no malformed requests defined for protocol {protocol!r}")


def open_inference_columns(rows: Sequence[Sequence[float]], columns: Sequence[str]) -> bytes:
    """Open Inference (v2) body with one 1-D FP64 input per column.

    What stock MLServer's MLflow runtime expects for a model whose signature names its columns.
    """
    import json

    return json.dumps({"inputs": [{"name": name, "shape": [len(rows)], "datatype": "FP64",
                                   "data": [float(row[i]) for row in rows]}
                                  for i, name in enumerate(columns)]}).encode()


def open_inference_grpc(rows: Sequence[Sequence[float]], model: str) -> Any:
    """Open Inference (v2) gRPC ``ModelInferRequest`` for ``model``: one 2-D FP64 tensor, as the HTTP body."""
    from mlserver.grpc import dataplane_pb2 as pb

    flat = [float(value) for row in rows for value in row]
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input-0", datatype="FP64", shape=[len(rows), len(rows[0]) if rows else 0],
        contents=pb.InferTensorContents(fp64_contents=flat))
    return pb.ModelInferRequest(model_name=model, inputs=[tensor])
