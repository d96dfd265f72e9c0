"""The cluster target's one settings object, read from the Pulumi stack config (``Pulumi.<stack>.yaml``).

Every key lives in the ``kfops:`` namespace and is documented once, on its field below. Settings are validated when
the object is built, before any resource is declared: an unknown key (a typo), a bad value or a missing companion key
stops ``pulumi up`` with a message that names the key and how to set it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kfops.base.contract import SELDON_DEPLOYMENT_NAME, SELDON_PREDICTOR_NAME
from kfops.base.errors import KfopsError, in_step
from kfops.base.seldon_versions import DEFAULT_SELDON_CORE_VERSION, parse_version
from kfops.base.storage import DEFAULT_REGION, S3Credentials
from kfops.base.upstream.kfp import NAMESPACE as KFP_NAMESPACE

#: Config namespace of every key (the project name in ``Pulumi.yaml``).
CONFIG_NAMESPACE = "kfops"
#: Keys whose values are credentials: they must be set with ``pulumi config set --secret``.
SECRET_KEYS = ("s3AccessKey", "s3SecretKey")

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


def _key(name: str) -> str:
    return f"{CONFIG_NAMESPACE}:{name}"


def _config_error(name: str, problem: str, fix: str | None = None) -> KfopsError:
    return KfopsError(f"{_key(name)} {problem}", fix or f"pulumi config set {_key(name)} <value>")


class StackSettings(BaseModel):
    """Settings of one stack. Each field is the config key ``kfops:<camelCaseName>`` (e.g. ``kfops:s3Endpoint``)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True, use_attribute_docstrings=True
    )

    namespace: str = Field("kfops", pattern=_DNS_LABEL, max_length=63)
    """Namespace the workflow runs in: its secrets, PodDefaults, RBAC, MLflow and pipeline objects live here. With
    KFP in standalone mode this must be KFP's own namespace (``kubeflow``), where standalone runs execute."""

    workspace_mode: Literal["namespace", "profile", "existing"] = "namespace"
    """How the namespace comes to be: ``namespace`` creates it with the labels Kubeflow needs; ``profile`` creates a
    Kubeflow ``Profile`` and lets the profile controller create and label it; ``existing`` adds the labels to a
    namespace something else created (e.g. ``kubeflow`` after a standalone KFP install)."""

    profile_owner: str | None = None
    """User (as Kubeflow's identity provider names them, usually an e-mail) who owns the Profile; profile mode only."""

    istio_injection: bool = False
    """Whether Istio injects sidecars into the workflow's pods (``istio-injection`` namespace label). Kubeflow
    multi-user installs need it; a bare kind cluster has no Istio."""

    install_platform: bool = False
    """Install KFP, Katib, the PodDefault webhook, cert-manager and the Seldon Core operator from pinned upstream
    releases first (for a bare kind cluster). Also lets the stack generate the S3 credentials, because the object
    store it installs takes them from this stack."""

    s3_endpoint: str | None = None
    """In-cluster URL of the S3 object store (Kubeflow's bundled SeaweedFS:
    ``http://seaweedfs.kubeflow.svc.cluster.local:9000``). Required unless the stack installs the platform, whose
    bundled store is the default."""

    s3_region: str = Field(DEFAULT_REGION, min_length=1)
    """Region the S3 clients sign requests for; any value works for MinIO and SeaweedFS."""

    s3_rclone_provider: str = Field("Other", pattern=r"^[A-Za-z0-9]+$")
    """rclone ``provider`` of the store, used by Seldon's storage initializer (``Minio``, ``AWS``, ``Other``...)."""

    create_buckets: bool = True
    """Run a Job that creates the workflow's buckets (``mlpipeline``, ``mlflow``, ``datasets``) if they are missing."""

    mlflow_mode: Literal["deploy", "external"] = "deploy"
    """``deploy`` runs an MLflow tracking server in the namespace; ``external`` points the workflow at ``mlflowUrl``."""

    mlflow_url: str | None = None
    """URL of an existing MLflow tracking server reachable from the namespace; external mode only."""

    mlflow_storage: str = Field("5Gi", pattern=r"^[0-9]+(Mi|Gi|Ti)$")
    """Size of the volume holding the deployed MLflow server's SQLite database (runs and model registry)."""

    kfp_mode: Literal["kubernetes", "api"] = "kubernetes"
    """How the compiled workflow is deployed: ``kubernetes`` applies ``Pipeline``/``PipelineVersion`` objects (KFP >=
    2.14 in Kubernetes-native mode); ``api`` uploads it through the KFP REST API of an API-backed install."""

    kfp_api_url: str | None = None
    """KFP REST API base URL as reachable from the machine running ``pulumi up`` (e.g. ``http://localhost:8888``
    through ``kubectl -n kubeflow port-forward svc/ml-pipeline 8888``); needed for API mode and recurring runs. A
    bearer token, if the API needs one, comes from the ``KFOPS_KFP_TOKEN`` environment variable."""

    recurring_schedule: str | None = None
    """Optional KFP cron schedule (six fields, seconds first, e.g. ``0 0 3 * * *``) for a recurring run."""

    recurring_experiment: str = Field("kfops", min_length=1)
    """KFP experiment the recurring run belongs to (created if missing)."""

    seldon_version: str = DEFAULT_SELDON_CORE_VERSION
    """Seldon Core operator version (chart and storage initializer). Releases after 1.17.1 are BSL-licensed."""

    serving_deployment: str = Field(SELDON_DEPLOYMENT_NAME, pattern=_DNS_LABEL, max_length=40)
    """Name of the ``SeldonDeployment`` the deploy step creates; used to tell how to reach the endpoint."""

    serving_predictor: str = Field(SELDON_PREDICTOR_NAME, pattern=_DNS_LABEL, max_length=20)
    """Name of its predictor (part of the Seldon service name)."""

    credentials: S3Credentials | None = Field(None, exclude=True, repr=False)
    """Not a config key: the ``s3AccessKey``/``s3SecretKey`` secret pair, or None to generate one."""

    @field_validator("s3_endpoint", "mlflow_url", "kfp_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.match(value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("seldon_version")
    @classmethod
    def _release_number(cls, value: str) -> str:
        parse_version(value)
        return value

    @field_validator("recurring_schedule")
    @classmethod
    def _six_field_cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 6:
            raise ValueError("must have six fields (seconds first), the format KFP recurring runs use")
        return value

    @model_validator(mode="after")
    def _companions(self) -> StackSettings:
        requirements = [
            (self.workspace_mode == "profile" and not self.profile_owner, "profileOwner",
             "is required when kfops:workspaceMode is profile"),
            (self.mlflow_mode == "external" and not self.mlflow_url, "mlflowUrl",
             "is required when kfops:mlflowMode is external"),
            (self.mlflow_mode == "deploy" and self.mlflow_url is not None, "mlflowUrl",
             "is only used when kfops:mlflowMode is external"),
            (self.kfp_mode == "api" and not self.kfp_api_url, "kfpApiUrl", "is required when kfops:kfpMode is api"),
            (self.recurring_schedule is not None and not self.kfp_api_url, "kfpApiUrl",
             "is required for a recurring run (kfops:recurringSchedule)"),
            (not self.install_platform and self.s3_endpoint is None, "s3Endpoint",
             "is required unless kfops:installPlatform is true"),
            # The platform's installs run in KFP's namespace, which this stack then creates first (labelled as KFP's
            # and Katib's own Namespace objects would have been).
            (self.install_platform and self.namespace != KFP_NAMESPACE, "namespace",
             f"must be {KFP_NAMESPACE} when kfops:installPlatform is true (standalone KFP runs execute there)"),
            (self.install_platform and self.workspace_mode != "namespace", "workspaceMode",
             "must be namespace when kfops:installPlatform is true (the stack creates the namespace)"),
        ]
        for failed, name, problem in requirements:
            if failed:
                raise _config_error(name, problem)
        if self.credentials is None and not self.install_platform:
            raise _config_error(
                "s3AccessKey", "and kfops:s3SecretKey are required: only a stack that installs the object store "
                "(kfops:installPlatform) can generate credentials",
                f"pulumi config set --secret {_key('s3AccessKey')} <key> && "
                f"pulumi config set --secret {_key('s3SecretKey')} <secret>")
        return self

    @classmethod
    @in_step("pulumi config")
    def from_config(cls, values: Mapping[str, Any], secret_keys: Collection[str] = ()) -> StackSettings:
        """Build settings from a stack's config values.

        Args:
            values: Config as Pulumi hands it to a program: full keys (``kfops:namespace``) to values. Keys of other
                namespaces (``kubernetes:context``...) are ignored.
            secret_keys: Full keys whose values were set with ``--secret``.

        Returns:
            The validated settings.

        Raises:
            KfopsError: Naming the first unknown key, bad value, missing companion key or credential not set as a
                secret.
        """
        prefix = f"{CONFIG_NAMESPACE}:"
        ours = {key[len(prefix):]: value for key, value in values.items() if key.startswith(prefix)}
        known = {field_info.alias for field_info in cls.model_fields.values() if field_info.alias} - {"credentials"} \
            | set(SECRET_KEYS)
        for name in sorted(ours):
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"did you mean {_key(close[0])}?" if close else "see infra/cluster/settings.py for the keys"
                raise KfopsError(f"unknown config key {_key(name)}",
                                 f"{hint} (pulumi config rm {_key(name)})")
        for name in SECRET_KEYS:
            if name in ours and _key(name) not in secret_keys:
                raise _config_error(name, "holds a credential but is not a secret",
                                    f"pulumi config set --secret {_key(name)} <value>")
        present = [name for name in SECRET_KEYS if name in ours]
        if len(present) == 1:
            missing = next(name for name in SECRET_KEYS if name not in ours)
            raise _config_error(missing, f"is required together with {_key(present[0])}",
                                f"pulumi config set --secret {_key(missing)} <value>")
        fields = {name: _plain(value) for name, value in ours.items() if name not in SECRET_KEYS}
        if present:
            fields["credentials"] = S3Credentials(str(ours["s3AccessKey"]), str(ours["s3SecretKey"]))
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            first = error.errors()[0]
            name = to_camel(str(first["loc"][0])) if first["loc"] else "config"
            raise _config_error(name, f"is invalid: {first['msg']}") from None

    @classmethod
    def from_pulumi(cls) -> StackSettings:
        """Build settings from the config of the running Pulumi program (``pulumi up`` or the mock runtime).

        Returns:
            The validated settings.

        Raises:
            KfopsError: As :meth:`from_config`.
        """
        # pulumi.Config can only look keys up one by one; typo detection needs the whole map, which the runtime
        # keeps in its config module (set by the language host, or by set_all_config under the mock runtime).
        from pulumi.runtime import config as runtime_config

        values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
        secret = [key for key in values if runtime_config.is_config_secret(key)]
        secret += runtime_config.get_config_secret_keys_env()
        return cls.from_config(values, secret)


def _plain(value: Any) -> Any:
    # Pulumi passes every value as a string; structured values arrive JSON-encoded. Pydantic coerces "true"/"3".
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value
