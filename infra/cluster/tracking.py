"""Tracking: the MLflow tracking server and model registry the workflow logs to, and the ConfigMap pointing at it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from infra.cluster.meta import child_options, in_cluster_url, labels, object_meta
from infra.cluster.object_store import s3_secret_env
from kfops.base.contract import MLFLOW_ARTIFACT_ROOT, MLFLOW_CONFIG_MAP, PROJECT_IMAGE, PROJECT_IMAGE_USER
from kfops.base.pod_security import restricted_container, restricted_pod
from kfops.base.tracking import SERVER_ENV, allowed_hosts

_COMPONENT = "tracking"
#: Name of the deployed server's Deployment, Service and database volume.
SERVER_NAME = "kfops-mlflow"
SERVER_PORT = 5000
#: Where runs store artifacts: the ``mlflow`` bucket, as on the local target (clients write there directly).
_DATA_DIR = "/var/lib/mlflow"


@dataclass(frozen=True)
class TrackingArgs:
    """Inputs of :class:`Tracking`.

    Attributes:
        namespace: Namespace of the server and the PodDefault.
        s3_endpoint: In-cluster S3 endpoint for artifacts.
        mode: ``deploy`` a server here, or use an ``external`` one at ``external_url``.
        external_url: URL of the external server.
        storage: Size of the database volume of a deployed server.
        image: Image with MLflow and boto3 (the project image has both, pinned like the local target's).
        secrets: Secrets the server reads; it is created only after them.
    """

    namespace: pulumi.Input[str]
    s3_endpoint: str
    mode: Literal["deploy", "external"] = "deploy"
    external_url: str | None = None
    storage: str = "5Gi"
    image: str = PROJECT_IMAGE
    secrets: Sequence[pulumi.Resource] = field(default_factory=tuple)


class Tracking(pulumi.ComponentResource):
    """MLflow: a server (Deployment, Service, SQLite database on a volume, artifacts in S3) or a reference to one.

    Attributes:
        url: Tracking URI reachable from the namespace's pods.
    """

    url: pulumi.Output[str]

    def __init__(self, name: str, args: TrackingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfops:platform:Tracking", name, None, opts)
        child = child_options(self, opts)
        if args.mode == "external":
            self.url = pulumi.Output.from_input(str(args.external_url))
        else:
            self.url = self._deploy(name, args, child)

        k8s.core.v1.ConfigMap(
            f"{name}-settings", metadata=object_meta(MLFLOW_CONFIG_MAP, args.namespace, _COMPONENT),
            data={"MLFLOW_TRACKING_URI": self.url, "MLFLOW_S3_ENDPOINT_URL": args.s3_endpoint}, opts=child)
        self.register_outputs({"url": self.url})

    def _deploy(self, name: str, args: TrackingArgs, child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        selector = {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/instance": SERVER_NAME}
        pod_labels = labels(_COMPONENT, selector)
        database = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-database", metadata=object_meta(SERVER_NAME, args.namespace, _COMPONENT),
            spec={"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": args.storage}}},
            opts=child)
        namespace = pulumi.Output.from_input(args.namespace)
        url = namespace.apply(lambda ns: in_cluster_url(SERVER_NAME, ns, SERVER_PORT))
        # MLflow 3 refuses Host headers it does not list: pods call it by its Service's names, users and the nightly
        # job through a port-forward (loopback, any local port).
        hosts = namespace.apply(lambda ns: allowed_hosts(
            [SERVER_NAME, f"{SERVER_NAME}.{ns}", f"{SERVER_NAME}.{ns}.svc", f"{SERVER_NAME}.{ns}.svc.cluster.local"],
            SERVER_PORT, forwarded=True))
        command = [
            "mlflow", "server", "--host", "0.0.0.0", "--port", str(SERVER_PORT),  # noqa: S104 - a pod's own address
            "--backend-store-uri", f"sqlite:///{_DATA_DIR}/mlflow.db",
            # Clients write artifacts straight to S3, so registered model sources are s3:// URIs Seldon can download.
            "--default-artifact-root", MLFLOW_ARTIFACT_ROOT, "--no-serve-artifacts",
            "--allowed-hosts", hosts,
            # One worker: SQLite allows one writer.
            "--workers", "1",
        ]
        env = [*s3_secret_env(), {"name": "MLFLOW_S3_ENDPOINT_URL", "value": args.s3_endpoint},
               *({"name": name, "value": value} for name, value in SERVER_ENV.items())]
        probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10}
        k8s.apps.v1.Deployment(
            f"{name}-server", metadata=object_meta(SERVER_NAME, args.namespace, _COMPONENT),
            spec={
                "replicas": 1,
                # Recreate: two servers must never hold the SQLite file at once.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        # The database volume is group-writable by the image's user: a volume usually comes
                        # root-owned, and MLflow (uid 1000) must create its SQLite file there.
                        "securityContext": restricted_pod(PROJECT_IMAGE_USER, PROJECT_IMAGE_USER, PROJECT_IMAGE_USER),
                        "containers": [{
                            "name": "mlflow", "image": args.image, "command": command, "env": env,
                            "ports": [{"name": "http", "containerPort": SERVER_PORT}],
                            # The first start creates the database schema: the start-up probe gives it 5 minutes
                            # on a busy node before liveness counts.
                            "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 60},
                            "readinessProbe": probe,
                            "livenessProbe": probe,
                            "volumeMounts": [{"name": "database", "mountPath": _DATA_DIR}],
                            "securityContext": restricted_container(),
                        }],
                        "volumes": [{"name": "database",
                                     "persistentVolumeClaim": {"claimName": database.metadata.apply(
                                         lambda meta: meta["name"])}}],
                    },
                },
            },
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(args.secrets))))
        k8s.core.v1.Service(
            f"{name}-service", metadata=object_meta(SERVER_NAME, args.namespace, _COMPONENT),
            spec={"selector": selector, "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": "http"}]},
            opts=child)
        return url
