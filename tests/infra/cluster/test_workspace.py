from __future__ import annotations

import pytest

from infra.cluster.mock_runtime import Rendering, record
from infra.cluster.validate import validate_all
from infra.cluster.workspace import (
    KATIB_INJECTION_LABEL,
    PODDEFAULT_WEBHOOK_LABEL,
    Workspace,
    WorkspaceArgs,
    namespace_labels,
)
from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT
from kfops.base.upstream import katib, kfp, kubeflow

pytestmark = pytest.mark.unit


def build(args: WorkspaceArgs) -> Rendering:
    return record(lambda: Workspace("workspace", args))


@pytest.mark.parametrize("istio", [True, False])
def test_namespace_has_the_labels_kubeflow_acts_on(istio: bool) -> None:
    rendering = build(WorkspaceArgs(namespace="team-ml", istio_injection=istio))
    labels = rendering.find("Namespace", "team-ml")["metadata"]["labels"]
    assert labels.items() >= KATIB_INJECTION_LABEL.items()
    assert labels.items() >= PODDEFAULT_WEBHOOK_LABEL.items()
    assert labels["istio-injection"] == ("enabled" if istio else "disabled")


def test_existing_namespace_is_patched_not_created() -> None:
    rendering = build(WorkspaceArgs(namespace="team-ml", mode="existing"))
    assert rendering.of_type("kubernetes:core/v1:Namespace") == []
    [patch] = rendering.of_type("kubernetes:core/v1:NamespacePatch")
    assert patch.manifest()["metadata"]["labels"] == namespace_labels("team-ml", False)


def test_the_poddefault_webhooks_own_namespace_is_never_put_behind_it() -> None:
    # The webhook runs in kubeflow with failurePolicy Fail: with its label there, its own pods could not be created
    # while it is down (kubeflow/kubeflow#4808).
    labels = build(WorkspaceArgs(namespace=kubeflow.PODDEFAULT_NAMESPACE, platform=True)).find(
        "Namespace", kubeflow.PODDEFAULT_NAMESPACE)["metadata"]["labels"]
    assert not labels.items() >= PODDEFAULT_WEBHOOK_LABEL.items()
    assert labels.items() >= KATIB_INJECTION_LABEL.items()
    assert labels.items() >= kfp.NAMESPACE_LABELS.value.items(), "the labels KFP's own Namespace object carries"


def test_profile_mode_creates_a_cluster_scoped_profile_owned_by_the_user() -> None:
    rendering = build(WorkspaceArgs(namespace="team-ml", mode="profile", profile_owner="alice@example.com"))
    profile = rendering.find("Profile", "team-ml")
    assert "namespace" not in profile["metadata"]
    assert profile["spec"]["owner"] == {"kind": "User", "name": "alice@example.com"}
    assert rendering.of_type("kubernetes:core/v1:Namespace") == []
    assert rendering.find("ServiceAccount", PIPELINE_SERVICE_ACCOUNT)["metadata"]["namespace"] == "team-ml"


def test_runner_role_grants_what_kfp_and_katib_do_as_the_runner_and_nothing_else() -> None:
    role = build(WorkspaceArgs(namespace="team-ml")).find("Role", PIPELINE_SERVICE_ACCOUNT)
    grants = {(group, resource, verb, name) for rule in role["rules"] for group in rule["apiGroups"]
              for resource in rule["resources"] for verb in rule["verbs"]
              for name in (rule.get("resourceNames") or [None])}
    needed = {(g.api_group, g.resource, g.verb, g.resource_name) for g in (*kfp.RUNNER_GRANTS, *katib.CLIENT_GRANTS)}
    assert grants == needed
    # KFP 2.17's root driver reads kfp-launcher and fails the run on anything but NotFound (Forbidden included).
    assert ("", "configmaps", "get", "kfp-launcher") in grants


def test_role_is_bound_to_the_runner_in_its_namespace() -> None:
    binding = build(WorkspaceArgs(namespace="team-ml")).find("RoleBinding", PIPELINE_SERVICE_ACCOUNT)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": PIPELINE_SERVICE_ACCOUNT}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": PIPELINE_SERVICE_ACCOUNT,
                                    "namespace": "team-ml"}]


@pytest.mark.parametrize("mode", ["namespace", "existing", "profile"])
def test_every_object_is_valid(mode: str) -> None:
    validate_all(build(WorkspaceArgs(namespace="team-ml", mode=mode, profile_owner="alice@example.com")).manifests())
