"""Names the nightly job's parts share: the kind cluster, the Pulumi stack, the namespace, how kubectl is called."""

from __future__ import annotations

from collections.abc import Callable

from kfops.base.upstream import kfp

#: Cluster name: Pulumi.kind.yaml's ``kubernetes:context`` is ``kind-<name>``.
CLUSTER_NAME = "kfops"
STACK = "kind"
#: Where the kind stack installs KFP and runs the workflow.
NAMESPACE = kfp.NAMESPACE
#: Runs ``kubectl <args>`` against the cluster and returns its output.
Kubectl = Callable[..., str]
