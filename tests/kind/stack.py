"""The kind stack through Pulumi's Automation API: ``up`` proven idempotent, and a bounded ``destroy``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.cluster.teardown import GROUP, KATIB_PLURALS, VERSION, custom_objects_api, drain_katib
from kfops.base.errors import KfopsError
from kfops.base.paths import REPO_ROOT
from kfops.base.upstream import katib
from tests.kind.names import NAMESPACE, STACK, Kubectl


def drain_katib_or_force(api: Any, kubectl: Kubectl, namespace: str = NAMESPACE, timeout: float = 300.0,
                         sleep: Callable[[float], None] | None = None) -> list[str]:
    """Before ``pulumi destroy``: the workflow's Experiments deleted and finished by a still-running Katib.

    Only if Katib cannot finish them (its controller or database is down) is it forced: its webhook configurations
    go first (an Experiment update must pass them, and nothing serves them), then the finalizers of the objects
    already being deleted (Katib puts them back on any other). Returns what had to be forced: a bug to look at.
    """
    try:
        drain_katib(api, namespace, timeout=timeout, sleep=sleep)
        return []
    except KfopsError as error:
        print(f"forcing Katib's teardown: {error}")
    configuration, _ = katib.POD_MUTATOR.value
    kubectl("delete", f"mutatingwebhookconfiguration/{configuration}",
            f"validatingwebhookconfiguration/{configuration}", "--ignore-not-found")
    forced = []
    for plural in KATIB_PLURALS:
        try:
            items = api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
        except Exception as error:  # the CRD may be gone already
            print(f"not forcing {plural}: {error}")
            continue
        for item in items:
            if not item["metadata"].get("deletionTimestamp"):
                continue
            name = f"{plural}.{GROUP}/{item['metadata']['name']}"
            try:
                kubectl("-n", namespace, "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
                forced.append(name)
            except Exception as error:  # gone in the meantime: nothing to force
                print(f"not forcing {name}: {error}")
    return forced


def bounded(action: Callable[[], Any], seconds: float, what: str) -> Any:
    """Run ``action`` in a thread; raise TimeoutError if it is not done within ``seconds`` (it is left running)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = action()
        except BaseException as error:  # re-raised in the caller's thread
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True, name=what)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not finish within {seconds:.0f} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def state_backend(environ: dict[str, str] | None = None) -> str:
    """The Pulumi state backend URL, its directory created if it is a local one.

    Pulumi's local (``file://``) backend refuses a directory that does not exist, and the nightly workflow points
    ``PULUMI_BACKEND_URL`` at one in its workspace that nobody else creates.

    Raises:
        RuntimeError: ``PULUMI_CONFIG_PASSPHRASE`` is unset (the stack's secrets need it; the CLI would fail later).
    """
    environ = dict(os.environ if environ is None else environ)
    if "PULUMI_CONFIG_PASSPHRASE" not in environ and "PULUMI_CONFIG_PASSPHRASE_FILE" not in environ:
        raise RuntimeError("set PULUMI_CONFIG_PASSPHRASE (it encrypts the kind stack's generated S3 keys)")
    backend = environ.get("PULUMI_BACKEND_URL") or f"file://{REPO_ROOT / '.pulumi-state'}"
    if backend.startswith("file://"):
        Path(backend.removeprefix("file://")).expanduser().mkdir(parents=True, exist_ok=True)
    return backend


def stack(kubeconfig: Path) -> Any:
    """The ``kind`` stack of this project (Pulumi Automation API; a local state backend unless one is set)."""
    from pulumi import automation as auto

    env = {"KUBECONFIG": str(kubeconfig), "PULUMI_BACKEND_URL": state_backend()}
    options = auto.LocalWorkspaceOptions(work_dir=str(REPO_ROOT), env_vars=env)
    return auto.create_or_select_stack(STACK, work_dir=str(REPO_ROOT), opts=options)


def stack_up(kubeconfig: Path) -> dict[str, Any]:
    """``pulumi up`` of the kind stack, then prove it idempotent: a second preview must plan no change.

    Raises:
        pulumi.automation.errors.CommandError: ``up`` failed, or the preview found changes.
    """
    kind_stack = stack(kubeconfig)
    kind_stack.up(on_output=print, color="never")
    kind_stack.preview(expect_no_changes=True, on_output=print, color="never")
    return {name: output.value for name, output in kind_stack.outputs().items()}


def stack_destroy(kubeconfig: Path, kubectl: Kubectl, seconds: float = 1200) -> None:
    """``pulumi destroy``, bounded in time, after the workflow's Experiments were finished by a running Katib (the
    program's own drain would do it too, inside the destroy; here a stuck one is forced and reported instead)."""
    try:
        forced = drain_katib_or_force(custom_objects_api(None, str(kubeconfig)), kubectl)
        if forced:
            print(f"Katib could not finish {forced}: see the forensics")
    except Exception as error:  # a cluster that never came up: destroy what the stack has anyway
        print(f"could not drain Katib before destroy: {error}")
    kind_stack = stack(kubeconfig)
    bounded(lambda: kind_stack.destroy(on_output=print, color="never"), seconds, "pulumi destroy")
