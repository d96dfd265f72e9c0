"""Seldon Core v1, as kfops installs its operator and serves the champion with SeldonDeployments.

Read at tag v1.17.1 of SeldonIO/seldon-core (the operator's Helm chart and Go code, and the Python wrapper), and from
the seldon-core wheels' METADATA on PyPI for the licences of 1.17.1, 1.18.x and 1.19.0.
"""

from __future__ import annotations

from typing import Final

from kfops.base.upstream import Fact, Service, Source

REPO: Final = "SeldonIO/seldon-core"
#: The operator chart, the storage initializer and the Python wrapper kfops uses: the last Apache-2.0 release.
VERSION: Final = "1.17.1"


def _at(path: str, lines: str = "") -> Source:
    return Source(REPO, f"v{VERSION}", path, lines)


#: The operator's Helm chart.
CHART: Final = Fact(("seldon-core-operator", "https://storage.googleapis.com/seldon-charts"),
                    _at("helm-charts/seldon-core-operator/Chart.yaml"))
#: Releases from 1.18.0 on are published under the Business Source License 1.1 (LICENSE at v1.18.0, L17-L19, and
#: the wheels' ``License:`` field); 1.17.1 is the last Apache-2.0 one (LICENSE at v1.17.1).
LAST_APACHE_RELEASE: Final = Fact((1, 17, 1), Source(REPO, "v1.18.0", "LICENSE", "1-19"))

#: The Service in front of a predictor: ``<deployment>-<predictor>`` (hashed past 63 characters), HTTP on 8000 and
#: gRPC on 5001 (the chart never sets ENGINE_SERVER_PORT, so these defaults hold).
PREDICTOR_SERVICE_PORT: Final = Fact(8000, _at("operator/controllers/seldondeployment_controller.go", "82-83"))
PREDICTOR_GRPC_PORT: Final = Fact(5001, _at("operator/controllers/seldondeployment_controller.go", "82-83"))
PREDICTOR_SERVICE_NAME: Final = Fact("{deployment}-{predictor}",
                                     _at("operator/apis/machinelearning.seldon.io/v1/seldondeployment_types.go",
                                         "157-171"))
#: The executor always runs both servers, whatever ``spec.transport`` says (that flag only reaches its Kafka mode):
#: REST on 8000 forwards to the node's http port with its REST client, gRPC on 5001 to the node's grpc port (9500,
#: MLSERVER_GRPC_PORT) with its gRPC client, which for protocol v2 is the Open Inference one.
EXECUTOR_SERVES_BOTH: Final = Fact(("rest", "grpc"), _at("executor/cmd/executor/main.go", "395-416"))
#: The executor's v2 gRPC service is ``inference.GRPCInferenceService`` (MLServer's own), but it implements only these
#: methods: every other one (ServerLive, ServerReady, ServerMetadata, ...) is ``panic("Not Implemented")`` in a
#: server without panic recovery, so calling one would crash the executor. Health checks use ModelReady.
EXECUTOR_V2_GRPC_METHODS: Final = Fact(("ModelInfer", "ModelReady", "ModelMetadata"),
                                       _at("executor/api/grpc/kfserving/server.go", "36-88"))
#: Ports of the first graph node's container.
NODE_HTTP_PORT: Final = Fact(9000, _at("operator/constants/constants.go", "20-21"))
NODE_GRPC_PORT: Final = Fact(9500, _at("operator/constants/constants.go", "20-21"))

#: The operator runs model pods as this user, unless their pod spec has a securityContext of its own.
DEFAULT_USER_ID: Final = Fact(8888, _at("operator/controllers/security.go", "11-28"))
#: Where the storage initializer puts the model; the model container mounts it read-only.
MODEL_MOUNT: Final = Fact("/mnt/models", _at("operator/controllers/model_initializer_injector.go", "34"))
#: The default storage initializer (rclone; reads ``RCLONE_CONFIG_*`` from the graph's envSecretRefName, which is
#: given to the init container only). No ConfigMap key or variable named SELDON_STORAGE_INITIALIZER_IMAGE exists.
STORAGE_INITIALIZER: Final = Fact("seldonio/rclone-storage-initializer:1.17.1",
                                  _at("helm-charts/seldon-core-operator/values.yaml", "105-110"))

#: What the operator sets in an MLServer (protocol v2) graph node's container; the user's own values win, except
#: MLSERVER_MODEL_NAME, which is always the graph node's (and container's) name, and the names of
#: :data:`RESERVED_ENV`. Probes become HTTP GETs of
#: /v2/health/ready and /v2/health/live on the http port. Command, args and workingDir are left as they are.
MLSERVER_ENV: Final = Fact({
    "MLSERVER_HTTP_PORT": "9000",
    "MLSERVER_GRPC_PORT": "9500",
    "MLSERVER_MODEL_IMPLEMENTATION": "mlserver_mlflow.MLflowRuntime",
    "MLSERVER_MODEL_NAME": "{node}",
    "MLSERVER_MODEL_VERSION": "v1",
    "MLSERVER_MODEL_URI": "/mnt/models",
}, _at("operator/controllers/mlserver.go", "53-98,210-240"))
#: A container that sets one of these itself loses its whole env: the operator's SetEnvVar (override off) returns
#: nil for an existing name, and that nil replaces the container's env (operator/utils/utils.go#L108-129).
RESERVED_ENV: Final = Fact(("MLSERVER_HTTP_PORT", "MLSERVER_GRPC_PORT", "MLSERVER_MODEL_URI",
                            "PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "PREDICTIVE_UNIT_GRPC_SERVICE_PORT",
                            "PREDICTIVE_UNIT_PARAMETERS"), _at("operator/utils/utils.go", "108-129"))
MLSERVER_PROBES: Final = Fact(("/v2/health/ready", "/v2/health/live"), _at("operator/controllers/mlserver.go", "77-87"))
#: What the operator sets in a Python-wrapper (protocol seldon) graph node's container: its ports, its parameters as
#: JSON, and TCP probes on the http port.
WRAPPER_ENV: Final = Fact({
    "PREDICTIVE_UNIT_HTTP_SERVICE_PORT": "9000",
    "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": "9500",
    "PREDICTIVE_UNIT_PARAMETERS": "{parameters}",
    "PREDICTIVE_UNIT_ID": "{node}",
}, _at("operator/controllers/seldondeployment_controller.go", "845-970"))

#: The validating webhook (the chart generates its certificate: no cert-manager needed).
WEBHOOK: Final = Service("seldon-webhook-service", "seldon-system", 443,
                         _at("helm-charts/seldon-core-operator/templates/service_seldon-webhook-service.yaml", "10-14"))
#: Protocols the webhook accepts.
PROTOCOLS: Final = Fact(("seldon", "tensorflow", "kfserving", "v2"),
                        _at("operator/apis/machinelearning.seldon.io/v1/seldondeployment_types.go"))
#: Prediction and health paths of the Python wrapper.
WRAPPER_PATHS: Final = Fact(("/api/v1.0/predictions", "/health/ping", "/health/status"),
                            _at("python/seldon_core/wrapper.py", "68-156"))
