"""The kind stack through Pulumi's Automation API: ``up`` proven idempotent, and a bounded ``destroy``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfops.base.paths import REPO_ROOT
from kfops.base.upstream import katib
from tests.kind.names import NAMESPACE, STACK, Kubectl


def clear_katib_finalizers(kubectl: Kubectl, namespace: str = NAMESPACE) -> list[str]:
    """Remove the finalizers of every Katib Experiment and Trial in ``namespace``.

    Katib's controller removes them itself (``update-prometheus-metrics``, ``clean-metrics-in-db``); once ``pulumi
    destroy`` has removed the controller, deleting the namespace would hang on them forever.
    """
    cleared = []
    for kind in ("experiments.kubeflow.org", "trials.kubeflow.org"):
        try:
            names = kubectl("-n", namespace, "get", kind, "-o", "name").split()
        except Exception as error:  # the CRD may already be gone
            print(f"not clearing {kind} finalizers: {error}")
            names = []
        for name in names:
            kubectl("-n", namespace, "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
            cleared.append(name)
    return cleared


#: Finalizers the facts say only Katib's controller removes.
KATIB_FINALIZERS = (katib.EXPERIMENT_FINALIZER.value, katib.TRIAL_FINALIZER.value)


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


def stack(kubeconfig: Path) -> Any:
    """The ``kind`` stack of this project (Pulumi Automation API; a local state backend unless one is set)."""
    from pulumi import automation as auto

    env = {"KUBECONFIG": str(kubeconfig)}
    backend = os.environ.get("PULUMI_BACKEND_URL")
    if not backend:
        state = REPO_ROOT / ".pulumi-state"
        state.mkdir(exist_ok=True)
        env["PULUMI_BACKEND_URL"] = f"file://{state}"
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
    """``pulumi destroy``, bounded in time; Katib's finalizers are cleared first so nothing can hang on them."""
    clear_katib_finalizers(kubectl)
    kind_stack = stack(kubeconfig)
    bounded(lambda: kind_stack.destroy(on_output=print, color="never"), seconds, "pulumi destroy")
