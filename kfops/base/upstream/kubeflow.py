"""Kubeflow's own manifests kfops relies on: the PodDefault admission webhook and the Profile controller's labels.

Read at tag v1.10.0 of kubeflow/manifests. At that tag the tree is ``apps/``; ``applications/`` only appears at
v1.10.2 (commit eaf59baa, "Moved from Apps to Applications"), and the webhook is the same in both.
"""

from __future__ import annotations

from typing import Final

from kfops.base.upstream import Fact, Service, Source

REPO: Final = "kubeflow/manifests"
VERSION: Final = "v1.10.0"


def _at(path: str, lines: str = "") -> Source:
    return Source(REPO, VERSION, path, lines)


#: The PodDefault webhook with cert-manager certificates (CRD, Deployment, Service, webhook configuration, Issuer,
#: Certificate); it creates no Namespace: ``kubeflow`` must exist.
PODDEFAULT_WEBHOOK: Final = Fact("apps/admission-webhook/upstream/overlays/cert-manager",
                                 _at("apps/admission-webhook/upstream/overlays/cert-manager/kustomization.yaml",
                                     "7-25"))
#: The webhook mutates pods only in namespaces with this label, with ``failurePolicy: Fail`` and no objectSelector:
#: labelling the webhook's own namespace (``kubeflow``) would put its own pods behind it.
PODDEFAULT_NAMESPACE_LABEL: Final = Fact({"app.kubernetes.io/part-of": "kubeflow-profile"},
                                         _at("apps/admission-webhook/upstream/base/"
                                             "mutating-webhook-configuration.yaml", "15-19"))
PODDEFAULT_NAMESPACE: Final = "kubeflow"
PODDEFAULT_SERVICE: Final = Service("admission-webhook-service", PODDEFAULT_NAMESPACE, 443,
                                    _at("apps/admission-webhook/upstream/base/service.yaml"))
#: Labels the Profile controller gives a profile's namespace (istio-injection is added by its code).
PROFILE_NAMESPACE_LABELS: Final = Fact({
    "katib.kubeflow.org/metrics-collector-injection": "enabled",
    "serving.kubeflow.org/inferenceservice": "enabled",
    "pipelines.kubeflow.org/enabled": "true",
    "app.kubernetes.io/part-of": "kubeflow-profile",
}, _at("apps/profiles/upstream/base/namespace-labels.yaml", "15-18"))
