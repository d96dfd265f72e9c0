"""The v2 runtime's coalescer and request decoding, in process: validated requests scored together, each getting
its own rows back, a failure kept with the request that caused it; and the Open Inference forms a request may take."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from mlserver.types import InferenceRequest

from kfops_serving.mlserver_runtime import Coalescer, decode
from kfops_serving.validation import InvalidInput

pytestmark = pytest.mark.unit

COLUMNS = ["a", "b", "c"]


def test_requests_in_flight_together_share_model_calls_and_get_their_own_rows() -> None:
    seen: list[int] = []

    def predict(rows: np.ndarray) -> np.ndarray:
        seen.append(rows.shape[0])
        return rows.sum(axis=1)

    async def main() -> list[np.ndarray]:
        coalescer = Coalescer(predict)
        batches = [np.full((i % 3 + 1, 3), float(i)) for i in range(50)]
        return await asyncio.gather(*(coalescer.score(batch) for batch in batches))

    results = asyncio.run(main())
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, np.full(i % 3 + 1, 3.0 * i))
    assert len(seen) < 50, "nothing was coalesced"
    assert sum(seen) == sum(i % 3 + 1 for i in range(50))


def test_a_batch_that_breaks_the_model_fails_alone() -> None:
    def predict(rows: np.ndarray) -> np.ndarray:
        if (rows == 13.0).any():
            raise ValueError("the model cannot score 13")
        return rows[:, 0] * 2

    async def main() -> list[object]:
        coalescer = Coalescer(predict)
        batches = [np.full((1, 3), float(i)) for i in range(20)]
        return await asyncio.gather(*(coalescer.score(b) for b in batches), return_exceptions=True)

    results = asyncio.run(main())
    for i, result in enumerate(results):
        if i == 13:
            assert isinstance(result, ValueError)
        else:
            np.testing.assert_array_equal(result, [2.0 * i])  # type: ignore[arg-type]


def test_the_coalescer_caps_the_rows_of_one_call() -> None:
    seen: list[int] = []

    async def main() -> None:
        coalescer = Coalescer(lambda rows: seen.append(rows.shape[0]) or rows[:, 0], max_rows=10)
        await asyncio.gather(*(coalescer.score(np.zeros((4, 3))) for _ in range(10)))

    asyncio.run(main())
    assert max(seen) <= 10
    assert sum(seen) == 40


def request(inputs: list[dict]) -> InferenceRequest:
    return InferenceRequest.model_validate({"inputs": inputs})


def test_one_matrix_or_one_tensor_per_column() -> None:
    matrix = decode(request([{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]}]),
                    COLUMNS)
    columns = decode(request([{"name": name, "shape": [2], "datatype": "FP32", "data": values}
                              for name, values in (("c", [3, 6]), ("a", [1, 4]), ("b", [2, 5]))]), COLUMNS)
    nested = decode(request([{"name": "x", "shape": [2, 3], "datatype": "INT64", "data": [[1, 2, 3], [4, 5, 6]]}]),
                    COLUMNS)
    for decoded in (matrix, columns, nested):
        np.testing.assert_array_equal(decoded, [[1, 2, 3], [4, 5, 6]])
        assert decoded.dtype == np.float64


@pytest.mark.parametrize(("inputs", "says"), [
    ([], "no inputs"),
    ([{"name": "x", "shape": [-1, 3], "datatype": "FP64", "data": [1, 2, 3]}], "no -1"),
    ([{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}], "has 4 features per row"),
    ([{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2]}], "(3 values) but 2 values"),
    ([{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}], r"inputs\[0\] has BYTES"),
    ([{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, True, 3]}], "value 1 is a boolean, not a number"),
    ([{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, None, 3]}], "value 1 is null, not a number"),
    ([{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, "2.5", 3]}], "value 1 is text, not a number"),
    ([{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 10 ** 400, 3]}], "outside the range of FP64"),
    ([{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 1e39, 3]}], "outside the range of FP32"),
    ([{"name": "x", "shape": [1, 3], "datatype": "INT32", "data": [1, 2.5, 3]}], "not an integer, which INT32"),
    ([{"name": "x", "shape": [1, 3], "datatype": "UINT8", "data": [1, 256, 3]}], "outside the range of UINT8"),
    ([{"name": "x", "shape": [1, 3], "datatype": "UINT8", "data": [1, -1, 3]}], "outside the range of UINT8"),
    ([{"name": "x", "shape": [200_000, 3], "datatype": "FP64", "data": [1, 2, 3]}], "more than the 100000"),
    ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}], "each named once, as a, b, c"),
    ([{"name": n, "shape": [1 if n != "c" else 2], "datatype": "FP64", "data": [1] * (1 if n != "c" else 2)}
      for n in COLUMNS], "different row counts"),
])
def test_malformed_requests_are_refused_with_the_reason(inputs: list[dict], says: str) -> None:
    with pytest.raises(InvalidInput, match=says.replace("(", r"\(").replace(")", r"\)")):
        decode(request(inputs), COLUMNS)
