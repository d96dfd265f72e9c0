"""The iris recipe through the whole workflow, offline: scikit-learn's bundled copy, a classifier, served labels.

The run ingests the copy of iris that ships inside scikit-learn (``package://sklearn.datasets/data/iris.csv``, whose
first row is ``150,4,setosa,versicolor,virginica``) with the same ingest step as any URL, tunes a random forest on
accuracy, registers and promotes it, and serves it on both protocols. A classifier's answer is the class label: the
species name (BYTES over v2), and its own ``predict_proba`` when the request asks for it. The run is one
``kfops pipeline run`` of the real CLI, and the tests read its outcome from the summary file it names. Local target
only, on a platform of its own, so the session platform's champion is left alone.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.summary import RunSummary
from infra.local.platform import LocalPlatform
from kfops.base.recipes import IRIS
from tests.conftest import started_platform

pytestmark = pytest.mark.e2e

TRIALS = 3
MODEL = "kfops-iris"  # the CLI's default name for the recipe
SPECIES = {"setosa", "versicolor", "virginica"}


@pytest.fixture(scope="module")
def platform(target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    if target != "local":
        pytest.skip("runs on a local platform of its own (the kind job serves one model per stack)")
    # A state dir as deep as a real checkout's: the CLI's summary must still print its paths whole.
    state_dir = tmp_path_factory.mktemp("iris") / "home-of-someone" / "projects" / "kubeflow-mlops-on-one-machine" / \
        "worktrees" / "a-branch-with-a-descriptive-name" / ".kfops"
    # One wrapper worker: every roll-out loads the model in each worker, on 2 shared cores.
    yield from started_platform(tmp_path_factory, state_dir=state_dir, seldon_workers=1)


@pytest.fixture(scope="module")
def cli_run(platform: LocalPlatform) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """One run through the real CLI with its defaults (offline: the recipe's packaged copy; model ``kfops-iris``;
    both protocols), 80 columns wide: what it printed, and the links of its summary by name."""
    import os
    import sys

    kfops = Path(sys.executable).parent / "kfops"
    result = subprocess.run([str(kfops), "pipeline", "run", "--local", "--recipe", "iris", "--trials", str(TRIALS),
                             "--max-failed", "1", "--state-dir", str(platform.state_dir)],
                            env={**os.environ, "COLUMNS": "80"}, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, dict(re.findall(r"^([A-Z][\w ()-]+): +(\S+)", result.stdout, re.MULTILINE))


@pytest.fixture(scope="module")
def outcome(cli_run: tuple[subprocess.CompletedProcess[str], dict[str, str]]) -> RunSummary:
    """The run's outcome, as it left it in its directory (the file the summary names)."""
    _, links = cli_run
    return RunSummary.from_dict(json.loads(Path(links["Run summary"]).read_text()))


def test_the_run_ingested_scikit_learns_copy_and_says_so(outcome: RunSummary) -> None:
    from importlib.metadata import version

    log = Path(outcome.log).read_text()
    assert f"ingested {IRIS.offline_url}" in log
    assert f"scikit-learn {version('scikit-learn')}" in log, "the resolved copy and its version are recorded"
    assert "archive.ics.uci.edu" not in log


def test_a_classifier_was_tuned_registered_and_promoted_on_accuracy(outcome: RunSummary) -> None:
    assert outcome.tuning.trials == TRIALS
    assert outcome.tuning.succeeded == TRIALS
    assert outcome.tuning.objective_metric == "accuracy"
    assert set(outcome.tuning.best_params) == {"n_estimators", "max_depth"}
    assert {"accuracy", "f1", "log_loss"} == set(outcome.training.test_metrics)
    assert outcome.training.test_metrics["accuracy"] > 0.85
    assert outcome.promoted
    assert outcome.promotion["metric"] == "accuracy"


def _champion_and_rows(outcome: RunSummary) -> tuple[list[list[float]], list[str]]:
    import mlflow.pyfunc

    from trainer.data import load_frame, split

    parts = split(load_frame(outcome.training.dataset_uri), IRIS.target_column, IRIS.task)
    expected = mlflow.pyfunc.load_model(outcome.champion_uri).predict(parts.x_test)
    return parts.x_test.to_numpy().tolist(), [str(label) for label in expected]


def test_both_protocols_answer_the_champions_own_class_labels(outcome: RunSummary) -> None:
    import requests

    from kfops_serving.protocols import open_inference_v2, seldon_v1

    rows, expected = _champion_and_rows(outcome)
    assert set(expected) <= SPECIES, "the model answers species names, not class indices"
    assert len(set(expected)) == 3
    headers = {"Content-Type": "application/json"}
    v1 = requests.post(outcome.serving.endpoints["v1"], data=seldon_v1(rows), headers=headers, timeout=60)
    v2 = requests.post(outcome.serving.endpoints["v2"], data=open_inference_v2(rows), headers=headers, timeout=60)
    assert v1.status_code == 200, v1.text
    assert v2.status_code == 200, v2.text
    assert v1.json()["data"]["ndarray"] == expected
    assert v2.json()["outputs"][0]["data"] == expected


def test_the_summarys_example_requests_send_iris_rows_and_get_a_species(outcome: RunSummary,
                                                                       platform: LocalPlatform) -> None:
    from kfops.cli.pipeline import example_requests

    lines = example_requests(platform)
    curls = [line for line in lines if line.startswith("curl ")]
    assert {url for url in outcome.serving.endpoints.values() if not url.startswith("grpc://")} == \
        {shlex.split(line)[3] for line in curls}
    for line in curls:
        body = json.loads(shlex.split(line)[-1])
        sent = body["data"]["ndarray"][0] if "data" in body else body["inputs"][0]["data"]
        assert len(sent) == len(IRIS.column_names) - 1, f"not an iris row: {line}"
        answer = subprocess.run(["bash", "-c", line + " --silent --show-error --fail-with-body"], capture_output=True,
                                text=True, timeout=60, check=True).stdout
        labels = re.findall(r'"(setosa|versicolor|virginica)"', answer)
        assert len(labels) == 1, answer


def test_v2_declares_class_labels_as_bytes_over_http_and_grpc(outcome: RunSummary) -> None:
    import grpc
    import requests
    from mlserver.grpc import dataplane_pb2_grpc

    from kfops_serving.protocols import open_inference_v2, served_model_name
    from loadtest.payloads import open_inference_grpc

    rows, expected = _champion_and_rows(outcome)
    url = outcome.serving.endpoints["v2"]
    problems = []
    metadata = requests.get(url.removesuffix("/infer"), timeout=60).json()
    if [o.get("datatype") for o in metadata.get("outputs", [])] != ["BYTES"]:
        problems.append(f"metadata declares outputs {metadata.get('outputs')}")
    answer = requests.post(url, data=open_inference_v2(rows), headers={"Content-Type": "application/json"},
                           timeout=60).json()["outputs"][0]
    if answer["datatype"] != "BYTES":
        problems.append(f"HTTP answers datatype {answer['datatype']}")
    target = outcome.serving.endpoints["v2-grpc"].removeprefix("grpc://")
    try:
        with grpc.insecure_channel(target) as channel:
            [output] = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                open_inference_grpc(rows, served_model_name(outcome.training.model)), timeout=60).outputs
        got = [value.decode() for value in output.contents.bytes_contents]
        if (output.datatype, got) != ("BYTES", expected):
            problems.append(f"gRPC answers {output.datatype} {got[:3]}...")
    except grpc.RpcError as error:
        problems.append(f"gRPC fails: {error.code()} {error.details()}")
    assert not problems, problems


def _own_probabilities(outcome: RunSummary, rows: list[list[float]]) -> tuple[list[float], list[str]]:
    """The champion's own ``predict_proba`` for ``rows`` (flat, row-major) and its classes."""
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(outcome.champion_uri)
    columns = model.metadata.get_input_schema().input_names()
    raw = model.get_raw_model()
    return raw.predict_proba(pd.DataFrame(rows, columns=columns)).ravel().tolist(), [str(c) for c in raw.classes_]


def test_probabilities_when_asked_are_the_champions_own_predict_proba_on_every_protocol(outcome: RunSummary) -> None:
    import grpc
    import requests
    from mlserver.grpc import dataplane_pb2 as pb
    from mlserver.grpc import dataplane_pb2_grpc

    from kfops_serving.protocols import served_model_name
    from loadtest.payloads import open_inference_grpc

    rows, labels = _champion_and_rows(outcome)
    expected, classes = _own_probabilities(outcome, rows)
    assert sorted(classes) == sorted(SPECIES)
    flat = [value for row in rows for value in row]
    v2 = requests.post(outcome.serving.endpoints["v2"], timeout=60, json={
        "inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": flat}],
        "outputs": [{"name": "predict_proba"}, {"name": "output-0"}]})
    assert v2.status_code == 200, v2.text
    proba, predicted = v2.json()["outputs"]
    assert (proba["name"], proba["datatype"], proba["shape"]) == ("predict_proba", "FP64", [len(rows), 3])
    assert proba["data"] == expected, "bit for bit: JSON carries a double's shortest exact form"
    assert json.loads(proba["parameters"]["classes"]) == classes
    assert (predicted["datatype"], predicted["data"]) == ("BYTES", labels)

    request = open_inference_grpc(rows, served_model_name(outcome.training.model))
    request.outputs.append(pb.ModelInferRequest.InferRequestedOutputTensor(name="predict_proba"))
    with grpc.insecure_channel(outcome.serving.endpoints["v2-grpc"].removeprefix("grpc://")) as channel:
        [output] = dataplane_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60).outputs
    assert (output.name, output.datatype, list(output.shape)) == ("predict_proba", "FP64", [len(rows), 3])
    assert list(output.contents.fp64_contents) == expected
    assert json.loads(output.parameters["classes"].string_param) == classes

    v1 = requests.post(outcome.serving.endpoints["v1"], timeout=60,
                       json={"meta": {"tags": {"predict_proba": True}}, "data": {"ndarray": rows}})
    assert v1.status_code == 200, v1.text
    assert v1.json()["data"]["names"] == classes
    assert [value for row in v1.json()["data"]["ndarray"] for value in row] == expected


def test_asking_for_an_output_the_classifier_does_not_have_is_a_400(outcome: RunSummary) -> None:
    import requests

    rows, _ = _champion_and_rows(outcome)
    marker = "ZZ-client-text-ZZ"
    answer = requests.post(outcome.serving.endpoints["v2"], timeout=60, json={
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": rows[0]}],
        "outputs": [{"name": marker}]})
    assert answer.status_code == 400, answer.text
    assert "predict_proba" in answer.text
    assert marker not in answer.text


def test_the_cli_prints_every_url_and_path_whole(cli_run: tuple[subprocess.CompletedProcess[str], dict[str, str]],
                                                 outcome: RunSummary) -> None:
    _, links = cli_run
    assert re.fullmatch(rf"http://127\.0\.0\.1:\d+/v2/models/{MODEL}/infer", links["Endpoint (v2)"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1\.0/predictions", links["Endpoint (v1)"])
    assert len(links["Run log"]) > 120, "the state dir is as deep as intended"
    for name in ("Run log", "Tuning report", "Promotion report", "Run summary"):
        assert Path(links[name]).is_file(), f"{name}: {links[name]!r} is not a whole path"
    assert Path(links["Run"]).is_dir()
    assert links["Champion"] == f"models:/{MODEL}@champion"
    assert (outcome.location, outcome.log) == (links["Run"], links["Run log"])
    assert outcome.serving.endpoints["v2"] == links["Endpoint (v2)"]
