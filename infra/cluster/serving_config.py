"""ServingConfig: what the workflow's deploy step needs to serve a model with Seldon Core (v1) in its namespace."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.cluster.meta import child_options, in_cluster_url, object_meta
from infra.cluster.workspace import bind_to_runner
from kfops.base.contract import (
    SELDON_DEPLOYER_POD_VERBS,
    SELDON_DEPLOYER_VERBS,
    SELDON_DEPLOYMENT_NAME,
    SELDON_PREDICTOR_NAME,
    SELDON_S3_SECRET_NAME,
    SERVING_CONFIG_MAP,
)
from kfops.base.seldon_versions import DEFAULT_SELDON_CORE_VERSION, license_warning
from kfops.base.upstream import seldon

_COMPONENT = "serving"
#: ConfigMap the deploy step reads its Seldon settings from.
CONFIG_MAP_NAME = SERVING_CONFIG_MAP
#: Port of the Seldon service (executor) in front of a predictor: REST here, gRPC on 5001.
SELDON_HTTP_PORT = seldon.PREDICTOR_SERVICE_PORT.value
#: The deploy step creates, updates and removes SeldonDeployments (to swap models); nothing else in serving.
SERVING_RULES = (
    k8s.rbac.v1.PolicyRuleArgs(api_groups=["machinelearning.seldon.io"], resources=["seldondeployments"],
                               verbs=list(SELDON_DEPLOYER_VERBS)),
    k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods"], verbs=list(SELDON_DEPLOYER_POD_VERBS)),
)


@dataclass(frozen=True)
class ServingConfigArgs:
    """Inputs of :class:`ServingConfig`.

    Attributes:
        namespace: Namespace the model is served in (the workflow's).
        seldon_version: Seldon Core operator version installed on the cluster.
        deployment_name: Name of the SeldonDeployment the deploy step creates.
        predictor_name: Name of its predictor.
    """

    namespace: pulumi.Input[str]
    seldon_version: str = DEFAULT_SELDON_CORE_VERSION
    deployment_name: str = SELDON_DEPLOYMENT_NAME
    predictor_name: str = SELDON_PREDICTOR_NAME


class ServingConfig(pulumi.ComponentResource):
    """The deploy step's settings (ConfigMap) and its permission to manage SeldonDeployments (Role, RoleBinding).

    Attributes:
        endpoint: In-cluster base URL of the served model (Seldon protocol under ``/api/v1.0/predictions``, Open
            Inference protocol under ``/v2/models/...``).
        seldon_version: The Seldon Core version in use.
    """

    endpoint: pulumi.Output[str]
    seldon_version: pulumi.Output[str]

    def __init__(self, name: str, args: ServingConfigArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfops:platform:ServingConfig", name, None, opts)
        child = child_options(self, opts)
        warning = license_warning(args.seldon_version)
        if warning:
            pulumi.log.warn(warning, resource=self)

        k8s.core.v1.ConfigMap(
            f"{name}-settings", metadata=object_meta(CONFIG_MAP_NAME, args.namespace, _COMPONENT),
            data={
                "SELDON_CORE_VERSION": args.seldon_version,
                # Seldon's rclone storage initializer reads RCLONE_CONFIG_S3_* from this secret.
                "SELDON_ENV_SECRET_REF_NAME": SELDON_S3_SECRET_NAME,
                "SELDON_DEPLOYMENT_NAME": args.deployment_name,
                "SELDON_PREDICTOR_NAME": args.predictor_name,
            },
            opts=child)
        role = k8s.rbac.v1.Role(
            f"{name}-deployer", metadata=object_meta("kfops-seldon-deployer", args.namespace, _COMPONENT),
            rules=list(SERVING_RULES), opts=child)
        bind_to_runner(f"{name}-deployer", role, args.namespace, _COMPONENT, child)

        service = f"{args.deployment_name}-{args.predictor_name}"
        self.endpoint = pulumi.Output.from_input(args.namespace).apply(
            lambda ns: in_cluster_url(service, ns, SELDON_HTTP_PORT))
        self.seldon_version = pulumi.Output.from_input(args.seldon_version)
        self.register_outputs({"endpoint": self.endpoint, "seldon_version": self.seldon_version})
