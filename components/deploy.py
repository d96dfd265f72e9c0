"""Deploy: serve the champion with Seldon Core (cluster) or with the same runtimes on this machine (local).

One ``machinelearning.seldon.io/v1`` ``SeldonDeployment`` per protocol is rendered for the champion, whatever the
target:

- ``v2`` (default): ``implementation: MLFLOW_SERVER``, ``protocol: v2``, served by MLServer. The container runs the
  project image, so MLServer, MLflow and scikit-learn are the versions the model was trained with, and the kfops
  runtime validates requests (Seldon's stock MLServer image carries older versions: the tutorial's crash-loop).
- ``v1``: the Seldon protocol, served by the seldon-core Python wrapper around the model (the v1 serving image,
  ``serving/Dockerfile``).

On a cluster each is applied with server-side apply and must become ``Available`` in time; otherwise the previous
spec is applied again, so the previous model keeps serving. Locally the spec is executed by the same runtimes as
processes (:mod:`infra.local.serving`). Before either, the compatibility check refuses a model the runtime cannot load.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfops.contract import (
    PROJECT_IMAGE,
    SELDON_DEPLOYMENT_NAME,
    SELDON_PREDICTOR_NAME,
    SELDON_S3_SECRET_NAME,
    SERVING_V1_IMAGE,
)
from kfops.errors import KfopsError
from kfops.seldon_versions import DEFAULT_SELDON_CORE_VERSION, license_warning

STEP = "deploy"
PROTOCOLS = ("v2", "v1")
TARGETS = ("seldon", "local")
GROUP, VERSION, PLURAL = "machinelearning.seldon.io", "v1", "seldondeployments"
#: Where Seldon's storage initializer puts the model inside the serving container.
MODEL_MOUNT = "/mnt/models"
_CHAMPION_URI = re.compile(r"^models:/(?P<name>[^@/]+)@(?P<alias>[\w-]+)$")


@dataclass(frozen=True)
class ServingSettings:
    """What the deploy step needs to know about the cluster's Seldon Core installation.

    On a cluster the Pulumi program's ``kfops-serving`` ConfigMap provides these (as environment variables of the
    step); locally the defaults apply.
    """

    seldon_version: str = DEFAULT_SELDON_CORE_VERSION
    secret: str = SELDON_S3_SECRET_NAME
    deployment_name: str = SELDON_DEPLOYMENT_NAME
    predictor_name: str = SELDON_PREDICTOR_NAME

    @classmethod
    def from_env(cls, env: dict[str, str]) -> ServingSettings:
        """Read the ``kfops-serving`` ConfigMap keys from ``env``, defaulting what is absent."""
        default = cls()
        return cls(seldon_version=env.get("SELDON_CORE_VERSION") or default.seldon_version,
                   secret=env.get("SELDON_ENV_SECRET_REF_NAME") or default.secret,
                   deployment_name=env.get("SELDON_DEPLOYMENT_NAME") or default.deployment_name,
                   predictor_name=env.get("SELDON_PREDICTOR_NAME") or default.predictor_name)

    def name_for(self, protocol: str) -> str:
        """Name of the SeldonDeployment for ``protocol`` (the default protocol keeps the plain name)."""
        return self.deployment_name if protocol == "v2" else f"{self.deployment_name}-{protocol}"


def parse_protocols(value: str) -> tuple[str, ...]:
    """``"v2"``, ``"v1"`` or ``"both"`` as a tuple of protocols.

    Raises:
        KfopsError: Anything else.
    """
    if value == "both":
        return PROTOCOLS
    if value in PROTOCOLS:
        return (value,)
    raise KfopsError(STEP, f"unknown serving protocol {value!r}", "use v2, v1 or both")


def seldon_deployment(protocol: str, *, model_name: str, version: str, model_uri: str, namespace: str,
                      settings: ServingSettings, replicas: int = 1) -> dict[str, Any]:
    """The SeldonDeployment that serves ``model_uri`` (an ``s3://`` model directory) over ``protocol``."""
    name = settings.name_for(protocol)
    graph: dict[str, Any] = {"name": "model", "type": "MODEL", "modelUri": model_uri,
                             "envSecretRefName": settings.secret, "children": []}
    if protocol == "v2":
        graph["implementation"] = "MLFLOW_SERVER"
        container = {
            "name": "model", "image": PROJECT_IMAGE,
            "command": ["mlserver", "start", MODEL_MOUNT],
            # Seldon sets MLSERVER_MODEL_URI and the ports; the kfops runtime adds request validation.
            "env": [{"name": "MLSERVER_MODEL_IMPLEMENTATION", "value": "serving.mlserver_runtime.KfopsMLflowRuntime"},
                    {"name": "MLSERVER_MODEL_NAME", "value": model_name},
                    {"name": "MLSERVER_MODEL_MAX_BATCH_SIZE", "value": "20"},
                    {"name": "MLSERVER_MODEL_MAX_BATCH_TIME", "value": "0.001"}],
        }
    else:
        graph["parameters"] = [{"name": "model_uri", "type": "STRING", "value": MODEL_MOUNT}]
        container = {"name": "model", "image": SERVING_V1_IMAGE}
    container["resources"] = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}
    labels = {"app.kubernetes.io/part-of": "kfops", "kfops.model": model_name, "kfops.model-version": version}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "name": name,
            "protocol": "v2" if protocol == "v2" else "seldon",
            "annotations": {"seldon.io/rest-timeout": "60000"},
            "predictors": [{
                "name": settings.predictor_name,
                "replicas": replicas,
                "labels": labels,
                "graph": graph,
                "componentSpecs": [{"spec": {"containers": [container]}}],
            }],
        },
    }


@dataclass
class Deployed:
    """The outcome of the deploy step."""

    model_name: str
    version: str
    target: str
    endpoints: dict[str, str]
    manifests: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def resolve_champion(champion_uri: str) -> tuple[str, str, str]:
    """``models:/<name>@<alias>`` -> ``(name, version, s3 source of the version)``.

    Raises:
        KfopsError: Not such a URI, or the alias does not exist.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    match = _CHAMPION_URI.match(champion_uri)
    if not match:
        raise KfopsError(STEP, f"{champion_uri!r} is not a models:/<name>@<alias> URI",
                         "pass the champion URI the register_and_promote step outputs")
    name, alias = match.group("name"), match.group("alias")
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, alias).version
        source = client.get_model_version_download_uri(name, version)
    except MlflowException as error:
        raise KfopsError(STEP, f"model {name!r} has no alias {alias!r}",
                         "run the workflow up to register_and_promote first") from error
    return name, str(version), source


def check_compatibility(model_dir: Path, runtimes: dict[str, Any]) -> None:
    """Refuse to deploy a model one of ``runtimes`` (protocol -> RuntimeEnvironment) cannot load.

    Raises:
        KfopsError: Naming every mismatch.
    """
    from serving.compat import ModelRecord, problems

    try:
        record = ModelRecord.read(model_dir)
    except (OSError, ValueError) as error:
        raise KfopsError(STEP, f"{model_dir} is not an MLflow model ({error})", "deploy a registered model") from error
    found = [f"{runtime.name}: {problem}" for runtime in runtimes.values() for problem in problems(record, runtime)]
    if found:
        raise KfopsError(STEP, "the model cannot be served as saved: " + "; ".join(found),
                         "retrain with the serving runtimes' versions (the project pins them) or serve with a "
                         "runtime that matches the model; nothing was deployed")


def cluster_runtimes(protocols: tuple[str, ...], repo_root: Path) -> dict[str, Any]:
    """The serving images' environments, from the pins they are built from."""
    import tomllib

    from serving.compat import RuntimeEnvironment

    pins = tomllib.loads((repo_root / "pyproject.toml").read_text())
    images = {
        "v2": RuntimeEnvironment.from_pins("the project image's MLServer", "3.11", pins["project"]["dependencies"]),
        "v1": RuntimeEnvironment.from_pins("the v1 serving image's seldon-core wrapper", "3.12",
                                           pins["tool"]["kfops"]["seldon-requirements"]),
    }
    return {protocol: images[protocol] for protocol in protocols}


def deploy(champion_uri: str, *, target: str, protocols: tuple[str, ...], namespace: str = "",
           settings: ServingSettings | None = None, timeout: float = 600) -> Deployed:
    """Serve the model ``champion_uri`` names.

    Args:
        champion_uri: ``models:/<name>@champion``.
        target: ``seldon`` (apply SeldonDeployments on the cluster) or ``local`` (the local runtimes).
        protocols: ``("v2",)``, ``("v1",)`` or both.
        namespace: Cluster namespace; the pod's own when empty.
        settings: Seldon installation settings (cluster), defaults otherwise.
        timeout: Seconds a SeldonDeployment may take to become Available.

    Raises:
        KfopsError: Unknown target or protocol, incompatible model, or a roll-out that failed (the previous
            model keeps serving).
    """
    from kfops.tracking import require_tracking_server

    if target not in TARGETS:
        raise KfopsError(STEP, f"unknown deploy target {target!r}", f"choose one of: {', '.join(TARGETS)}")
    require_tracking_server(STEP)
    settings = settings or ServingSettings()
    name, version, source = resolve_champion(champion_uri)
    warnings = [w for w in [license_warning(settings.seldon_version)] if w]
    if target == "local":
        from infra.local.platform import LocalPlatform
        from infra.local.serving import LocalServing

        serving = LocalServing(LocalPlatform())
        served = serving.fetch(name, version)
        check_compatibility(Path(served.path), {p: serving.runtime(p) for p in protocols})
        manifests = [seldon_deployment(p, model_name=name, version=version, model_uri=source, namespace="local",
                                       settings=settings) for p in protocols]
        endpoints = serving.deploy(served, protocols)
        return Deployed(name, version, target, endpoints, manifests, warnings)

    import mlflow

    from components.katib.cluster import current_namespace

    namespace = namespace or current_namespace()
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}"))
    check_compatibility(model_dir, cluster_runtimes(protocols, Path(__file__).resolve().parent.parent))
    manifests = [seldon_deployment(p, model_name=name, version=version, model_uri=source, namespace=namespace,
                                   settings=settings) for p in protocols]
    endpoints = {}
    for protocol, manifest in zip(protocols, manifests, strict=True):
        apply_and_wait(manifest, timeout=timeout)
        service = f"{manifest['metadata']['name']}-{settings.predictor_name}"
        path = f"/v2/models/{name}/infer" if protocol == "v2" else "/api/v1.0/predictions"
        endpoints[protocol] = f"http://{service}.{namespace}.svc.cluster.local:8000{path}"
    return Deployed(name, version, target, endpoints, manifests, warnings)


class SeldonDeployments:
    """Read and server-side apply SeldonDeployments (the dynamic client: the typed one cannot send apply patches)."""

    def __init__(self) -> None:
        from kubernetes import client, dynamic

        from components.katib.cluster import load_kubernetes_config

        load_kubernetes_config(STEP)
        self.client = dynamic.DynamicClient(client.ApiClient())
        self.resource = self.client.resources.get(api_version=f"{GROUP}/{VERSION}", kind="SeldonDeployment")

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return self.resource.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def apply(self, body: dict[str, Any]) -> None:
        """Server-side apply ``body`` as field manager ``kfops``."""
        metadata = body["metadata"]
        self.client.server_side_apply(self.resource, body=body, name=metadata["name"],
                                      namespace=metadata["namespace"], field_manager="kfops", force_conflicts=True)


def apply_and_wait(manifest: dict[str, Any], *, timeout: float, poll: float = 5,
                   api: SeldonDeployments | None = None) -> None:
    """Apply ``manifest``; wait for ``status.state == Available``; re-apply the previous spec if it does not get there.

    Raises:
        KfopsError: The deployment did not become Available (the previous spec has been re-applied).
    """
    from kubernetes.client.exceptions import ApiException

    api = api or SeldonDeployments()
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    previous = api.get(name, namespace)
    try:
        api.apply(manifest)
    except ApiException as error:
        raise KfopsError(STEP, f"Seldon refused SeldonDeployment {namespace}/{name}: {error.status} "
                               f"{(error.body or '')[:400]}", "check the Seldon Core installation") from error
    deadline = time.monotonic() + timeout
    state, reason = "", ""
    while time.monotonic() < deadline:
        status = (api.get(name, namespace) or {}).get("status") or {}
        state, reason = status.get("state", ""), status.get("description", "")
        if state == "Available":
            return
        if state == "Failed":
            break
        time.sleep(poll)
    if previous is not None:
        api.apply(rollback_manifest(previous))
        fix = "the previous model keeps serving; inspect the new pods with kubectl describe"
    else:
        fix = f"inspect it with `kubectl -n {namespace} describe seldondeployment {name}`"
    raise KfopsError(STEP, f"SeldonDeployment {namespace}/{name} is {state or 'not Available'} after "
                           f"{timeout:.0f} s ({reason or 'no reason given'})", fix)


def rollback_manifest(previous: dict[str, Any]) -> dict[str, Any]:
    """What to apply to return to ``previous`` (a SeldonDeployment as read from the API): its spec and labels."""
    metadata = previous["metadata"]
    return {"apiVersion": previous["apiVersion"], "kind": previous["kind"], "spec": previous["spec"],
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"],
                         "labels": metadata.get("labels", {})}}
