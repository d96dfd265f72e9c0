from __future__ import annotations

import pytest

from infra.cluster.render import Rendering, record
from infra.cluster.validate import validate_all
from infra.cluster.workspace import (
    KATIB_INJECTION_LABEL,
    PODDEFAULT_WEBHOOK_LABEL,
    Workspace,
    WorkspaceArgs,
    namespace_labels,
)
from kfops.base.contract import PIPELINE_SERVICE_ACCOUNT, S3_SECRET_NAME, SELDON_S3_SECRET_NAME

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
    rendering = build(WorkspaceArgs(namespace="kubeflow", mode="existing"))
    assert rendering.of_type("kubernetes:core/v1:Namespace") == []
    [patch] = rendering.of_type("kubernetes:core/v1:NamespacePatch")
    assert patch.manifest()["metadata"]["labels"] == namespace_labels(False)


def test_profile_mode_creates_a_cluster_scoped_profile_owned_by_the_user() -> None:
    rendering = build(WorkspaceArgs(namespace="team-ml", mode="profile", profile_owner="alice@example.com"))
    profile = rendering.find("Profile", "team-ml")
    assert "namespace" not in profile["metadata"]
    assert profile["spec"]["owner"] == {"kind": "User", "name": "alice@example.com"}
    assert rendering.of_type("kubernetes:core/v1:Namespace") == []
    assert rendering.find("ServiceAccount", PIPELINE_SERVICE_ACCOUNT)["metadata"]["namespace"] == "team-ml"


def test_runner_role_grants_only_what_the_steps_do() -> None:
    role = build(WorkspaceArgs(namespace="team-ml")).find("Role", PIPELINE_SERVICE_ACCOUNT)
    grants = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
              for resource in rule["resources"] for verb in rule["verbs"]}
    assert grants == {
        *(("kubeflow.org", "experiments", verb) for verb in ("create", "get", "list", "watch")),
        *(("kubeflow.org", "trials", verb) for verb in ("get", "list", "watch")),
        ("", "secrets", "get"),
        *(("argoproj.io", "workflowtaskresults", verb) for verb in ("create", "patch")),
    }
    [secrets_rule] = [rule for rule in role["rules"] if rule["resources"] == ["secrets"]]
    assert sorted(secrets_rule["resourceNames"]) == sorted([S3_SECRET_NAME, SELDON_S3_SECRET_NAME])


def test_role_is_bound_to_the_runner_in_its_namespace() -> None:
    binding = build(WorkspaceArgs(namespace="team-ml")).find("RoleBinding", PIPELINE_SERVICE_ACCOUNT)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": PIPELINE_SERVICE_ACCOUNT}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": PIPELINE_SERVICE_ACCOUNT,
                                    "namespace": "team-ml"}]


@pytest.mark.parametrize("mode", ["namespace", "existing", "profile"])
def test_every_object_is_valid(mode: str) -> None:
    validate_all(build(WorkspaceArgs(namespace="team-ml", mode=mode, profile_owner="alice@example.com")).manifests())
