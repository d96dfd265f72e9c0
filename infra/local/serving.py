"""Serving the champion on the local target: MLServer (v2 protocol) and the seldon-core wrapper (v1).

They run as processes managed with the rest of the platform, in the roles Seldon Core gives them on a cluster.
The model is downloaded from the registry to the state dir first (as Seldon's storage initializer does), and both
runtimes load it from there. Rolling to a new model never leaves a moment without a ready server: MLServer loads
the new model next to the old one through its repository API and swaps; the wrapper's workers follow a pointer file
and swap in place (see :mod:`kfops_serving.seldon_model`). A model that fails to load or to answer is never swapped in,
and the previous one keeps serving.
"""

from __future__ import annotations

import contextvars
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from components.deploy import (
    GRPC_ENDPOINT,
    Deployed,
    ServingSettings,
    check_compatibility,
    license_warnings,
    resolve_champion,
    seldon_deployment,
    serving_name,
)
from infra.local.processes import (
    Recorder,
    ServiceRecord,
    ServiceSpec,
    http_ok,
    is_running,
    start_service,
    stop_service,
)
from infra.local.services import mlserver_model_settings, mlserver_spec, seldon_python, seldon_spec
from infra.local.settings import HOST
from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.failpoints import failpoint
from kfops.base.files import private_files, write_json, write_private
from kfops_serving.protocols import V1_PREDICTIONS_PATH, V1_READY_PATH, v2_infer_path, v2_ready_path

if TYPE_CHECKING:
    from infra.local.platform import LocalPlatform
    from kfops_serving.compat import RuntimeEnvironment

#: Serving protocols and the local service that speaks each.
SERVICES = {"v2": "mlserver", "v1": "seldon"}
#: How long a runtime may take to load a model before the roll-out is abandoned.
LOAD_TIMEOUT = 180.0


@dataclass(frozen=True)
class ServedModel:
    """A registered model version, downloaded for serving."""

    name: str
    version: str
    path: str
    source: str

    def as_dict(self) -> dict[str, str]:
        """JSON form (also what the seldon pointer file holds)."""
        return asdict(self)


class LocalServing:
    """The serving runtimes of one local platform.

    Args:
        platform: The platform whose state dir, settings and process records are used.
    """

    def __init__(self, platform: LocalPlatform) -> None:
        self.platform = platform
        self.settings = platform.settings
        self.root = platform.state_dir / "serving"
        self.deployed_file = self.root / "deployed.json"
        #: What a deployment in progress is rolling out; left behind only by one that was killed.
        self.pending_file = self.root / "deploying.json"
        self.mlserver_repo = self.root / "mlserver"
        self.pointer = self.root / "seldon" / "current.json"
        self.acks = self.root / "seldon" / "acks"

    # --- what is served ---------------------------------------------------------------------------------------

    def deployed(self) -> dict[str, Any] | None:
        """The last successful deployment: ``{"model": {...}, "protocols": [...], "endpoints": {...}}``.

        Raises:
            KfopsError: The file is unreadable.
        """
        return _read_record(self.deployed_file)

    def interrupted(self) -> dict[str, Any] | None:
        """A deployment that was killed before it finished: ``{"model": {...}, "protocols": [...]}``.

        Raises:
            KfopsError: The file is unreadable.
        """
        return _read_record(self.pending_file)

    def endpoints(self, model_name: str, protocols: list[str] | tuple[str, ...] = tuple(SERVICES)) -> dict[str, str]:
        """Prediction URLs by protocol; `v2-grpc` is the v2 model over gRPC (`grpc://host:port`)."""
        records = self.platform.records()
        urls = {}
        if "v2" in protocols and "mlserver" in records:
            urls["v2"] = f"{records['mlserver'].url}{v2_infer_path(serving_name(model_name))}"
            # The same model over the Open Inference gRPC service (``ModelInfer``), MLServer's second port.
            if "grpc" in records["mlserver"].ports:
                urls[GRPC_ENDPOINT] = f"grpc://{HOST}:{records['mlserver'].ports['grpc']}"
        if "v1" in protocols and "seldon" in records:
            urls["v1"] = f"{records['seldon'].url}{V1_PREDICTIONS_PATH}"
        return urls

    def runtime(self, protocol: str) -> RuntimeEnvironment:
        """The environment the runtime for ``protocol`` runs in (for the compatibility check)."""
        from kfops_serving.compat import RuntimeEnvironment

        if protocol == "v2":
            return RuntimeEnvironment.current("MLServer (local v2 runtime)")
        try:
            return RuntimeEnvironment.of_interpreter("the seldon-core wrapper (local v1 runtime)",
                                                     seldon_python(self.settings))
        except RuntimeError as error:
            raise KfopsError(str(error), "run `make venv` to create the seldon-core environment") from error

    # --- getting the model ------------------------------------------------------------------------------------

    def fetch(self, name: str, version: str) -> ServedModel:
        """Download version ``version`` of registered model ``name`` into the state dir (once).

        Raises:
            KfopsError: The version does not exist or its artifacts cannot be downloaded.
        """
        import mlflow
        from mlflow.exceptions import MlflowException

        target = self.root / "models" / name / version
        client = mlflow.MlflowClient()
        try:
            source = client.get_model_version_download_uri(name, version)
            if not (target / "MLmodel").exists():
                partial = target.with_name(f".{version}.partial")
                shutil.rmtree(partial, ignore_errors=True)
                with private_files():
                    partial.mkdir(parents=True)
                    mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}",
                                                        dst_path=str(partial))
                partial.replace(target)
        except (MlflowException, OSError) as error:
            raise KfopsError(f"cannot download model {name} version {version}: {error}",
                             "check that the version exists and the object store is up") from error
        return ServedModel(name=name, version=version, path=str(target), source=source)

    # --- rolling out --------------------------------------------------------------------------------------------

    @in_step(Step.DEPLOY)
    def deploy(self, model: ServedModel, protocols: tuple[str, ...] = tuple(SERVICES)) -> dict[str, str]:
        """Serve ``model`` on every protocol in ``protocols``, starting or rolling the runtimes.

        Returns:
            Prediction URLs by protocol.

        Raises:
            KfopsError: A runtime could not load or serve the model; what was serving before still is.
        """
        with self.platform.store.locked():
            return self._deploy(model, protocols)

    def restore(self, report: Callable[[str], None] = lambda _message: None) -> None:
        """Serve the registry's champion again on every protocol the last deployment served (``kfops local up``).

        Restarts the runtimes that are not running (after ``down`` or a crash). When the champion is not what was
        deployed last (a run killed between promoting and deploying), or a deployment was killed half-way (one
        runtime rolled, the other not, or a runtime started and not recorded as serving), every runtime is rolled
        to the champion. Without a registry to ask, the last deployment is what is restored.

        Raises:
            KfopsError: The champion cannot be served (what served before keeps serving).
        """
        deployed, pending = self.deployed(), self.interrupted()
        last = pending or deployed
        if last is None:
            return
        protocols = tuple(sorted({*(deployed or {}).get("protocols", ()), *(pending or {}).get("protocols", ())}))
        with self.platform.store.locked():
            fallback = ServedModel(**last["model"])
            model = self._champion(fallback, report)
            if pending is not None or deployed is None or model.version != deployed["model"]["version"]:
                why = ("a deployment was interrupted" if pending is not None else
                       f"version {deployed['model']['version'] if deployed else '?'} was served")
                report(f"Serving {model.name} version {model.version} on {', '.join(protocols)} ({why})")
                check_compatibility(Path(model.path), {protocol: self.runtime(protocol) for protocol in protocols})
                self._deploy(model, protocols)
                return
            records = self.platform.store.load()
            missing = tuple(p for p in protocols if not _healthy(records.get(SERVICES[p])))
            if missing:
                report(f"Restoring serving of {model.name} version {model.version} on {', '.join(missing)}")
                self._deploy(model, missing)

    def idle_runtime_specs(self, records: dict[str, ServiceRecord]) -> dict[str, ServiceSpec]:
        """The runtimes ``kfops local up`` starts with no model, so that the first deploy only loads one.

        A deploy then loads the champion through MLServer's model repository API and the wrapper's pointer file
        instead of waiting for two cold starts. Nothing is started when a deployment exists or was interrupted
        (``up`` restores that one), for a runtime that already answers, or with ``KFOPS_PRESTART_SERVING=false``.
        """
        if not self.settings.prestart_serving or self.deployed() or self.interrupted():
            return {}
        specs: dict[str, ServiceSpec] = {}
        if not _healthy(records.get("mlserver")):
            shutil.rmtree(self.mlserver_repo, ignore_errors=True)  # models of a deployment that no longer exists
            self.mlserver_repo.mkdir(parents=True)
            specs["mlserver"] = mlserver_spec(self.settings, self.mlserver_repo, None)
        if not _healthy(records.get("seldon")):
            self.pointer.unlink(missing_ok=True)
            shutil.rmtree(self.acks, ignore_errors=True)
            specs["seldon"] = seldon_spec(self.settings, self.pointer, self.acks, idle=True)
        return specs

    def _champion(self, fallback: ServedModel, report: Callable[[str], None]) -> ServedModel:
        """The registry's champion of ``fallback``'s model, downloaded; ``fallback`` if the registry cannot say."""
        from infra.local.runner import environment

        try:
            with environment(self.platform.env()):
                name, version, _ = resolve_champion(f"models:/{fallback.name}@champion")
                return fallback if version == fallback.version else self.fetch(name, version)
        except KfopsError as error:
            report(f"the registry did not say which version of {fallback.name} is champion ({error.cause}): "
                   f"serving version {fallback.version}")
            return fallback

    def _deploy(self, model: ServedModel, protocols: tuple[str, ...]) -> dict[str, str]:
        unknown = set(protocols) - set(SERVICES)
        if unknown:
            raise KfopsError(f"unknown serving protocol(s) {sorted(unknown)}", "use v1 and/or v2")
        previous = self.deployed()
        records = self.platform.store.load()
        # Until it finishes, the deployment says what it rolls out: `up` finishes it if this process is killed.
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.pending_file, {"model": model.as_dict(), "protocols": list(protocols)})
        # Every runtime started is in the state file before it runs, whenever this process dies.
        recorder = Recorder(self.platform.store, records)
        # The runtimes start (or load the model) concurrently: a cold start of both is mostly waiting on imports.
        with ThreadPoolExecutor(max_workers=len(protocols)) as pool:
            # Each roll runs in the caller's context (a copy each), so its errors name the caller's step.
            rolls = {protocol: pool.submit(contextvars.copy_context().run,
                                           self._roll_mlserver if protocol == "v2" else self._roll_seldon, model,
                                           recorder) for protocol in protocols}
        rolled = [protocol for protocol, roll in rolls.items() if roll.exception() is None]
        self.platform.store.save(records)
        try:
            for roll in rolls.values():
                roll.result()
            self._smoke_test(model, protocols, records)
        except KfopsError:
            self._roll_back(previous, rolled, recorder)
            self.pending_file.unlink(missing_ok=True)  # what served before serves again
            raise
        failpoint("deploy:rolled")
        endpoints = self.endpoints(model.name, protocols)
        served = sorted(set(protocols) | set(previous["protocols"] if previous else ()))
        write_json(self.deployed_file, {"model": model.as_dict(), "protocols": served,
                                                   "endpoints": self.endpoints(model.name, served),
                                                   "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self.pending_file.unlink()
        return endpoints

    def _roll_back(self, previous: dict[str, Any] | None, rolled: list[str], recorder: Recorder) -> None:
        if not previous or not rolled:
            return
        model = ServedModel(**previous["model"])
        for protocol in rolled:
            if protocol in previous["protocols"]:
                try:
                    (self._roll_mlserver if protocol == "v2" else self._roll_seldon)(model, recorder)
                except KfopsError:
                    continue  # the runtime kept the previous model: it never swapped the failing one in
        self.platform.store.save(recorder.records)

    def _roll_mlserver(self, model: ServedModel, recorder: Recorder) -> None:
        records = recorder.records
        # MLServer knows the model by the name Seldon Core would give it on a cluster.
        served = serving_name(model.name)
        settings_file = self.mlserver_repo / served / "model-settings.json"
        before = settings_file.read_text() if settings_file.exists() else None
        settings_file.parent.mkdir(parents=True, exist_ok=True)
        write_private(settings_file, mlserver_model_settings(served, model.path, model.version, self.settings))
        record = records.get("mlserver")
        if _healthy(record):
            assert record is not None
            status, detail = _post(f"{record.url}/v2/repository/models/{served}/load", LOAD_TIMEOUT)
            if status != 200:
                _restore(settings_file, before)
                raise KfopsError(f"MLServer could not load {model.name} version {model.version}: {detail}",
                                 "the previous model keeps serving; read `kfops local logs mlserver`")
            old = record.details.get("model")
            if old and serving_name(old) != served:
                _post(f"{record.url}/v2/repository/models/{serving_name(old)}/unload", 60)
                shutil.rmtree(self.mlserver_repo / serving_name(old), ignore_errors=True)
            # Ready from now on when this model is (an idle server was ready with no model at all).
            record.ready_url = f"{record.url}{v2_ready_path(served)}"
        else:
            if record:
                stop_service(record, self.settings.stop_timeout)
            for stale in self.mlserver_repo.iterdir():
                if stale.is_dir() and stale.name != served:
                    shutil.rmtree(stale)
            spec = mlserver_spec(self.settings, self.mlserver_repo, served)
            try:
                record = start_service(spec, self.platform.log_path("mlserver"), self.settings.startup_timeout,
                                       self.settings.stop_timeout, recorder)
            except KfopsError as error:
                _restore(settings_file, before)
                raise KfopsError(f"MLServer did not start with {model.name} version {model.version}: "
                                       f"{error.cause}", error.fix) from error
        record.details = {"model": model.name, "version": model.version}
        records["mlserver"] = record

    def _roll_seldon(self, model: ServedModel, recorder: Recorder) -> None:
        records = recorder.records
        before = self.pointer.read_text() if self.pointer.exists() else None
        self.pointer.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.pointer, model.as_dict())
        failpoint("deploy:pointer-written")
        record = records.get("seldon")
        if not _healthy(record):
            if record:
                stop_service(record, self.settings.stop_timeout)
            shutil.rmtree(self.acks, ignore_errors=True)
            spec = seldon_spec(self.settings, self.pointer, self.acks)
            try:
                record = start_service(spec, self.platform.log_path("seldon"), self.settings.startup_timeout,
                                       self.settings.stop_timeout, recorder)
            except KfopsError as error:
                _restore(self.pointer, before)
                raise KfopsError(f"the seldon-core wrapper did not start with {model.name} version "
                                       f"{model.version}: {error.cause}", error.fix) from error
        assert record is not None
        try:
            self._await_acks(record, model)
        except KfopsError:
            _restore(self.pointer, before)
            raise
        record.ready_url = f"{record.url}{V1_READY_PATH}"  # an idle wrapper was ready when it merely answered
        record.details = {"model": model.name, "version": model.version}
        records["seldon"] = record

    def _await_acks(self, record: ServiceRecord, model: ServedModel) -> None:
        """Wait until every wrapper worker serves ``model``; fail on the first worker that could not load it."""
        written = self.pointer.stat().st_mtime_ns
        deadline = time.monotonic() + LOAD_TIMEOUT
        while time.monotonic() < deadline:
            workers = {p.pid for p in _children(record.pid)}
            serving = 0
            for ack in _read_acks(self.acks):
                if ack["pid"] not in workers:
                    continue
                if not ack["ok"] and ack["pointer_mtime_ns"] >= written:
                    raise KfopsError(f"the seldon-core wrapper could not load {model.name} version "
                                           f"{model.version}: {ack['error']}",
                                     "the previous model keeps serving; read `kfops local logs seldon`")
                if ack["ok"] and (ack["name"], ack["version"]) == (model.name, model.version):
                    serving += 1
            if serving >= self.settings.seldon_workers:
                return
            time.sleep(0.1)
        raise KfopsError(f"the seldon-core wrapper's workers did not all load {model.name} version "
                               f"{model.version} within {LOAD_TIMEOUT:.0f} s",
                         "read `kfops local logs seldon`; the previous model keeps serving")

    def _smoke_test(self, model: ServedModel, protocols: tuple[str, ...],
                    records: dict[str, ServiceRecord]) -> None:
        """Score the model's own input example on every rolled-out endpoint and compare with the model itself."""
        import mlflow.pyfunc
        import numpy as np
        import pandas as pd

        from kfops_serving.protocols import open_inference_v2, seldon_v1

        pyfunc = mlflow.pyfunc.load_model(model.path)
        example = _input_example(Path(model.path))
        expected = np.asarray(pyfunc.predict(pd.DataFrame(example["data"], columns=example["columns"]))).ravel()
        rows = [list(map(float, row)) for row in example["data"]]
        for protocol in protocols:
            base = records[SERVICES[protocol]].url
            if protocol == "v2":
                status, body = _post(f"{base}{v2_infer_path(serving_name(model.name))}", 60,
                                     open_inference_v2(rows))
                got = json.loads(body)["outputs"][0]["data"] if status == 200 else None
            else:
                status, body = _post(f"{base}{V1_PREDICTIONS_PATH}", 60, seldon_v1(rows))
                got = json.loads(body)["data"]["ndarray"] if status == 200 else None
            if not same_predictions(got, expected):
                raise KfopsError(f"the {protocol} endpoint answered the model's input example with HTTP "
                                       f"{status}: {body[:300]!r}, expected {expected.tolist()}",
                                 "the previous model was restored; read the runtime's log")


def same_predictions(got: Any, expected: Any) -> bool:
    """Whether an endpoint's answer ``got`` is the model's own ``expected`` predictions.

    Numbers to within float rounding; anything else (a classifier's class labels) exactly, label for label.
    """
    import numpy as np

    if got is None:
        return False
    answered, expected = np.asarray(got).ravel(), np.asarray(expected).ravel()
    if answered.shape != expected.shape:
        return False
    if expected.dtype.kind in "biuf":
        return answered.dtype.kind in "biuf" and bool(np.allclose(answered.astype(float), expected.astype(float),
                                                                  rtol=1e-6, atol=1e-9))
    return answered.dtype.kind not in "biuf" and answered.tolist() == expected.tolist()


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
        if not (isinstance(record, dict) and {"name", "version", "path"} <= set(record.get("model", {}))):
            raise ValueError("no model name, version and path")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as error:
        raise KfopsError(f"the serving record {path} is unreadable ({type(error).__name__}: "
                         f"{str(error).splitlines()[0][:120]})",
                         f"delete {path}; the next `kfops pipeline run --local` serves the champion again") from error
    return record


def _healthy(record: ServiceRecord | None) -> bool:
    return record is not None and is_running(record) and http_ok(record.ready_url)


def _restore(path: Path, content: str | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    else:
        write_private(path, content)


def _post(url: str, timeout: float, body: bytes = b"") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - loopback http only
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.Error:
        return []


def _read_acks(directory: Path) -> list[dict[str, Any]]:
    acks = []
    for path in directory.glob("*.json"):
        try:
            acks.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being replaced right now; read again on the next pass
    return acks


def _input_example(model_dir: Path) -> dict[str, Any]:
    """The model's saved input example, as ``{"columns": [...], "data": [[...]]}``."""
    example = json.loads((model_dir / "serving_input_example.json").read_text())
    split = example.get("dataframe_split") or example
    return {"columns": split["columns"], "data": split["data"]}


@in_step(Step.DEPLOY)
def deploy_locally(champion_uri: str, *, protocols: tuple[str, ...], settings: ServingSettings,
                   platform: LocalPlatform | None = None) -> Deployed:
    """Serve the model ``champion_uri`` names with the local runtimes, as the SeldonDeployments would on a cluster.

    The alias is resolved under the state dir's lock: of two runs deploying at once, the one that rolls out last
    serves the champion as it is then, never one the other run's promotion replaced meanwhile.

    Raises:
        KfopsError: Incompatible model, or a roll-out that failed (the previous model keeps serving).
    """
    from infra.local.platform import LocalPlatform

    serving = LocalServing(platform or LocalPlatform())
    with serving.platform.store.locked():
        name, version, source = resolve_champion(champion_uri)
        served = serving.fetch(name, version)
        check_compatibility(Path(served.path), {p: serving.runtime(p) for p in protocols})
        manifests = [seldon_deployment(p, model_name=name, version=version, model_uri=source, namespace="local",
                                       settings=settings) for p in protocols]
        failpoint("deploy:fetched")
        endpoints = serving._deploy(served, protocols)
    return Deployed(name, version, "local", endpoints, manifests, license_warnings(settings))
