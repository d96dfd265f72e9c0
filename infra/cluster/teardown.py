"""What the workflow leaves on a cluster, taken down while the controllers that finalize it still run.

Katib's controller puts its finalizers on every Experiment and Trial, removes them only from objects being deleted,
and puts them back on any other (:data:`kfops.base.upstream.katib.EXPERIMENT_FINALIZER`); a Trial's also needs
katib-db-manager to answer. Clearing finalizers by hand therefore does not stick, and deleting Katib with its
Experiments still there leaves them, their CRDs and the namespace hanging. So: delete the Experiments, and wait
until Katib has finished them (Trials and Suggestions go with them), its controller, database and webhooks still up.
:class:`KatibDrain` does this at ``pulumi destroy``, before any of Katib is deleted; the nightly job does it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

from kfops.base.errors import KfopsError
from kfops.base.upstream import katib

GROUP, VERSION = "kubeflow.org", "v1beta1"
#: What an Experiment leaves while Katib finishes it.
KATIB_PLURALS = ("experiments", "trials", "suggestions")


def _status(error: Exception) -> int:
    return int(getattr(error, "status", 0) or 0)


def remaining(api: Any, namespace: str) -> list[str]:
    """Katib objects still in ``namespace``, as ``plural/name`` (none if Katib's CRDs are already gone)."""
    found = []
    for plural in KATIB_PLURALS:
        try:
            items = api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
        except Exception as error:
            if _status(error) == 404:
                continue
            raise
        found += [f"{plural}/{item['metadata']['name']}" for item in items]
    return found


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def drain_katib(api: Any, namespace: str, timeout: float = 300.0, poll: float = 2.0,
                sleep: Callable[[float], None] | None = None) -> list[str]:
    """Delete every Katib Experiment in ``namespace`` and wait until Katib has finished them.

    Args:
        api: A ``kubernetes.client.CustomObjectsApi``.
        namespace: Where the workflow's Experiments are.
        timeout: Seconds Katib may take.
        poll: Seconds between looks.
        sleep: How to wait (tests pass their own; :func:`time.sleep` by default).

    Returns:
        The Experiments deleted.

    Raises:
        KfopsError: Katib did not finish within ``timeout`` (its controller or database is not running); the
            message names what is left.
    """
    deleted = []
    try:
        experiments = api.list_namespaced_custom_object(GROUP, VERSION, namespace, "experiments")["items"]
    except Exception as error:
        if _status(error) == 404:
            return []
        raise
    for experiment in experiments:
        name = experiment["metadata"]["name"]
        try:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)
        except Exception as error:
            if _status(error) != 404:
                raise
        deleted.append(name)
    waited = 0.0
    while left := remaining(api, namespace):
        if waited >= timeout:
            raise KfopsError(
                f"Katib did not finish deleting {', '.join(left[:5])}{' ...' if len(left) > 5 else ''} in "
                f"{namespace} within {timeout:.0f} s (finalizers {katib.EXPERIMENT_FINALIZER.value}, "
                f"{katib.TRIAL_FINALIZER.value})",
                f"check that katib-controller and katib-db-manager run (`kubectl -n {katib.NAMESPACE} get pods`), "
                "then destroy again")
        (sleep or _sleep)(poll)
        waited += poll
    return deleted


def custom_objects_api(context: str | None, config_file: str | None = None) -> Any:
    """A ``CustomObjectsApi`` for a kube context (the stack's ``kubernetes:context``)."""
    from kubernetes import client, config

    return client.CustomObjectsApi(config.new_client_from_config(config_file=config_file, context=context))


class KatibDrainProvider(ResourceProvider):
    """Nothing to create; on delete, :func:`drain_katib` in the stack's namespace."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Record what to drain."""
        return CreateResult(id_=f"katib-drain-{props['namespace']}", outs=props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Delete the namespace's Experiments and wait for Katib to finish them."""
        drain_katib(custom_objects_api(props.get("context")), props["namespace"])


class KatibDrain(Resource):
    """At ``pulumi destroy``, deletes the workflow's Katib Experiments before Katib itself is deleted.

    It must depend on every object of the Katib install (and on the namespace), so that Pulumi deletes it first.
    """

    def __init__(self, name: str, namespace: pulumi.Input[str], context: str | None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(KatibDrainProvider(), name, {"namespace": namespace, "context": context}, opts)
