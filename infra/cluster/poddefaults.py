"""PodDefaults: the tutorials' ``access-minio`` and ``mlflow-server-minio``, for the namespace's notebooks and pods.

A pod labelled ``access-minio: "true"`` gets the S3 credentials and ``MINIO_ENDPOINT_URL``; one labelled
``mlflow-server-minio: "true"`` gets ``MLFLOW_TRACKING_URI`` and ``MLFLOW_S3_ENDPOINT_URL``. Kubeflow's admission
webhook applies them in namespaces carrying its label (profile namespaces). The workflow's own pods do not use them
(they read the Secret and ConfigMaps directly), but in such a namespace every pod creation still goes through the
webhook, which fails closed: while it is unreachable, no pod starts there (``kfops doctor`` checks its endpoints).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.cluster.meta import child_options, pod_default
from infra.cluster.object_store import s3_secret_env
from kfops.base.contract import ACCESS_MINIO_PODDEFAULT, MLFLOW_PODDEFAULT

_COMPONENT = "poddefaults"
#: Environment variable of the S3 endpoint in pods the ``access-minio`` PodDefault selects (the tutorials' name).
ENDPOINT_ENV = "MINIO_ENDPOINT_URL"


@dataclass(frozen=True)
class PodDefaultsArgs:
    """Inputs of :class:`PodDefaults`.

    Attributes:
        namespace: Namespace of the PodDefaults (they apply to its pods only).
        s3_endpoint: In-cluster URL of the S3 store.
        mlflow_url: Tracking URI of the MLflow server.
    """

    namespace: pulumi.Input[str]
    s3_endpoint: pulumi.Input[str]
    mlflow_url: pulumi.Input[str]


class PodDefaults(pulumi.ComponentResource):
    """The two PodDefaults (their CRD comes with Kubeflow, or with the platform this stack installs)."""

    def __init__(self, name: str, args: PodDefaultsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfops:platform:PodDefaults", name, None, opts)
        child = child_options(self, opts)
        pod_default(f"{name}-access-minio", ACCESS_MINIO_PODDEFAULT, args.namespace, _COMPONENT,
                    "S3 credentials and endpoint of the kfops object store",
                    [*s3_secret_env(), {"name": ENDPOINT_ENV, "value": args.s3_endpoint}], child)
        pod_default(f"{name}-mlflow", MLFLOW_PODDEFAULT, args.namespace, _COMPONENT,
                    "MLflow tracking server and its S3 artifact store",
                    [{"name": "MLFLOW_TRACKING_URI", "value": args.mlflow_url},
                     {"name": "MLFLOW_S3_ENDPOINT_URL", "value": args.s3_endpoint}], child)
        self.register_outputs({})
