"""What a classifier answers: its labels as text (v2 BYTES), its own ``predict_proba`` when asked (v2 requested output
``predict_proba``, v1 ``meta.tags.predict_proba``); numbers stay FP64 with the model's own bits."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kfops_serving.outputs import (
    PROBABILITIES,
    class_names,
    declares_labels,
    prediction_output,
    probabilities_output,
    requested,
    wants_probabilities,
)
from kfops_serving.scoring import load
from kfops_serving.validation import InvalidInput

pytestmark = pytest.mark.unit

MARKER = "ZZ-client-text-ZZ"
COLUMNS = ["a", "b", "c", "d"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])


def saved_classifier(tmp_path: Path, estimator: Any, labels: np.ndarray = SPECIES) -> Path:
    """A classifier of text labels (as the iris recipe's), saved as the trainer saves models: signature inferred."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(90, 4)), columns=COLUMNS)
    target = labels[(frame["a"] + frame["b"] > 0).astype(int) + (frame["c"] > 0.5).astype(int)]
    estimator.fit(frame, target)
    path = tmp_path / "classifier"
    mlflow.sklearn.save_model(estimator, path, serialization_format="cloudpickle",
                              signature=infer_signature(frame, estimator.predict(frame)),
                              pip_requirements=["scikit-learn"])
    return path


def test_a_text_output_signature_declares_labels_and_a_numeric_one_does_not() -> None:
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, DataType, Schema

    frame = pd.DataFrame(np.zeros((2, 4)), columns=COLUMNS)
    assert declares_labels(infer_signature(frame, np.array(["setosa", "virginica"], dtype=object)).outputs)
    assert declares_labels(Schema([ColSpec(DataType.string)]))
    assert not declares_labels(infer_signature(frame, np.array([1.5, 2.5])).outputs)
    assert not declares_labels(Schema([ColSpec(DataType.double)]))
    assert not declares_labels(infer_signature(frame, np.array([0, 1])).outputs)
    assert not declares_labels(None)


def test_numbers_stay_fp64_with_the_models_own_bits() -> None:
    predictions = np.random.default_rng(1).normal(size=50)
    output = prediction_output("output-0", predictions, labels=False)
    assert (output["name"], output["datatype"], output["shape"]) == ("output-0", "FP64", [50])
    sent = json.loads(json.dumps(output["data"]))
    assert struct.pack("<50d", *sent) == predictions.astype("<f8").tobytes()


def test_labels_are_bytes_of_the_models_own_labels() -> None:
    predictions = np.array(["setosa", "virginica", "versicolor"], dtype=object)
    output = prediction_output("output-0", predictions, labels=True)
    assert (output["datatype"], output["shape"]) == ("BYTES", [3])
    assert output["data"] == [b"setosa", b"virginica", b"versicolor"]
    assert output["parameters"] == {"content_type": "str"}
    assert prediction_output("output-0", predictions.astype(str), labels=False)["datatype"] == "BYTES", \
        "text predictions are never FP64, whatever the signature says"


def test_probabilities_are_fp64_rows_by_classes_with_the_class_order() -> None:
    probabilities = np.array([[0.1, 0.2, 0.7], [1.0, 0.0, 0.0]])
    output = probabilities_output(probabilities, ["setosa", "versicolor", "virginica"])
    assert (output["name"], output["datatype"], output["shape"]) == (PROBABILITIES, "FP64", [2, 3])
    assert output["data"] == [0.1, 0.2, 0.7, 1.0, 0.0, 0.0]
    assert json.loads(output["parameters"]["classes"]) == ["setosa", "versicolor", "virginica"]
    assert json.loads(probabilities_output(probabilities, [0, 1, 2])["parameters"]["classes"]) == [0, 1, 2]


def test_requested_outputs() -> None:
    assert requested([], "output-0", classifier=True) == ["output-0"]
    assert requested(["output-0"], "output-0", classifier=False) == ["output-0"]
    assert requested([PROBABILITIES], "output-0", classifier=True) == [PROBABILITIES]
    assert requested([PROBABILITIES, "output-0", PROBABILITIES], "output-0", classifier=True) == \
        [PROBABILITIES, "output-0"]


@pytest.mark.parametrize(("names", "classifier", "says"), [
    ([MARKER], True, "are neither"),
    (["output-0", MARKER], True, "1 of the requested outputs are neither"),
    ([MARKER], False, "has one output"),
    ([PROBABILITIES], False, "not a classifier"),
    (["output-0", PROBABILITIES], False, "not a classifier"),
])
def test_outputs_a_model_does_not_have_are_refused_without_echo(names: list[str], classifier: bool,
                                                                says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as refused:
        requested(names, "output-0", classifier)
    assert MARKER not in str(refused.value)


def test_v1_asks_for_probabilities_with_a_boolean_tag() -> None:
    assert not wants_probabilities(None)
    assert not wants_probabilities({"tags": {"other": 1}})
    assert wants_probabilities({"tags": {PROBABILITIES: True}})
    assert not wants_probabilities({"tags": {PROBABILITIES: False}})
    with pytest.raises(InvalidInput, match="true or false") as refused:
        wants_probabilities({"tags": {PROBABILITIES: MARKER}})
    assert MARKER not in str(refused.value)
    assert class_names([0, 1]) == ["0", "1"]


@pytest.mark.parametrize("family", ["forest", "logistic"])
def test_a_classifiers_probabilities_are_its_own_predict_proba_to_the_bit(tmp_path: Path, family: str) -> None:
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    estimator = {"forest": RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1),
                 "logistic": LogisticRegression()}[family]
    scorer = load(str(saved_classifier(tmp_path, estimator)))
    raw = scorer.model.get_raw_model()
    assert scorer.classes == ["setosa", "versicolor", "virginica"]
    rows = np.random.default_rng(8).normal(size=(300, 4))
    start = 0
    for size in (1, 2, 7, 33, 257):
        batch = rows[start:start + size]
        start += size
        own = raw.predict_proba(pd.DataFrame(batch.tolist(), columns=COLUMNS))
        got = scorer.probabilities(batch)
        assert got.dtype == np.float64
        assert got.shape == (size, 3)
        assert got.tobytes() == np.asarray(own, dtype=np.float64).tobytes()


def test_a_regressor_has_no_probabilities(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge
    from test_scoring import saved

    scorer = load(str(saved(tmp_path, Ridge(alpha=0.1))))
    assert scorer.classes is None
    with pytest.raises(InvalidInput, match="not a classifier"):
        scorer.probabilities(np.zeros((1, 3)))


def test_the_v2_runtime_answers_labels_as_bytes_and_probabilities_when_asked(tmp_path: Path) -> None:
    pytest.importorskip("mlserver")
    import asyncio

    import pandas as pd
    from mlserver.errors import InferenceError
    from mlserver.grpc.converters import ModelInferResponseConverter
    from mlserver.settings import ModelParameters, ModelSettings
    from mlserver.types import InferenceRequest
    from sklearn.ensemble import RandomForestClassifier

    from kfops_serving.mlserver_runtime import KfopsMLflowRuntime

    path = saved_classifier(tmp_path, RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1))
    runtime = KfopsMLflowRuntime(ModelSettings(name="iris", implementation=KfopsMLflowRuntime,
                                               parameters=ModelParameters(uri=str(path))))
    rows = np.random.default_rng(9).normal(size=(5, 4))

    def request(*outputs: str) -> InferenceRequest:
        return InferenceRequest.model_validate({
            "inputs": [{"name": "input-0", "shape": [5, 4], "datatype": "FP64", "data": rows.ravel().tolist()}],
            **({"outputs": [{"name": name} for name in outputs]} if outputs else {})})

    async def main() -> None:
        await runtime.load()
        raw = runtime._model.get_raw_model()
        frame = pd.DataFrame(rows, columns=COLUMNS)
        [declared] = (await runtime.metadata()).outputs or []
        assert declared.datatype == "BYTES"
        [labels] = (await runtime.predict(request())).outputs
        assert (labels.name, labels.datatype, labels.shape) == (declared.name, "BYTES", [5])
        expected = [str(label) for label in runtime._model.predict(frame)]
        assert [value.decode() for value in labels.data.root] == expected
        answer = await runtime.predict(request(PROBABILITIES, declared.name))
        assert [output.name for output in answer.outputs] == [PROBABILITIES, declared.name]
        proba = answer.outputs[0]
        assert (proba.datatype, proba.shape) == ("FP64", [5, 3])
        assert json.loads(proba.parameters.classes) == list(raw.classes_)  # type: ignore[union-attr]
        assert np.asarray(proba.data.root).tobytes() == raw.predict_proba(frame).ravel().tobytes()
        grpc = ModelInferResponseConverter.from_types(answer)  # what MLServer sends over gRPC
        assert list(grpc.outputs[0].contents.fp64_contents) == proba.data.root
        assert json.loads(grpc.outputs[0].parameters["classes"].string_param) == list(raw.classes_)
        assert [value.decode() for value in grpc.outputs[1].contents.bytes_contents] == expected
        with pytest.raises(InferenceError, match="are neither") as refused:
            await runtime.predict(request(MARKER))
        assert MARKER not in str(refused.value)

    asyncio.run(main())
