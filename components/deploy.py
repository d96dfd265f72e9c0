"""Deploy: serve the champion with Seldon Core (cluster) or with the same runtimes on this machine (local).

One ``machinelearning.seldon.io/v1`` ``SeldonDeployment`` per protocol is rendered for the champion, whatever the
target:

- ``v2`` (default): ``implementation: MLFLOW_SERVER``, ``protocol: v2``, served by MLServer. The container runs the
  project image, so MLServer, MLflow and scikit-learn are the versions the model was trained with, and the kfops
  runtime validates requests (Seldon's stock MLServer image carries older versions: the tutorial's crash-loop).
- ``v1``: the Seldon protocol, served by the seldon-core Python wrapper around the model (the v1 serving image,
  ``serving/Dockerfile``).

On a cluster each is applied with server-side apply and must become ``Available`` in time; otherwise the previous
spec is applied again, so the previous model keeps serving (:mod:`infra.cluster.seldon`). Locally the spec is executed
by the same runtimes as processes (:mod:`infra.local.serving`). Before either, the compatibility check refuses a model
the runtime cannot load. Which of the two runs is chosen in one place, :mod:`pipelines.targets`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfops.base.contract import (
    PROJECT_IMAGE,
    SELDON_DEPLOYMENT_NAME,
    SELDON_PREDICTOR_NAME,
    SELDON_S3_SECRET_NAME,
    SERVING_V1_IMAGE,
)
from kfops.base.errors import KfopsError
from kfops.base.pod_security import restricted_container
from kfops.base.seldon_versions import DEFAULT_SELDON_CORE_VERSION, license_warning
from kfops.base.upstream import seldon

PROTOCOLS = ("v2", "v1")
GROUP, VERSION = "machinelearning.seldon.io", "v1"
#: The MLServer runtime serving MLflow models with kfops' request validation (kfops-serving).
MLSERVER_RUNTIME = "kfops_serving.mlserver_runtime.KfopsMLflowRuntime"
#: HTTP port of the Service Seldon Core puts in front of a predictor (gRPC is 5001).
SELDON_HTTP_PORT = seldon.PREDICTOR_SERVICE_PORT.value
#: gRPC port of that Service: Seldon's executor serves the Open Inference gRPC service there for every v2 deployment
#: and forwards to MLServer's gRPC port (kfops.base.upstream.seldon.EXECUTOR_SERVES_BOTH).
SELDON_GRPC_PORT = seldon.PREDICTOR_GRPC_PORT.value
#: The endpoint name of the v2 model over gRPC: served wherever v2 is, on both targets.
GRPC_ENDPOINT = "v2-grpc"
#: Where Seldon's storage initializer puts the model inside the serving container.
MODEL_MOUNT = seldon.MODEL_MOUNT.value
#: MLServer runs inference in its server process on both targets. With a worker pool (MLServer's default of 1),
#: MLServer 1.7.1 creates ``<cwd>/.metrics`` at start-up, and Seldon runs the pod as uid 8888 in the image's
#: root-owned working dir: the pod would crash-loop (kfops.base.upstream.mlserver.METRICS_DIR). On this class of
#: machine a pool also measured no faster.
MLSERVER_PARALLEL_WORKERS = 0
#: MLServer's gzip middleware is off on both targets: answers are a few hundred bytes (below the middleware's
#: 500-byte threshold, so never compressed), yet it wrapped every response in a compressor object (measured: 4% of
#: the server's time per request).
MLSERVER_GZIP_ENABLED = False
_CHAMPION_URI = re.compile(r"^models:/(?P<name>[^@/]+)@(?P<alias>[\w-]+)$")


def serving_name(model_name: str) -> str:
    """The name a model is served under: the Seldon graph node's and container's name, hence MLServer's model name.

    Seldon Core forces ``MLSERVER_MODEL_NAME`` to the graph node's name (kfops.base.upstream.seldon.MLSERVER_ENV),
    and a container name is a DNS label, so the v2 path ``/v2/models/<name>/infer`` uses this name on both targets
    (:func:`kfops_serving.protocols.served_model_name`).

    Raises:
        KfopsError: Nothing of the model name is usable.
    """
    from kfops_serving.protocols import served_model_name

    try:
        return served_model_name(model_name)
    except ValueError as error:
        raise KfopsError(str(error), "register the model under a name starting with a letter") from None


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

    def service_for(self, protocol: str) -> str:
        """Name of the Service Seldon Core creates in front of that deployment's predictor (``<sdep>-<predictor>``)."""
        return f"{self.name_for(protocol)}-{self.predictor_name}"


def endpoint_url(protocol: str, model_name: str, settings: ServingSettings, namespace: str) -> str:
    """In-cluster prediction URL of the model served over ``protocol``.

    Seldon's executor listens on HTTP 8000; for :data:`GRPC_ENDPOINT` the URL is the ``grpc://host:port`` of the v2
    deployment's executor (``ModelInfer`` there).
    """
    from kfops_serving.protocols import V1_PREDICTIONS_PATH, v2_infer_path

    if protocol == GRPC_ENDPOINT:
        return f"grpc://{settings.service_for('v2')}.{namespace}.svc.cluster.local:{SELDON_GRPC_PORT}"
    path = v2_infer_path(serving_name(model_name)) if protocol == "v2" else V1_PREDICTIONS_PATH
    return f"http://{settings.service_for(protocol)}.{namespace}.svc.cluster.local:{SELDON_HTTP_PORT}{path}"


def cluster_endpoints(protocols: tuple[str, ...], model_name: str, settings: ServingSettings,
                      namespace: str) -> dict[str, str]:
    """Every in-cluster endpoint of the served protocols: v2 also over gRPC, as on the local target."""
    names = [*protocols, GRPC_ENDPOINT] if "v2" in protocols else list(protocols)
    return {name: endpoint_url(name, model_name, settings, namespace) for name in names}


def parse_protocols(value: str) -> tuple[str, ...]:
    """``"v2"``, ``"v1"`` or ``"both"`` as a tuple of protocols.

    Raises:
        KfopsError: Anything else.
    """
    if value == "both":
        return PROTOCOLS
    if value in PROTOCOLS:
        return (value,)
    raise KfopsError(f"unknown serving protocol {value!r}", "use v2, v1 or both")


def probes() -> dict[str, Any]:
    """The model container's probes: more than Seldon's default 1 s to answer.

    A model server busy scoring a large batch in its one process must not be restarted for it. Only the timings
    matter: Seldon replaces an MLServer container's handlers with its HTTP health paths
    (kfops.base.upstream.seldon.MLSERVER_PROBES) and keeps the rest, and keeps a wrapper container's probes as given
    (operator/controllers/seldondeployment_controller.go#L821-834 at v1.17.1).
    """
    handler = {"tcpSocket": {"port": seldon.NODE_HTTP_PORT.value}}
    timings = {"periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 6, "successThreshold": 1}
    return {"readinessProbe": {**handler, **timings, "initialDelaySeconds": 10},
            "livenessProbe": {**handler, **timings, "initialDelaySeconds": 60}}


def seldon_deployment(protocol: str, *, model_name: str, version: str, model_uri: str, namespace: str,
                      settings: ServingSettings, replicas: int = 1) -> dict[str, Any]:
    """The SeldonDeployment that serves ``model_uri`` (an ``s3://`` model directory) over ``protocol``."""
    name = settings.name_for(protocol)
    node = serving_name(model_name)
    graph: dict[str, Any] = {"name": node, "type": "MODEL", "modelUri": model_uri,
                             "envSecretRefName": settings.secret, "children": []}
    if protocol == "v2":
        graph["implementation"] = "MLFLOW_SERVER"
        # Seldon sets the ports, MLSERVER_MODEL_URI and MLSERVER_MODEL_NAME (the node's name); setting any of the
        # first ones here would make the operator drop the whole env (kfops.base.upstream.seldon.MLSERVER_ENV).
        container: dict[str, Any] = {
            "name": node, "image": PROJECT_IMAGE,
            "command": ["mlserver", "start", MODEL_MOUNT],
            "env": [{"name": "MLSERVER_MODEL_IMPLEMENTATION", "value": MLSERVER_RUNTIME},
                    {"name": "MLSERVER_MODEL_VERSION", "value": version},
                    {"name": "MLSERVER_PARALLEL_WORKERS", "value": str(MLSERVER_PARALLEL_WORKERS)},
                    {"name": "MLSERVER_GZIP_ENABLED", "value": str(MLSERVER_GZIP_ENABLED).lower()},
                    # No adaptive batching: it merges requests before they are validated. The kfops runtime
                    # coalesces requests once each is validated (kfops_serving.mlserver_runtime).
                    {"name": "MLSERVER_MODEL_MAX_BATCH_SIZE", "value": "1"}],
        }
    else:
        # Seldon passes these to KfopsModel(**parameters) through PREDICTIVE_UNIT_PARAMETERS.
        graph["parameters"] = [{"name": "model_uri", "type": "STRING", "value": MODEL_MOUNT},
                               {"name": "model_name", "type": "STRING", "value": model_name},
                               {"name": "model_version", "type": "STRING", "value": version}]
        container = {"name": node, "image": SERVING_V1_IMAGE}
    container["resources"] = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}
    # Restricted on the container itself, as the user Seldon runs model pods as: a pod-level securityContext would
    # stop the operator from setting that user (kfops.base.upstream.seldon.DEFAULT_USER_ID). The containers Seldon
    # adds (executor, storage initializer) are the operator's and do not pass `restricted` (docs/cluster-review.md).
    container["securityContext"] = restricted_container(seldon.DEFAULT_USER_ID.value)
    container.update(probes())
    # Predictor labels reach the model pods (Seldon copies them to the Deployment's template): the deploy step finds
    # the new version's pods by them. Label values must be DNS-label-like: the served name, not the registered one.
    labels = {"app.kubernetes.io/part-of": "kfops", "kfops.model": node, "kfops.model-version": version,
              "kfops.deployment": name}
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
        raise KfopsError(f"{champion_uri!r} is not a models:/<name>@<alias> URI",
                         "pass the champion URI the register_and_promote step outputs")
    name, alias = match.group("name"), match.group("alias")
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, alias).version
        source = client.get_model_version_download_uri(name, version)
    except MlflowException as error:
        raise KfopsError(f"model {name!r} has no alias {alias!r}",
                         "run the workflow up to register_and_promote first") from error
    return name, str(version), source


def check_compatibility(model_dir: Path, runtimes: dict[str, Any]) -> None:
    """Refuse to deploy a model one of ``runtimes`` (protocol -> RuntimeEnvironment) cannot load.

    Raises:
        KfopsError: Naming every mismatch.
    """
    from kfops_serving.compat import ModelRecord, problems

    try:
        record = ModelRecord.read(model_dir)
    except (OSError, ValueError) as error:
        raise KfopsError(f"{model_dir} is not an MLflow model ({error})", "deploy a registered model") from error
    found = [f"{runtime.name}: {problem}" for runtime in runtimes.values() for problem in problems(record, runtime)]
    if found:
        raise KfopsError("the model cannot be served as saved: " + "; ".join(found),
                         "retrain with the serving runtimes' versions (the project pins them) or serve with a "
                         "runtime that matches the model; nothing was deployed")


def license_warnings(settings: ServingSettings) -> list[str]:
    """The licence warning for the configured Seldon Core version, if any."""
    return [w for w in [license_warning(settings.seldon_version)] if w]


def cluster_runtimes(protocols: tuple[str, ...], repo_root: Path) -> dict[str, Any]:
    """The serving images' environments, from the pins they are built from."""
    import tomllib

    from kfops_serving.compat import RuntimeEnvironment

    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    serving = tomllib.loads((repo_root / "serving" / "pyproject.toml").read_text())["project"]
    extras = serving["optional-dependencies"]
    images = {
        # trainer/Dockerfile: kfops' base pins and kfops-serving[mlserver].
        "v2": RuntimeEnvironment.from_pins("the project image's MLServer", "3.11",
                                           [*project["dependencies"], *extras["mlserver"]]),
        # serving/Dockerfile: kfops-serving[seldon], its default build.
        "v1": RuntimeEnvironment.from_pins("the v1 serving image's seldon-core wrapper", "3.12", extras["seldon"]),
    }
    return {protocol: images[protocol] for protocol in protocols}


