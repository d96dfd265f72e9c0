"""Kubeflow Pipelines, as kfops installs it (Kubernetes-native, standalone) and runs the workflow on it.

Read at tag 2.17.0 of kubeflow/pipelines (a mirror of the repository, ``git show 2.17.0:<path>``). There is no 2.17.1
tag to read (the earlier pin named a release whose manifests could not be checked), and PyPI's kfp and
kfp-kubernetes go from 2.17.0 to 2.17.3 (``pip index versions kfp``): 2.17.0 is the release whose manifests and SDK
were both checked.
"""

from __future__ import annotations

from typing import Final

from kfops.base.upstream import Fact, Grant, Service, Source

REPO: Final = "kubeflow/pipelines"
#: The manifests' tag the facts below were read at (the platform installs these manifests).
VERSION: Final = "2.17.0"
#: The Python SDK releases the workflow is compiled with (kfp and kfp-kubernetes, both on PyPI).
SDK_VERSION: Final = "2.17.0"


def _at(path: str, lines: str = "") -> Source:
    return Source(REPO, VERSION, path, lines)


#: Applied first: the ``kubeflow`` Namespace, Argo's CRDs and KFP's ScheduledWorkflow and Viewer CRDs, the cache
#: deployer's ServiceAccount and cluster RBAC (which the Kubernetes-native env uses but does not contain). The
#: Pipeline and PipelineVersion CRDs come with :data:`K8S_NATIVE`.
CLUSTER_SCOPED: Final = Fact("manifests/kustomize/cluster-scoped-resources",
                             _at("manifests/kustomize/cluster-scoped-resources/kustomization.yaml", "4-19"))
#: KFP in Kubernetes-native mode with cert-manager certificates for its PipelineVersion webhook.
K8S_NATIVE: Final = Fact("manifests/kustomize/env/cert-manager/platform-agnostic-k8s-native",
                         _at("manifests/kustomize/env/cert-manager/platform-agnostic-k8s-native/kustomization.yaml",
                             "4-12"))
#: Where standalone KFP installs and where its runs execute.
NAMESPACE: Final = "kubeflow"
#: Labels KFP's own Namespace object carries (kfops creates the namespace before the install, with these).
NAMESPACE_LABELS: Final = Fact({"pod-security.kubernetes.io/enforce": "baseline",
                                "pod-security.kubernetes.io/warn": "restricted"},
                               _at("manifests/kustomize/cluster-scoped-resources/namespace.yaml", "1-7"))

#: The bundled object store: SeaweedFS's S3 gateway on the port KFP's own launcher and API server use
#: (``seaweedfs.kubeflow:9000``; ``minio-service`` was removed in 2.16.0, commit 5ef18b95dc).
OBJECT_STORE: Final = Service("seaweedfs", NAMESPACE, 9000,
                              _at("manifests/kustomize/third-party/seaweedfs/base/seaweedfs/seaweedfs-service.yaml",
                                  "18-21"))
#: The KFP API (REST on 8888, gRPC on 8887, the PipelineVersion webhook on 8443 in this mode).
API: Final = Service("ml-pipeline", NAMESPACE, 8888,
                     _at("manifests/kustomize/base/pipeline/ml-pipeline-apiserver-service.yaml"))
#: The KFP UI (port 80 to the pod's 3000).
UI: Final = Service("ml-pipeline-ui", NAMESPACE, 80,
                    _at("manifests/kustomize/base/pipeline/ml-pipeline-ui-service.yaml"))
#: Validating and mutating webhooks for PipelineVersions, served by ml-pipeline on 8443; only PipelineVersions (the
#: mutating one refuses a version unless a Pipeline of its pipelineName exists in the namespace:
#: backend/src/apiserver/webhook/pipelineversion_webhook.go#L61-84).
PIPELINE_VERSION_WEBHOOK: Final = Service(
    "ml-pipeline", NAMESPACE, 8443,
    _at("manifests/kustomize/base/webhook/pipelineversion-validating-webhook-config.yaml", "21-27"))
#: The webhook configurations' name (both kinds).
WEBHOOK_CONFIGURATION: Final = "pipelineversions.pipelines.kubeflow.org"

#: The S3 credentials Secret KFP's own pods read, and its keys.
ARTIFACT_SECRET: Final = Fact(("mlpipeline-minio-artifact", ("accesskey", "secretkey")),
                              _at("backend/src/v2/config/env.go", "36-45"))
#: Deployments of the install that read that Secret: they cannot start until it exists. ``seaweedfs`` registers its
#: keys as its S3 admin at start-up, so whoever creates the Secret chooses the store's credentials (and a change of
#: keys needs these restarted). Argo's run pods read it too, through the workflow controller's artifact repository.
ARTIFACT_SECRET_READERS: Final = Fact(("ml-pipeline", "ml-pipeline-ui", "seaweedfs"),
                                      _at("manifests/kustomize/third-party/seaweedfs/base/seaweedfs/"
                                          "seaweedfs-deployment.yaml", "29-32"))
#: The launcher configuration the root driver reads in the run's namespace (NotFound is fine, Forbidden fails the run).
LAUNCHER_CONFIG_MAP: Final = Fact("kfp-launcher", _at("backend/src/v2/config/env.go", "71-83"))
#: KFP's default run ServiceAccount (kfops runs under its own).
DEFAULT_RUNNER_SERVICE_ACCOUNT: Final = Fact("pipeline-runner", _at("backend/src/apiserver/common/const.go", "59"))
#: The API server's setting (an environment variable, through viper's AutomaticEnv: main.go#L627-628) that replaces
#: that default for runs which name no ServiceAccount, such as runs started from the UI.
RUNNER_ACCOUNT_SETTING: Final = Fact("DEFAULTPIPELINERUNNERSERVICEACCOUNT",
                                     _at("backend/src/apiserver/common/config.go", "32"))

#: What the driver, the launcher and Argo's executor do with the run's ServiceAccount, for the workflow kfops
#: compiles (no PVC steps, no schedule-time placeholders).
RUNNER_GRANTS: Final = (
    Grant("", "configmaps", "get", "the root driver reads the launcher config of the run's namespace",
          _at("backend/src/v2/driver/root_dag.go", "99-106"), resource_name="kfp-launcher"),
    Grant("", "secrets", "get", "the launcher opens the artifact store with this Secret's keys",
          _at("backend/src/v2/objectstore/object_store.go", "391-394"), resource_name="mlpipeline-minio-artifact"),
    Grant("argoproj.io", "workflowtaskresults", "create", "Argo's executor reports each step's outputs",
          _at("manifests/kustomize/base/pipeline/pipeline-runner-role.yaml", "81-87")),
    Grant("argoproj.io", "workflowtaskresults", "patch", "Argo's executor reports each step's outputs",
          _at("manifests/kustomize/base/pipeline/pipeline-runner-role.yaml", "81-87")),
)

#: Group and version of the Kubernetes-native pipeline objects.
PIPELINES_API: Final = Fact("pipelines.kubeflow.org/v2beta1",
                            _at("manifests/kustomize/base/crds/pipelines.kubeflow.org_pipelineversions.yaml"))
