"""The kfops Pulumi program: the Kubeflow environment of the workflow, and the compiled workflow itself.

Reads the stack config into one settings object, wires the components, exports. ``pulumi up --stack kind`` runs it
for real; ``kfops render`` runs it under Pulumi's mock runtime.

Order, where it matters: the namespace and the object store's Secrets first (KFP's own pods read the Secret when they
start), then the platform when the stack installs it, then everything that needs it working (the PodDefault CRD,
the object store for the buckets, KFP's webhook for the pipeline).
"""

import pulumi

from infra.cluster.object_store import Buckets, BucketsArgs, ObjectStoreAccess, ObjectStoreAccessArgs
from infra.cluster.platform import BUNDLED_S3_ENDPOINT, KFP_NAMESPACE, Platform, PlatformArgs, combined
from infra.cluster.poddefaults import PodDefaults, PodDefaultsArgs
from infra.cluster.serving_config import ServingConfig, ServingConfigArgs
from infra.cluster.settings import StackSettings
from infra.cluster.tracking import Tracking, TrackingArgs
from infra.cluster.workflow import Workflow, WorkflowArgs
from infra.cluster.workspace import Workspace, WorkspaceArgs
from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT
from pipelines.compile import compile_workflow

settings = StackSettings.from_pulumi()
# Settings guarantee an explicit endpoint unless the platform (and its bundled store) is installed here.
s3_endpoint = settings.s3_endpoint or BUNDLED_S3_ENDPOINT

workspace = Workspace("workspace", WorkspaceArgs(
    namespace=settings.namespace, mode=settings.workspace_mode, istio_injection=settings.istio_injection,
    profile_owner=settings.profile_owner, platform=settings.install_platform))

store = ObjectStoreAccess("object-store", ObjectStoreAccessArgs(
    namespace=workspace.namespace, endpoint=s3_endpoint, credentials=settings.credentials, region=settings.s3_region,
    rclone_provider=settings.s3_rclone_provider))

platform_ready: list[pulumi.Resource] | pulumi.Output[list[pulumi.Resource]] = []
if settings.install_platform:
    platform = Platform("platform", PlatformArgs(
        settings.seldon_version, settings.istio_injection, prerequisites=[workspace.resource, *store.secrets],
        # KFP runs execute in its namespace: where the workflow's namespace is that one, its runner is the default.
        run_service_account=PIPELINE_SERVICE_ACCOUNT if settings.namespace == KFP_NAMESPACE else None))
    platform_ready = platform.ready
after_platform = pulumi.ResourceOptions(depends_on=platform_ready)

buckets: pulumi.Input[list[str]] = []
if settings.create_buckets:
    # The Job reads the Secret and the ConfigMap of the store, and needs the store itself up.
    buckets = Buckets("buckets", BucketsArgs(namespace=workspace.namespace), pulumi.ResourceOptions(
        depends_on=combined(store.resources, platform_ready))).buckets

tracking = Tracking("tracking", TrackingArgs(
    namespace=workspace.namespace, s3_endpoint=s3_endpoint, mode=settings.mlflow_mode,
    external_url=settings.mlflow_url, storage=settings.mlflow_storage, secrets=store.secrets), after_platform)

PodDefaults("poddefaults", PodDefaultsArgs(namespace=workspace.namespace, s3_endpoint=s3_endpoint,
                                           mlflow_url=tracking.url), after_platform)

serving = ServingConfig("serving", ServingConfigArgs(
    namespace=workspace.namespace, seldon_version=settings.seldon_version,
    deployment_name=settings.serving_deployment, predictor_name=settings.serving_predictor))

workflow = Workflow("workflow", WorkflowArgs(
    pipeline_spec_yaml=compile_workflow(), namespace=workspace.namespace, mode=settings.kfp_mode,
    api_url=settings.kfp_api_url, recurring_schedule=settings.recurring_schedule,
    recurring_experiment=settings.recurring_experiment, service_account=workspace.service_account),
    pulumi.ResourceOptions(depends_on=combined([*store.resources, tracking, serving], platform_ready)))

pulumi.export("namespace", workspace.namespace)
pulumi.export("serviceAccount", workspace.service_account)
pulumi.export("s3Endpoint", store.endpoint)
pulumi.export("s3AccessKey", store.access_key)
pulumi.export("s3SecretKey", store.secret_key)
pulumi.export("buckets", buckets)
pulumi.export("mlflowUrl", tracking.url)
pulumi.export("pipelineName", workflow.pipeline_name)
pulumi.export("pipelineVersion", workflow.version_name)
pulumi.export("pipelineId", workflow.pipeline_id)
pulumi.export("pipelineVersionId", workflow.version_id)
pulumi.export("seldonVersion", serving.seldon_version)
pulumi.export("seldonEndpoint", serving.endpoint)
pulumi.export("seldonPortForward", workspace.namespace.apply(
    lambda ns: f"kubectl -n {ns} port-forward svc/{settings.serving_deployment}-{settings.serving_predictor} 8000"))
