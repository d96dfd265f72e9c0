"""Every container the cluster would run, started here with exactly what its rendered object says.

Command, args, env (Secret and ConfigMap references resolved from what the Pulumi program renders, in-cluster URLs
mapped to the local platform's services) and working dir come from the rendered objects; the user is the one the
cluster would run it as (8888 for Seldon's model pods, the image's 1000 otherwise) and the image's working dir is
read-only to it (:mod:`tests.contract.sandbox`). Each must become ready or exit 0. The only liberty taken: ports
are free ports of this machine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from components.deploy import ServingSettings, endpoint_url, seldon_deployment
from components.store import store_dataset
from infra.cluster.meta import in_cluster_url
from infra.cluster.mock_runtime import Rendering, run_program
from infra.cluster.tracking import SERVER_NAME, SERVER_PORT
from infra.local.platform import LocalPlatform
from infra.local.processes import free_port
from kfops.base.contract import BUCKETS
from kfops.base.recipes import WINE_QUALITY
from kfops.base.storage import s3_client
from kfops.base.upstream import katib, kfp
from kfops_serving.protocols import open_inference_v2, seldon_v1
from tests.contract.cluster import dockerfile_command, resolve_env, seldon_env, seldon_node
from tests.contract.sandbox import IMAGE_USER, SELDON_MODEL_USER, Container, Identity, running, tail
from tests.datasets import cleaned_wine
from trainer.data import load_frame, split
from trainer.train import train_and_register

pytestmark = pytest.mark.integration

NAMESPACE = "kubeflow"
MODEL_NAME = "kfops-winequality"
STARTUP_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def rendering(local_platform: LocalPlatform) -> Rendering:
    """The kind stack, rendered with the local platform's S3 credentials (as `pulumi up --stack kind` would)."""
    env = local_platform.env()
    config = {"kfops:installPlatform": "true", "kfops:namespace": NAMESPACE,
              "kfops:s3AccessKey": env["AWS_ACCESS_KEY_ID"], "kfops:s3SecretKey": env["AWS_SECRET_ACCESS_KEY"]}
    return run_program(config, ("kfops:s3AccessKey", "kfops:s3SecretKey"))


@pytest.fixture(scope="module")
def urls(local_platform: LocalPlatform) -> dict[str, str]:
    """In-cluster URL -> the local service standing for it."""
    env = local_platform.env()
    return {kfp.OBJECT_STORE.url(): env["AWS_ENDPOINT_URL_S3"],
            in_cluster_url(SERVER_NAME, NAMESPACE, SERVER_PORT): env["MLFLOW_TRACKING_URI"]}


@pytest.fixture(scope="module")
def dataset(local_platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> str:
    return store_dataset(cleaned_wine(tmp_path_factory.mktemp("data")), "datasets", "tests/contract")


@pytest.fixture(scope="module")
def model(dataset: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A registered version, and its files where Seldon's storage initializer would put them (readable by all)."""
    import mlflow

    registered = train_and_register(WINE_QUALITY, dataset, {"alpha": "0.001", "l1_ratio": "0.5"},
                                    model_name=MODEL_NAME, experiment="contract-tests")
    client = mlflow.MlflowClient()
    source = client.get_model_version_download_uri(MODEL_NAME, registered.version)
    directory = Path(mlflow.artifacts.download_artifacts(artifact_uri=source,
                                                         dst_path=str(tmp_path_factory.mktemp("initializer"))))
    subprocess.run(["chmod", "-R", "a+rX", str(directory)], check=True)
    rows = split(load_frame(dataset), WINE_QUALITY.target_column, WINE_QUALITY.task).x_test.head(5)
    expected = mlflow.pyfunc.load_model(str(directory)).predict(rows)
    return {"version": registered.version, "source": source, "dir": directory,
            "rows": rows.to_numpy().tolist(), "expected": np.asarray(expected, dtype=float).ravel()}


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = STARTUP_TIMEOUT) -> None:
    """Until ``url`` answers 200; fail with the container's output if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the container exited with {process.returncode} before it was ready:\n{tail(log)}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"not ready after {timeout:.0f} s:\n{tail(log)}")


def run_until_exit(container: Container, log: Path, timeout: float = 300) -> int:
    with running(container, log) as process:
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"did not exit within {timeout:.0f} s:\n{tail(log)}")


def serving_manifest(protocol: str, model: dict[str, Any]) -> dict[str, Any]:
    return seldon_deployment(protocol, model_name=MODEL_NAME, version=model["version"], model_uri=model["source"],
                             namespace=NAMESPACE, settings=ServingSettings())


def model_user(manifest: dict[str, Any]) -> Identity:
    """Seldon runs a model pod as 8888 unless its pod spec has a securityContext of its own."""
    pod = manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    assert "securityContext" not in pod, "a pod securityContext would change who the operator runs it as"
    return SELDON_MODEL_USER


def test_the_v2_model_container_serves_as_seldons_user(model: dict[str, Any], tmp_path: Path) -> None:
    manifest = serving_manifest("v2", model)
    _, container = seldon_node(manifest)
    env, port = seldon_env(manifest)
    process_spec = Container(argv=[*container["command"], *container.get("args", [])], env=env,
                             user=model_user(manifest), workdir=container.get("workingDir"),
                             image_workdir=dockerfile_command("trainer/Dockerfile")[1],
                             read_only={"/mnt/models": model["dir"]})
    log = tmp_path / "v2.log"
    with running(process_spec, log) as process:
        base = f"http://127.0.0.1:{port}"
        for path in (f"{base}/v2/health/ready", f"{base}/v2/health/live"):  # the operator's probes
            wait_ready(process, path, log)
        # The path the deploy step reports (and Seldon's executor forwards as is) must find the model.
        path = endpoint_url("v2", MODEL_NAME, ServingSettings(), NAMESPACE).split(":8000", 1)[1]
        answer = requests.post(base + path, data=open_inference_v2(model["rows"]),
                               headers={"Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        np.testing.assert_allclose(np.asarray(body["outputs"][0]["data"], dtype=float), model["expected"])
        assert body["model_version"] == model["version"]


def test_the_v1_model_container_serves_as_seldons_user(model: dict[str, Any], tmp_path: Path) -> None:
    manifest = serving_manifest("v1", model)
    _, container = seldon_node(manifest)
    env, port = seldon_env(manifest)
    command, workdir = dockerfile_command("serving/Dockerfile")
    from kfops.base.paths import REPO_ROOT

    process_spec = Container(argv=container.get("command", command), env=env, user=model_user(manifest),
                             workdir=container.get("workingDir"), image_workdir=workdir,
                             read_only={"/mnt/models": model["dir"]}, venv=REPO_ROOT / ".venv-seldon")
    log = tmp_path / "v1.log"
    with running(process_spec, log) as process:
        base = f"http://127.0.0.1:{port}"
        wait_ready(process, f"{base}/health/status", log)
        answer = requests.post(f"{base}/api/v1.0/predictions", data=seldon_v1(model["rows"]),
                               headers={"Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        np.testing.assert_allclose(np.asarray(body["data"]["ndarray"], dtype=float).ravel(), model["expected"])
        assert body["meta"]["tags"] == {"model": MODEL_NAME, "model_version": model["version"]}


def test_a_katib_trial_runs_and_reports_every_metric(rendering: Rendering, urls: dict[str, str], dataset: str,
                                                     tmp_path: Path) -> None:
    from components.tune import build_tuning_experiment

    experiment = build_tuning_experiment("winequality", dataset, max_trials=2, parallel_trials=1,
                                         max_failed_trials=0, namespace=NAMESPACE)
    template = experiment["spec"]["trialTemplate"]
    [container] = template["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert container["name"] == template["primaryContainerName"]
    values = {"alpha": "0.01", "l1_ratio": "0.3"}
    command = [re.sub(r"\$\{trialParameters\.(\w+)\}", lambda m: values[m.group(1)], part)
               for part in [*container["command"], *container.get("args", [])]]
    # Katib's StdOut collector runs the primary container as `sh -c "<command and args joined by spaces> 1>log"`.
    wrapped = ["sh", "-c", " ".join(command) + " 1>/var/log/katib/metrics.log 2>&1"]
    logs = tmp_path / "katib"
    spec = Container(argv=wrapped, env=resolve_env(container["env"], rendering, urls), user=IMAGE_USER,
                     workdir=container.get("workingDir"), image_workdir=dockerfile_command("trainer/Dockerfile")[1],
                     volumes={"/var/log/katib": logs})
    code = run_until_exit(spec, tmp_path / "trial.log")
    output = (logs / "metrics.log").read_text()
    assert code == 0, output
    # Katib's default StdOut filter: group 1 the name, group 2 the value (empty for "nan").
    found = {match[0]: match[1] for match in re.findall(katib.STDOUT_FILTER.value, output)}
    for metric in (experiment["spec"]["objective"]["objectiveMetricName"],
                   *experiment["spec"]["objective"]["additionalMetricNames"]):
        assert found.get(metric), f"the collector would record no value for {metric}:\n{output}"
        assert np.isfinite(float(found[metric])), metric


def test_the_mlflow_server_starts_as_its_pod_user_and_answers_in_cluster_clients(rendering: Rendering,
                                                                               urls: dict[str, str],
                                                                               tmp_path: Path) -> None:
    deployment = rendering.find("Deployment", SERVER_NAME)
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    context = pod["securityContext"]
    user = Identity(context["runAsUser"], context["runAsGroup"], "/home/kfops", creates_home=True)
    port = free_port()
    argv = [str(port) if part == str(SERVER_PORT) else part for part in container["command"]]
    volumes = {mount["mountPath"]: tmp_path / mount["name"] for mount in container["volumeMounts"]}
    spec = Container(argv=argv, env=resolve_env(container["env"], rendering, urls), user=user,
                     workdir=container.get("workingDir"), image_workdir=dockerfile_command("trainer/Dockerfile")[1],
                     volumes=volumes)
    log = tmp_path / "mlflow.log"
    with running(spec, log) as process:
        wait_ready(process, f"http://127.0.0.1:{port}{container['readinessProbe']['httpGet']['path']}", log)
        # Pods call it by its Service name: MLflow refuses Host headers it was not told to allow.
        host = in_cluster_url(SERVER_NAME, NAMESPACE, SERVER_PORT).removeprefix("http://")
        api = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        answer = requests.get(api, headers={"Host": host}, timeout=10)
        assert answer.status_code == 200, answer.text
        # The nightly job and users reach it through a port-forward: Host 127.0.0.1:<local port>.
        assert requests.get(api, timeout=10).status_code == 200
        # A DNS-rebinding page's Host is refused.
        assert requests.get(api, headers={"Host": "localhost.evil.example"}, timeout=10).status_code == 403


def test_the_bucket_job_creates_the_buckets(rendering: Rendering, urls: dict[str, str], tmp_path: Path) -> None:
    job = rendering.find("Job", "kfops-create-buckets")
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = resolve_env(container["env"], rendering, urls)
    assert env["KFOPS_BUCKETS"].split(",") == list(BUCKETS)
    fresh = f"contract-{uuid.uuid4().hex[:8]}"
    env["KFOPS_BUCKETS"] += f",{fresh}"  # the platform already has the workflow's buckets: prove it creates one
    spec = Container(argv=container["command"], env=env, user=IMAGE_USER, workdir=container.get("workingDir"),
                     image_workdir=dockerfile_command("trainer/Dockerfile")[1])
    log = tmp_path / "job.log"
    assert run_until_exit(spec, log) == 0, tail(log)
    names = {bucket["Name"] for bucket in s3_client().list_buckets()["Buckets"]}
    assert {*BUCKETS, fresh} <= names
    s3_client().delete_bucket(Bucket=fresh)


@pytest.fixture
def step_scratch(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "s3"
    shutil.rmtree(tmp_path / "s3", ignore_errors=True)


def _executor(rendering: Rendering, step: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The compiled step's container and its Kubernetes config, from the PipelineVersion the program deploys."""
    version = next(obj for obj in rendering.manifests() if obj["kind"] == "PipelineVersion")
    spec = version["spec"]["pipelineSpec"]
    platform = version["spec"]["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    name = f"exec-{step}"
    return spec["deploymentSpec"]["executors"][name]["container"], platform[name]


def _step_env(config: dict[str, Any], rendering: Rendering, urls: dict[str, str]) -> dict[str, str]:
    """What KFP's driver puts in the step's env from its Kubernetes config (secretAsEnv, configMapAsEnv)."""
    env: list[dict[str, Any]] = []
    for secret in config.get("secretAsEnv", []):
        env += [{"name": m["envVar"], "valueFrom": {"secretKeyRef": {"name": secret["secretName"],
                                                                     "key": m["secretKey"]}}}
                for m in secret["keyToEnv"]]
    for config_map in config.get("configMapAsEnv", []):
        if config_map.get("optional"):
            continue
        env += [{"name": m["envVar"], "valueFrom": {"configMapKeyRef": {"name": config_map["configMapName"],
                                                                        "key": m["configMapKey"]}}}
                for m in config_map["keyToEnv"]]
    return resolve_env(env, rendering, urls)


def run_step(rendering: Rendering, urls: dict[str, str], step: str, executor_input: dict[str, Any],
             scratch: Path, tmp_path: Path) -> dict[str, Any]:
    """Run a compiled step's command as KFP's launcher would (executor input in ``{{$}}``, KFP's scratch emptyDirs)
    and return the executor output it wrote."""
    container, config = _executor(rendering, step)
    outputs = tmp_path / f"{step}-outputs"
    executor_input["outputs"]["outputFile"] = "/tmp/kfp_outputs/output_metadata.json"
    args = [json.dumps(executor_input) if part == "{{$}}" else part for part in container["args"]]
    # KFP 2.17 mounts emptyDirs at /gcs, /s3, /minio, /.local, /.cache and /.config of every step
    # (backend/src/v2/compiler/argocompiler/container.go).
    volumes = {"/s3": scratch, "/tmp/kfp_outputs": outputs,
               **{path: tmp_path / f"{step}-scratch{path.replace('/', '-')}"
                  for path in ("/gcs", "/minio", "/.local", "/.cache", "/.config")}}
    spec = Container(argv=[*container["command"], *args], env=_step_env(config, rendering, urls), user=IMAGE_USER,
                     image_workdir=dockerfile_command("trainer/Dockerfile")[1], volumes=volumes)
    log = tmp_path / f"{step}.log"
    assert run_until_exit(spec, log) == 0, tail(log)
    return json.loads((outputs / "output_metadata.json").read_text())


def _artifact(name: str, schema: str, uri: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"artifacts": [{"name": name, "type": {"schemaTitle": schema}, "uri": uri, "metadata": metadata or {}}]}


def katib_result(path: Path) -> None:
    """What the tune step writes after Katib finished: the Experiment with its status, and its Trials' records."""
    from infra.cluster.katib import trial_record
    from tests.fakes.kube import katib_trial

    def record(name: str, alpha: str, rmse: float) -> dict[str, Any]:
        metric = {"name": "rmse", "latest": str(rmse), "min": str(rmse), "max": str(rmse)}
        return {"name": name, "condition": "Succeeded", "reason": "TrialSucceeded",
                "parameterAssignments": [{"name": "alpha", "value": alpha}, {"name": "l1_ratio", "value": "0.5"}],
                "observation": {"metrics": [metric]}}

    trials = [record("t1", "0.5", 0.8), record("t2", "0.01", 0.66)]
    status = {"conditions": [{"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached"}],
              "trials": 2, "trialsSucceeded": 2,
              "currentOptimalTrial": {"bestTrialName": "t2", "parameterAssignments": trials[1]["parameterAssignments"],
                                      "observation": trials[1]["observation"]}}
    experiment = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                  "metadata": {"name": "kfops-winequality-abc", "namespace": NAMESPACE},
                  "spec": {"objective": {"type": "minimize", "objectiveMetricName": "rmse"}}, "status": status}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"executor": "katib", "experiment": experiment,
                                "trials": [trial_record(katib_trial("kfops-winequality-abc", NAMESPACE, t))
                                           for t in trials]}))
    path.parent.chmod(0o777)


def test_the_data_and_training_steps_run_in_their_containers(rendering: Rendering, urls: dict[str, str],
                                                             step_scratch: Path, tmp_path: Path) -> None:
    """ingest -> clean -> store -> best-params -> train -> register-and-promote, with KFP's launcher's part done by
    the test:
    artifacts live under the /s3 scratch dir at the path KFP derives from their URI."""
    run = f"s3://mlpipeline/v2/artifacts/contract/{uuid.uuid4().hex[:8]}"
    raw, cleaned, trained = f"{run}/ingest/raw", f"{run}/clean/cleaned", f"{run}/train/model"
    run_step(rendering, urls, "ingest", {
        "inputs": {"parameterValues": {"recipe": "winequality", "dataset_url": "", "offline": True}},
        "outputs": {"artifacts": {"raw": _artifact("raw", "system.Dataset", raw)}}}, step_scratch, tmp_path)
    run_step(rendering, urls, "clean", {
        "inputs": {"parameterValues": {"recipe": "winequality"},
                   "artifacts": {"raw": _artifact("raw", "system.Dataset", raw)}},
        "outputs": {"artifacts": {"cleaned": _artifact("cleaned", "system.Dataset", cleaned),
                                  "stats": _artifact("stats", "system.Metrics", f"{run}/clean/stats")}}},
        step_scratch, tmp_path)
    stored = run_step(rendering, urls, "store", {
        "inputs": {"parameterValues": {"recipe": "winequality", "bucket": "datasets"},
                   "artifacts": {"cleaned": _artifact("cleaned", "system.Dataset", cleaned)}},
        "outputs": {"parameters": {"Output": {"outputFile": "/tmp/kfp_outputs/Output"}}}}, step_scratch, tmp_path)
    dataset_uri = stored["parameterValues"]["Output"]
    assert dataset_uri.startswith("s3://datasets/")
    # tune on a cluster talks to Katib (its cluster branch is tested against a fake API); its output artifact, in
    # Katib's status shape, is what the launcher hands best-params.
    experiment_uri = f"{run}/tune/experiment"
    katib_result(step_scratch / experiment_uri.removeprefix("s3://"))
    best = run_step(rendering, urls, "best-params", {
        "inputs": {"parameterValues": {"recipe": "winequality"},
                   "artifacts": {"experiment": _artifact("experiment", "system.Artifact", experiment_uri)}},
        "outputs": {"parameters": {name: {"outputFile": f"/tmp/kfp_outputs/{name}"}
                                   for name in ("params", "objective", "tuning")}}}, step_scratch, tmp_path)
    assert best["parameterValues"]["params"] == {"alpha": "0.01", "l1_ratio": "0.5"}
    trained_out = run_step(rendering, urls, "train", {
        "inputs": {"parameterValues": {"recipe": "winequality", "dataset_uri": dataset_uri,
                                       "params": best["parameterValues"]["params"], "model_name": MODEL_NAME,
                                       "mlflow_experiment": "contract-steps", "run_id": "contract"}},
        "outputs": {"parameters": {"Output": {"outputFile": "/tmp/kfp_outputs/Output"}},
                    "artifacts": {"model": _artifact("model", "system.Model", trained)}}}, step_scratch, tmp_path)
    model_metadata = trained_out["artifacts"]["model"]["artifacts"][0]["metadata"]
    promoted = run_step(rendering, urls, "register-and-promote", {
        "inputs": {"parameterValues": {"recipe": "winequality", "dataset_uri": dataset_uri},
                   "artifacts": {"model": _artifact("model", "system.Model", trained, model_metadata)}},
        "outputs": {"parameters": {"champion_uri": {"outputFile": "/tmp/kfp_outputs/champion_uri"},
                                   "decision": {"outputFile": "/tmp/kfp_outputs/decision"}},
                    "artifacts": {"metrics": _artifact("metrics", "system.Metrics", f"{run}/promote/metrics"),
                                  "comparison": _artifact("comparison", "system.HTML", f"{run}/promote/comparison")}}},
        step_scratch, tmp_path)
    assert promoted["parameterValues"]["champion_uri"] == f"models:/{MODEL_NAME}@champion"
    # The comparison page the KFP UI shows, and the metrics it lists, written where KFP's launcher uploads from.
    page = step_scratch / run.removeprefix("s3://") / "promote" / "comparison"
    assert "champion" in page.read_text()
    logged = promoted["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert logged["challenger_rmse"] > 0


def test_the_sandbox_is_what_a_pod_gets(tmp_path: Path, model: dict[str, Any]) -> None:
    """The contract above holds only if the sandbox really is a non-root user in a read-only image dir."""
    probe = ("id -u; id -g; echo HOME=$HOME; pwd; touch x 2>/dev/null && echo cwd-writable; "
             "touch /tmp/x && echo tmp-writable; touch /mnt/models/x 2>/dev/null && echo model-writable; "
             "ls /mnt/models/MLmodel; touch /usr/x 2>/dev/null && echo usr-writable; ls -A /root | wc -l; "
             "echo AWS=${AWS_SECRET_ACCESS_KEY:-none}")
    spec = Container(argv=["sh", "-c", probe], env={}, user=SELDON_MODEL_USER, read_only={"/mnt/models": model["dir"]})
    log = tmp_path / "probe.log"
    assert run_until_exit(spec, log, timeout=30) == 0, tail(log)
    lines = log.read_text().split()
    assert lines[:4] == ["8888", "0", "HOME=/", "/app"]
    assert "tmp-writable" in lines
    assert "/mnt/models/MLmodel" in lines
    assert not {"cwd-writable", "model-writable", "usr-writable"} & set(lines)
    assert "AWS=none" in lines, "the environment is only what the container is given"
