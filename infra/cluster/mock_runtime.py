"""Pulumi's mock runtime, recording: run a Pulumi program with no CLI, provider or cluster, and keep what it registers.

The mock runtime records every resource the program registers with the inputs the Kubernetes provider would receive,
its dependencies, the provider functions it calls and its outputs. ``kfops render`` writes that recording as YAML
(:mod:`infra.cluster.render`); the unit tests of the program and of each component assert on it.
"""

from __future__ import annotations

import asyncio
import logging
import runpy
import secrets
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor

from kfops.base.paths import REPO_ROOT

PROGRAM = REPO_ROOT / "infra" / "__main__.py"
#: What a secret value is written as.
SECRET_PLACEHOLDER = "<secret>"  # noqa: S105 - the placeholder written instead of a secret
#: Type token of pulumi-random's password resource, whose generated ``result`` the mocks make up.
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"  # noqa: S105 - a type name, not a password

#: Kinds in dependency order (namespaces and identities before what uses them, workloads after their config).
APPLY_ORDER = ("Namespace", "Profile", "ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap", "PodDefault",
               "PersistentVolumeClaim", "Service", "Deployment", "Job", "Pipeline", "PipelineVersion")

#: Provider-side components and Helm releases: recorded as references, not as Kubernetes objects.
_NOT_OBJECTS = ("kubernetes:helm.sh/", "kubernetes:kustomize", "kubernetes:yaml")


@dataclass
class RecordedResource:
    """A resource the program registered, as the mock runtime saw it.

    Attributes:
        type: Pulumi type token, e.g. ``kubernetes:core/v1:Secret`` or ``kfops:platform:Workspace``.
        name: Logical (Pulumi) name.
        custom: False for component resources.
        inputs: Inputs as sent to the provider; secret values are still wrapped as Pulumi secrets.
        depends_on: Logical names of the resources the engine would create before this one (explicit
            ``depends_on`` and every resource whose outputs its inputs use).
    """

    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    depends_on: set[str] = field(default_factory=set)

    @property
    def is_kubernetes_object(self) -> bool:
        """True for resources whose inputs are one Kubernetes object (not a Helm release, kustomization...)."""
        return (self.custom and self.type.startswith("kubernetes:") and not self.type.startswith(_NOT_OBJECTS)
                and "apiVersion" in self.inputs and "kind" in self.inputs)

    @property
    def is_reference(self) -> bool:
        """True for what is created elsewhere: Helm releases, upstream kustomizations, passwords, KFP API calls."""
        return self.type.startswith(_NOT_OBJECTS) or (self.custom and not self.is_kubernetes_object)

    def manifest(self) -> dict[str, Any]:
        """The Kubernetes object with secret values replaced by :data:`SECRET_PLACEHOLDER`."""
        obj = scrub(self.inputs)
        ordered = {key: obj.pop(key) for key in ("apiVersion", "kind", "metadata") if key in obj}
        return {**ordered, **dict(sorted(obj.items()))}


@dataclass
class Rendering:
    """Everything one run of a program registered and exported.

    Attributes:
        resources: Registered resources, in registration order.
        outputs: Stack outputs: name to ``(value, is_secret)``.
        warnings: Warnings the program logged (e.g. a BSL-licensed Seldon version).
        invokes: Provider functions the program called, as ``(token, arguments)`` (e.g. the kustomize Directory
            asking for an upstream kustomization).
    """

    resources: list[RecordedResource] = field(default_factory=list)
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    outputs: dict[str, tuple[Any, bool]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[RecordedResource]:
        """Resources of one Pulumi type."""
        return [resource for resource in self.resources if resource.type == type_token]

    def named(self, name: str) -> RecordedResource:
        """The resource with a logical name.

        Raises:
            LookupError: If there is none.
        """
        for resource in self.resources:
            if resource.name == name:
                return resource
        raise LookupError(f"no resource named {name!r} was registered")

    def objects(self) -> list[RecordedResource]:
        """The resources that are Kubernetes objects, in the order ``kubectl apply`` would want them.

        Registration order depends on when outputs resolve, so it is not stable from one run to the next; a
        render must be, to diff against the previous one.
        """
        def key(resource: RecordedResource) -> tuple[int, str, str]:
            kind, meta = resource.inputs["kind"], scrub(resource.inputs.get("metadata") or {})
            rank = APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)
            return rank, str(meta.get("namespace", "")), str(meta.get("name", resource.name))

        return sorted((resource for resource in self.resources if resource.is_kubernetes_object), key=key)

    def manifests(self) -> list[dict[str, Any]]:
        """Every Kubernetes object, secrets scrubbed, in :meth:`objects` order."""
        return [resource.manifest() for resource in self.objects()]

    def find(self, kind: str, name: str) -> dict[str, Any]:
        """The scrubbed object of a kind and name.

        Raises:
            LookupError: If there is none.
        """
        for obj in self.manifests():
            if obj["kind"] == kind and obj["metadata"].get("name") == name:
                return obj
        raise LookupError(f"no {kind} named {name!r} was rendered")

    def inputs_of(self, kind: str, name: str) -> dict[str, Any]:
        """Raw inputs (secrets still wrapped) of the object of a kind and name.

        Raises:
            LookupError: If there is none.
        """
        for resource in self.resources:
            if (resource.is_kubernetes_object and resource.inputs["kind"] == kind
                    and scrub(resource.inputs["metadata"]).get("name") == name):
                return resource.inputs
        raise LookupError(f"no {kind} named {name!r} was rendered")


class _RecordingMocks(pulumi.runtime.Mocks):
    """Mocks that record registrations and answer like a provider would, with made-up ids and generated values."""

    def __init__(self, rendering: Rendering,
                 kustomize: Callable[[str], list[dict[str, Any]]] = lambda _directory: []) -> None:
        self.rendering = rendering
        self.kustomize = kustomize
        #: (type, name) -> names of its dependencies, filled by the monitor just before new_resource is called.
        self.dependencies: dict[tuple[str, str], set[str]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.rendering.resources.append(RecordedResource(args.typ, args.name, bool(args.custom), args.inputs,
                                                         self.dependencies.pop((args.typ, args.name), set())))
        state = dict(args.inputs)
        if args.typ == RANDOM_PASSWORD:
            # A fresh random value per run, so tests can prove generated credentials never reach the output.
            state["result"] = secrets.token_urlsafe(int(args.inputs.get("length", 16)))[: int(args.inputs["length"])]
        if args.typ == "pulumi-python:dynamic:Resource" and "version_name" in args.inputs:
            # The ids KFP assigns to an uploaded pipeline and version (KfpPipelineVersion's outputs).
            state.update({key: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{args.name}/{key}"))
                          for key in ("pipeline_id", "version_id")})
        if args.typ.startswith("kubernetes:") and isinstance(args.inputs.get("metadata"), dict):
            # The API server assigns uids; KFP uses a Pipeline's uid as its pipeline id.
            state["metadata"] = {**args.inputs["metadata"], "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, args.name))}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        # Only the kustomize Directory invokes the provider; its manifests come from upstream at `pulumi up` (none
        # here, unless a test supplies some).
        self.rendering.invokes.append((args.token, dict(args.args)))
        if args.token == "kubernetes:kustomize:directory":  # noqa: S105 - a function name
            return {"result": self.kustomize(str(args.args["directory"]))}, []
        return {}, []


class _RecordingMonitor(MockMonitor):
    """The mock monitor, also noting each registration's dependencies (which it otherwise drops)."""

    def __init__(self, mocks: _RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording_mocks = mocks

    def RegisterResource(self, request: Any) -> Any:
        names = {urn.rsplit("::", 1)[-1] for urn in request.dependencies}
        self.recording_mocks.dependencies[(request.type, request.name)] = names
        return super().RegisterResource(request)


class _WarningCollector(logging.Handler):
    def __init__(self, rendering: Rendering) -> None:
        super().__init__(logging.WARNING)
        self.rendering = rendering

    def emit(self, record: logging.LogRecord) -> None:
        self.rendering.warnings.append(record.getMessage())


def record(
    program: Callable[[], object],
    config: Mapping[str, str] | None = None,
    secret_keys: Collection[str] = (),
    stack: str = "test",
    project: str = "kfops",
    kustomize: Callable[[str], list[dict[str, Any]]] = lambda _directory: [],
) -> Rendering:
    """Run a Pulumi program under the mock runtime and record what it registers and exports.

    Args:
        program: Declares resources (the whole program, or a test that builds one component).
        config: Stack config, full keys (``kfops:namespace``) to string values.
        secret_keys: Config keys whose values are secrets.
        stack: Stack name the program sees.
        project: Project name the program sees.
        kustomize: The objects a remote kustomization (by URL) holds; none by default.

    Returns:
        The recording.
    """
    rendering = Rendering()
    # Pulumi's test runner uses the thread's current event loop; code that ran before (asyncio.run, a closed loop)
    # may have left none.
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())
    logger = logging.getLogger(f"kfops.render.{stack}")
    logger.propagate = False
    collector = _WarningCollector(rendering)
    logger.addHandler(collector)
    # A fresh root Stack per run: the runtime keeps the previous one (and its outputs) otherwise.
    runtime_settings.set_root_resource(None)  # type: ignore[arg-type]  # the runtime's own reset value
    mocks = _RecordingMocks(rendering, kustomize)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, logger=logger,
                             monitor=_RecordingMonitor(mocks))
    runtime_config.set_all_config(dict(config or {}), list(secret_keys))

    async def collect_outputs() -> None:
        root = runtime_settings.get_root_resource()
        assert root is not None, "the program created no root stack"
        for name, value in root.outputs.items():  # type: ignore[attr-defined]  # the Stack resource has outputs
            output = pulumi.Output.from_input(value)
            rendering.outputs[name] = (await output.future(), await output.is_secret())

    def run() -> Any:
        program()
        return asyncio.ensure_future(collect_outputs())

    try:
        pulumi.runtime.test(run)()
    finally:
        logger.removeHandler(collector)
        runtime_config.set_all_config({}, [])
    return rendering


def run_program(
    config: Mapping[str, str], secret_keys: Collection[str] = (), stack: str = "test", project: str = "kfops",
    kustomize: Callable[[str], list[dict[str, Any]]] = lambda _directory: [],
) -> Rendering:
    """Run ``infra/__main__.py`` under the mock runtime with the given config.

    Args:
        config: Stack config, full keys to string values.
        secret_keys: Config keys whose values are secrets.
        stack: Stack name.
        project: Project name.
        kustomize: The objects a remote kustomization (by URL) holds; none by default.

    Returns:
        The recording.
    """
    return record(lambda: runpy.run_path(str(PROGRAM), run_name="__main__"), config, secret_keys, stack, project,
                  kustomize)


def scrub(value: Any, secret: bool = False) -> Any:
    """A plain copy of recorded inputs: secrets replaced by :data:`SECRET_PLACEHOLDER`, integral floats as ints.

    Args:
        value: Inputs as the mock runtime recorded them.
        secret: Whether ``value`` is inside a secret (every leaf is then replaced).

    Returns:
        The copy.
    """
    if rpc.is_rpc_secret(value):
        return scrub(rpc.unwrap_rpc_secret(value), secret=True)
    if isinstance(value, dict):
        # "__"-prefixed inputs are Pulumi's own (a dynamic provider's pickled code), not part of any object. Keys are
        # sorted: the wire format does not keep their order, and a render should diff cleanly against the last one.
        return {key: scrub(value[key], secret) for key in sorted(value) if not key.startswith("__")}
    if isinstance(value, list):
        return [scrub(item, secret) for item in value]
    if secret:
        return SECRET_PLACEHOLDER
    if isinstance(value, float) and value.is_integer():
        # The wire format has only doubles: replicas: 1 comes back as 1.0.
        return int(value)
    return value
