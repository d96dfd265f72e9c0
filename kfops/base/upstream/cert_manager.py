"""cert-manager, which issues the certificates of KFP's and the PodDefault webhook's admission webhooks.

Read at tag v1.16.2 of cert-manager/cert-manager (the Helm chart kfops installs).
"""

from __future__ import annotations

from typing import Final

from kfops.base.upstream import Fact, Service, Source

REPO: Final = "cert-manager/cert-manager"
VERSION: Final = "v1.16.2"
#: The release name kfops gives the chart; the chart names its objects after it.
RELEASE: Final = "cert-manager"
NAMESPACE: Final = "cert-manager"


def _at(path: str, lines: str = "") -> Source:
    return Source(REPO, VERSION, path, lines)


CHART: Final = Fact(("cert-manager", "https://charts.jetstack.io"),
                    _at("deploy/charts/cert-manager/Chart.template.yaml"))
#: The chart value that installs the CRDs (``installCRDs`` is deprecated, and setting both fails the chart).
CRDS_VALUE: Final = Fact({"crds": {"enabled": True}}, _at("deploy/charts/cert-manager/values.yaml", "70-84"))
#: A post-install hook Job checks that the API and webhook accept cert-manager resources, so a Helm release that
#: waits for its hooks is done only once Issuers and Certificates can be created.
STARTUP_API_CHECK: Final = Fact(True, _at("deploy/charts/cert-manager/values.yaml", "1261-1263"))
#: The webhook (named after the release), its Service port, and its readiness endpoint (/healthz on 6080).
WEBHOOK: Final = Service(f"{RELEASE}-webhook", NAMESPACE, 443,
                         _at("deploy/charts/cert-manager/templates/webhook-service.yaml", "30-34"))
