"""The kfops Pulumi program: the Kubeflow environment of the workflow, and the compiled workflow itself.

Reads the stack config into one settings object, wires the components, exports. ``pulumi up --stack kind`` runs it
for real; ``kfops render`` runs it under Pulumi's mock runtime.
"""

import pulumi

from infra.cluster.object_store import ObjectStoreAccess, ObjectStoreAccessArgs
from infra.cluster.platform import BUNDLED_S3_ENDPOINT, Platform, PlatformArgs
from infra.cluster.serving_config import ServingConfig, ServingConfigArgs
from infra.cluster.settings import StackSettings
from infra.cluster.tracking import Tracking, TrackingArgs
from infra.cluster.workflow import Workflow, WorkflowArgs
from infra.cluster.workspace import Workspace, WorkspaceArgs
from pipelines.compile import compile_workflow

settings = StackSettings.from_pulumi()

after_platform = pulumi.ResourceOptions()
if settings.install_platform:
    platform = Platform("platform", PlatformArgs(settings.seldon_version, settings.istio_injection))
    after_platform = pulumi.ResourceOptions(depends_on=[platform])
# Settings guarantee an explicit endpoint unless the platform (and its bundled store) is installed here.
s3_endpoint = settings.s3_endpoint or BUNDLED_S3_ENDPOINT

workspace = Workspace("workspace", WorkspaceArgs(
    namespace=settings.namespace, mode=settings.workspace_mode, istio_injection=settings.istio_injection,
    profile_owner=settings.profile_owner), after_platform)

store = ObjectStoreAccess("object-store", ObjectStoreAccessArgs(
    namespace=workspace.namespace, endpoint=s3_endpoint, credentials=settings.credentials, region=settings.s3_region,
    rclone_provider=settings.s3_rclone_provider, create_buckets=settings.create_buckets), after_platform)

tracking = Tracking("tracking", TrackingArgs(
    namespace=workspace.namespace, s3_endpoint=s3_endpoint, mode=settings.mlflow_mode,
    external_url=settings.mlflow_url, storage=settings.mlflow_storage, secrets=store.secrets))

serving = ServingConfig("serving", ServingConfigArgs(
    namespace=workspace.namespace, seldon_version=settings.seldon_version,
    deployment_name=settings.serving_deployment, predictor_name=settings.serving_predictor))

workflow = Workflow("workflow", WorkflowArgs(
    pipeline_spec_yaml=compile_workflow(), namespace=workspace.namespace, mode=settings.kfp_mode,
    api_url=settings.kfp_api_url, recurring_schedule=settings.recurring_schedule,
    recurring_experiment=settings.recurring_experiment, service_account=workspace.service_account),
    pulumi.ResourceOptions(depends_on=[store, tracking, serving]))

pulumi.export("namespace", workspace.namespace)
pulumi.export("serviceAccount", workspace.service_account)
pulumi.export("s3Endpoint", store.endpoint)
pulumi.export("buckets", store.buckets)
pulumi.export("s3AccessKey", store.access_key)
pulumi.export("s3SecretKey", store.secret_key)
pulumi.export("mlflowUrl", tracking.url)
pulumi.export("pipelineName", workflow.pipeline_name)
pulumi.export("pipelineVersion", workflow.version_name)
pulumi.export("pipelineId", workflow.pipeline_id)
pulumi.export("pipelineVersionId", workflow.version_id)
pulumi.export("seldonVersion", serving.seldon_version)
pulumi.export("seldonEndpoint", serving.endpoint)
pulumi.export("seldonPortForward", workspace.namespace.apply(
    lambda ns: f"kubectl -n {ns} port-forward svc/{settings.serving_deployment}-{settings.serving_predictor} 8000"))
