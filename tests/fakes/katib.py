"""Katib's finalizers as its controller v0.19.0 handles them, over an in-memory ``CustomObjectsApi``.

Deleting an object with finalizers only marks it (``deletionTimestamp``), as the API server does. While the
controller runs (:meth:`FakeKatib.reconcile`), it removes its finalizer from objects being deleted (a Trial's only if
the database answers) and puts it back on any other, the way ``needUpdateFinalizers`` does
(experiment_controller_util.go#L98-123, trial_controller_util.go#L246-271); an Experiment's Trials and Suggestion
are deleted with it (owner references). A marked object whose finalizers are gone disappears.
"""

from __future__ import annotations

import copy
from typing import Any

from kfops.base.upstream import katib
from tests.fakes.kube import not_found

FINALIZERS = {"experiments": katib.EXPERIMENT_FINALIZER.value, "trials": katib.TRIAL_FINALIZER.value}


class FakeKatib:
    """Experiments, Trials and Suggestions of one namespace, and Katib's controller acting on them."""

    def __init__(self, namespace: str = "kubeflow") -> None:
        self.namespace = namespace
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.controller_running = True
        self.database_answers = True
        self.crds_installed = True
        self.deletes: list[tuple[str, str]] = []

    def add_experiment(self, name: str, trials: int = 2) -> None:
        self._add("experiments", name, owner=None)
        self._add("suggestions", name, owner=name)
        for index in range(trials):
            self._add("trials", f"{name}-{index}", owner=name)

    def _add(self, plural: str, name: str, owner: str | None) -> None:
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace}
        if plural in FINALIZERS:
            meta["finalizers"] = [FINALIZERS[plural]]
        if owner:
            meta["ownerReferences"] = [{"kind": "Experiment", "name": owner}]
        self.objects[(plural, name)] = {"apiVersion": "kubeflow.org/v1beta1", "metadata": meta}

    def list_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                      **_: Any) -> dict[str, Any]:
        if not self.crds_installed:
            raise not_found(plural, "")
        items = [copy.deepcopy(obj) for (kind, _name), obj in self.objects.items()
                 if kind == plural and namespace == self.namespace]
        return {"items": items}

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str,
                                        **_: Any) -> dict[str, Any]:
        self.deletes.append((plural, name))
        obj = self.objects.get((plural, name))
        if obj is None:
            raise not_found(plural, name)
        obj["metadata"]["deletionTimestamp"] = "2026-12-05T12:00:00Z"
        self._collect()
        return {"kind": "Status", "status": "Success"}

    def patch_finalizers(self, plural: str, name: str) -> None:
        """``kubectl patch ... {"metadata":{"finalizers":null}}``."""
        obj = self.objects.get((plural, name))
        if obj is None:
            raise RuntimeError(f"{plural} {name} not found")
        obj["metadata"].pop("finalizers", None)
        self._collect()

    def reconcile(self) -> None:
        """One pass of Katib's controller (nothing if it is not running)."""
        if not self.controller_running:
            return
        for (plural, _name), obj in list(self.objects.items()):
            meta = obj["metadata"]
            owner = (meta.get("ownerReferences") or [{}])[0].get("name")
            if owner and "deletionTimestamp" in self.objects.get(("experiments", owner), {}).get("metadata", {}):
                meta.setdefault("deletionTimestamp", "2026-12-05T12:00:01Z")
            if plural not in FINALIZERS:
                continue
            if "deletionTimestamp" in meta:
                if plural == "experiments" or self.database_answers:
                    meta["finalizers"] = []
            elif FINALIZERS[plural] not in (meta.get("finalizers") or []):
                meta["finalizers"] = [FINALIZERS[plural]]
        self._collect()

    def _collect(self) -> None:
        for key, obj in list(self.objects.items()):
            meta = obj["metadata"]
            if "deletionTimestamp" in meta and not meta.get("finalizers"):
                del self.objects[key]
