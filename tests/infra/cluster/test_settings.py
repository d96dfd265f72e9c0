from __future__ import annotations

import pytest

from infra.cluster.settings import SECRET_KEYS, StackSettings
from infra.cluster.stack_config import load_stack_config
from kfops.base.errors import KfopsError

from .conftest import CLUSTER_CONFIG, CLUSTER_SECRETS

pytestmark = pytest.mark.unit

KIND = {"kfops:installPlatform": "true", "kfops:namespace": "kubeflow"}


def settings(changes: dict[str, str | None], base: dict[str, str] = CLUSTER_CONFIG,
             secret_keys: tuple[str, ...] = CLUSTER_SECRETS) -> StackSettings:
    config = {key: value for key, value in {**base, **changes}.items() if value is not None}
    return StackSettings.from_config(config, secret_keys)


def test_a_cluster_stack_gets_documented_defaults() -> None:
    built = settings({})
    assert built.namespace == "team-ml"
    assert built.workspace_mode == "namespace"
    assert built.kfp_mode == "kubernetes"
    assert built.mlflow_mode == "deploy"
    assert built.seldon_version == "1.17.1"
    assert built.credentials is not None


def test_values_arrive_as_strings_and_are_typed() -> None:
    built = settings({"kfops:istioInjection": "true", "kfops:createBuckets": "false"})
    assert built.istio_injection is True
    assert built.create_buckets is False


def test_a_kind_stack_may_generate_credentials() -> None:
    built = StackSettings.from_config(KIND)
    assert built.credentials is None
    assert built.s3_endpoint is None


def test_other_namespaces_are_not_ours() -> None:
    assert settings({"kubernetes:context": "x", "pulumi:template": "y"}).namespace == "team-ml"


def test_credentials_never_show_in_repr() -> None:
    built = settings({})
    assert CLUSTER_CONFIG["kfops:s3SecretKey"] not in repr(built)
    assert CLUSTER_CONFIG["kfops:s3AccessKey"] not in repr(built.credentials)


def test_every_key_is_documented_where_it_is_defined() -> None:
    undocumented = [name for name, field in StackSettings.model_fields.items() if not field.description]
    assert undocumented == []


@pytest.mark.parametrize(
    ("case", "changes", "secret_keys", "named", "says"),
    [
        ("typo in a key", {"kfops:namepsace": "x"}, CLUSTER_SECRETS, "kfops:namepsace", "did you mean kfops:namespace"),
        ("not a DNS label", {"kfops:namespace": "Team_ML"}, CLUSTER_SECRETS, "kfops:namespace", "pattern"),
        ("unknown mode", {"kfops:workspaceMode": "cluster"}, CLUSTER_SECRETS, "kfops:workspaceMode", "namespace"),
        ("profile without owner", {"kfops:workspaceMode": "profile"}, CLUSTER_SECRETS, "kfops:profileOwner",
         "required"),
        ("external MLflow without URL", {"kfops:mlflowMode": "external"}, CLUSTER_SECRETS, "kfops:mlflowUrl",
         "required"),
        ("URL for a deployed MLflow", {"kfops:mlflowUrl": "http://mlflow:5000"}, CLUSTER_SECRETS, "kfops:mlflowUrl",
         "only used"),
        ("not an http URL", {"kfops:mlflowMode": "external", "kfops:mlflowUrl": "ftp://mlflow"}, CLUSTER_SECRETS,
         "kfops:mlflowUrl", "http"),
        ("API mode without API", {"kfops:kfpMode": "api"}, CLUSTER_SECRETS, "kfops:kfpApiUrl", "required"),
        ("recurring run without API", {"kfops:recurringSchedule": "0 0 3 * * *"}, CLUSTER_SECRETS,
         "kfops:kfpApiUrl", "recurring"),
        ("five-field cron", {"kfops:kfpApiUrl": "http://localhost:8888", "kfops:recurringSchedule": "0 3 * * *"},
         CLUSTER_SECRETS, "kfops:recurringSchedule", "six fields"),
        ("platform outside kubeflow", {"kfops:installPlatform": "true"}, CLUSTER_SECRETS, "kfops:namespace",
         "must be kubeflow"),
        ("platform into an existing namespace", {**KIND, "kfops:workspaceMode": "existing"}, CLUSTER_SECRETS,
         "kfops:workspaceMode", "the stack creates the namespace"),
        ("not a boolean", {"kfops:installPlatform": "maybe"}, CLUSTER_SECRETS, "kfops:installPlatform", "bool"),
        ("not a Seldon release", {"kfops:seldonVersion": "latest"}, CLUSTER_SECRETS, "kfops:seldonVersion",
         "release number"),
        ("credential set in plain text", {}, ("kfops:s3SecretKey",), "kfops:s3AccessKey", "--secret"),
        ("half a key pair", {"kfops:s3SecretKey": None}, ("kfops:s3AccessKey",), "kfops:s3SecretKey", "together"),
        ("no key pair and no store", {"kfops:s3AccessKey": None, "kfops:s3SecretKey": None}, (),
         "kfops:s3AccessKey", "generate"),
        ("no endpoint and no store", {"kfops:s3Endpoint": None}, CLUSTER_SECRETS, "kfops:s3Endpoint", "required"),
        ("volume size", {"kfops:mlflowStorage": "5 GB"}, CLUSTER_SECRETS, "kfops:mlflowStorage", "pattern"),
    ],
)
def test_bad_config_names_the_key(case: str, changes: dict[str, str | None], secret_keys: tuple[str, ...],
                                  named: str, says: str) -> None:
    with pytest.raises(KfopsError) as caught:
        settings(changes, secret_keys=secret_keys)
    message = str(caught.value)
    assert named in message, case
    assert says in message, case
    assert caught.value.step == "pulumi config"
    assert "pulumi config" in caught.value.fix


@pytest.mark.parametrize("stack", ["kind", "example"])
def test_the_checked_in_stacks_are_valid(stack: str) -> None:
    _project, config, secret_keys = load_stack_config(stack)
    built = StackSettings.from_config(config, secret_keys)
    assert built.namespace
    assert all(f"kfops:{key}" in secret_keys for key in SECRET_KEYS if f"kfops:{key}" in config)
