"""Names the cluster resources and the workflow must agree on.

The Pulumi program creates Secrets and PodDefaults with these names and selectors; the pipeline mounts the secrets
and labels its pods so that the PodDefaults apply; the deploy step references the Seldon secret. Defining them once
here is what keeps the two sides from drifting apart.
"""

from __future__ import annotations

from typing import Final

#: Image every pipeline step, Katib trial and the v1 serving container run on a cluster (built from
#: ``trainer/Dockerfile``; tags are pinned, never ``latest``).
PROJECT_IMAGE: Final = "ghcr.io/kfops/kfops:0.1.0"
#: The user (and group) the project image runs as (``USER`` of ``trainer/Dockerfile``).
PROJECT_IMAGE_USER: Final = 1000

#: Image of the Seldon (v1) protocol server: the seldon-core wrapper around the model (``serving/Dockerfile``).
SERVING_V1_IMAGE: Final = "ghcr.io/kfops/kfops-serving-v1:0.1.0"

#: Secret KFP's own artifact store uses (the name and keys Kubeflow's manifests define).
S3_SECRET_NAME: Final = "mlpipeline-minio-artifact"
S3_ACCESS_KEY_KEY: Final = "accesskey"
S3_SECRET_KEY_KEY: Final = "secretkey"
#: How the secret's keys reach a step's environment (names boto3 and MLflow read).
S3_SECRET_ENV: Final = {"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY_KEY}

#: ConfigMap with the object store's endpoint and region; every step and trial gets its keys as environment variables
#: (names boto3 reads).
S3_CONFIG_MAP: Final = "kfops-s3"
S3_CONFIG_KEYS: Final = ("AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION")
#: ConfigMap with the MLflow tracking server and its artifact store; every step gets its keys as environment variables.
MLFLOW_CONFIG_MAP: Final = "kfops-mlflow"
MLFLOW_CONFIG_KEYS: Final = ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL")

#: PodDefaults for the namespace's other pods (notebooks, the tutorials' pattern): ``access-minio`` injects S3
#: credentials and ``MINIO_ENDPOINT_URL``, ``mlflow-server-minio`` the MLflow variables, into pods labelled
#: ``<name>: "true"``. The workflow's own pods do not rely on them (they read the Secret and the ConfigMaps above),
#: so a run never depends on the PodDefault webhook.
ACCESS_MINIO_PODDEFAULT: Final = "access-minio"
MLFLOW_PODDEFAULT: Final = "mlflow-server-minio"
POD_LABELS: Final = {ACCESS_MINIO_PODDEFAULT: "true", MLFLOW_PODDEFAULT: "true"}

#: Secret with ``RCLONE_CONFIG_S3_*`` keys that Seldon Core's storage initializer uses to download models from S3
#: (referenced by ``envSecretRefName`` in the SeldonDeployment).
SELDON_S3_SECRET_NAME: Final = "kfops-seldon-s3"

#: ServiceAccount pipeline runs use; its Role grants only what the workflow does in its namespace.
PIPELINE_SERVICE_ACCOUNT: Final = "kfops-pipeline-runner"

#: Bucket of the cleaned datasets (content-addressed keys, see the store step).
DATASETS_BUCKET: Final = "datasets"
#: Buckets the workflow writes to: KFP artifacts, MLflow artifacts, ingested datasets.
BUCKETS: Final = ("mlpipeline", "mlflow", DATASETS_BUCKET)

#: Where MLflow stores run and model artifacts (locally and on a cluster).
MLFLOW_ARTIFACT_ROOT: Final = "s3://mlflow/artifacts"

#: Default names of the SeldonDeployment the deploy step creates and of its predictor (the Pulumi stack's
#: ``kfops:servingDeployment`` / ``kfops:servingPredictor`` settings default to these).
SELDON_DEPLOYMENT_NAME: Final = "kfops-model"
SELDON_PREDICTOR_NAME: Final = "default"

#: ConfigMap with the Seldon settings the deploy step reads (written by the Pulumi program's ServingConfig).
SERVING_CONFIG_MAP: Final = "kfops-serving"
#: Its keys; the deploy step receives each as an environment variable of the same name.
SERVING_CONFIG_KEYS: Final = ("SELDON_CORE_VERSION", "SELDON_ENV_SECRET_REF_NAME", "SELDON_DEPLOYMENT_NAME",
                              "SELDON_PREDICTOR_NAME")

#: Name of the pipeline as deployed (Pipeline object / KFP pipeline name).
PIPELINE_NAME: Final = "kfops-train-and-serve"

#: What the deploy step does with SeldonDeployments in its namespace (create, update and remove them to swap models):
#: the Pulumi program grants exactly these verbs, and ``kfops doctor`` checks them.
SELDON_DEPLOYER_VERBS: Final = ("create", "get", "list", "watch", "update", "patch", "delete")
#: What the deploy step reads of the model pods: a roll-out is done once the new version's pods are ready (Seldon's
#: own status can still say Available for the previous spec's pods).
SELDON_DEPLOYER_POD_VERBS: Final = ("get", "list")
