"""Every request is answered on its own merits, whatever else is in flight: real servers, many clients, good and
malformed requests interleaved (the reliability issue's reproduction, as a test)."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from infra.local.serving import LocalServing
from kfops.base.recipes import WINE_QUALITY
from kfops_serving.protocols import open_inference_v2, seldon_v1
from tests.serving.conftest import NAME
from tests.serving.test_local_serving import BAD_V1, BAD_V2
from trainer.data import load_frame, split

pytestmark = pytest.mark.integration

CLIENTS = 20
#: No request may wait longer than this (the runtime adds no batch window; a hang or a lost request trips it).
PATIENCE = 1.0


@pytest.fixture(scope="module")
def rows(versions: dict[str, str]) -> list[list[float]]:
    """Test rows of the dataset the served versions were trained on."""
    return split(load_frame(versions["dataset"]), WINE_QUALITY.target_column,
                 WINE_QUALITY.task).x_test.to_numpy().tolist()


def good_bodies(rows: list[list[float]], encode: object, count: int, seed: int) -> list[bytes]:
    """``count`` requests of 1 to 5 rows each."""
    rng = random.Random(seed)
    return [encode([rows[rng.randrange(len(rows))] for _ in range(rng.randint(1, 5))])  # type: ignore[operator]
            for _ in range(count)]


def post(url: str, body: bytes) -> tuple[int, dict]:
    response = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=PATIENCE)
    return response.status_code, response.json()


def answer(protocol: str, payload: dict) -> list[float]:
    return payload["outputs"][0]["data"] if protocol == "v2" else payload["data"]["ndarray"]


@pytest.mark.parametrize("protocol", ["v2", "v1"])
def test_interleaved_good_and_bad_requests_get_exactly_their_own_answers(serving: LocalServing, rows: list[list[float]],
                                                                         protocol: str) -> None:
    url = serving.endpoints(NAME)[protocol]
    encode = open_inference_v2 if protocol == "v2" else seldon_v1
    good = good_bodies(rows, encode, 200, seed=1 if protocol == "v2" else 2)
    bad = [body for _, body in (BAD_V2 if protocol == "v2" else BAD_V1)] * 4
    # What each good request gets alone, one at a time.
    alone = {}
    for body in good:
        status, payload = post(url, body)
        assert status == 200, payload
        alone[body] = answer(protocol, payload)
    mixed = [(body, True) for body in good] + [(body, False) for body in bad]
    random.Random(3).shuffle(mixed)
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda item: (item, post(url, item[0])), mixed))
    for (body, is_good), (status, payload) in results:
        if is_good:
            assert status == 200, (body, payload)
            assert answer(protocol, payload) == alone[body], "a good request's answer changed under load"
        else:
            assert 400 <= status < 500, (body, status, payload)


def test_a_request_without_inputs_next_to_good_ones_is_answered_at_once(serving: LocalServing,
                                                                        rows: list[list[float]]) -> None:
    url = serving.endpoints(NAME)["v2"]
    good = open_inference_v2(rows[:1])
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda body: post(url, body), [good, b'{"inputs": []}', good, good]))
    assert [status for status, _ in answers] == [200, 400, 200, 200]


def test_many_rows_and_many_requests_together_keep_their_row_order(serving: LocalServing, rows: list[list[float]],
                                                                   tmp_path: Path) -> None:
    # Each answer is the model's own predict for exactly that request's rows. A row alone and the same row among
    # 300 others may differ in the last bit (BLAS rounds a row by its neighbours), so each is compared with its own.
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    model = mlflow.pyfunc.load_model(serving.deployed()["model"]["path"])
    columns = model.metadata.get_input_schema().input_names()

    def own(batch: list[list[float]]) -> list[float]:
        return np.asarray(model.predict(pd.DataFrame(batch, columns=columns))).ravel().tolist()

    url = serving.endpoints(NAME)["v2"]
    big = open_inference_v2(rows[:300])
    singles = [open_inference_v2([row]) for row in rows[:40]]
    expected_big = own(rows[:300])
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda body: post(url, body), [big, *singles, big]))
    assert answer("v2", results[0][1]) == answer("v2", results[-1][1]) == expected_big
    for row_index, (status, payload) in enumerate(results[1:-1]):
        assert status == 200
        assert answer("v2", payload) == own([rows[row_index]]), "rows were mixed up between requests"
    (tmp_path / "answers.json").write_text(json.dumps(expected_big))
