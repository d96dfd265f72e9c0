"""A fake Kubernetes API for custom resources: the calls of ``kubernetes.client.CustomObjectsApi`` kfops makes.

Objects are stored as the API server would keep them (``metadata.uid``, ``resourceVersion`` and
``creationTimestamp`` added on create; ``status`` only changed by a controller). A test plays the controller:
:meth:`FakeCustomObjects.on_get` registers a function that may change an object each time it is read, e.g. to
move a Katib Experiment from Created to Running to Succeeded the way Katib reports it.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

Key = tuple[str, str, str, str, str]


def not_found(plural: str, name: str) -> ApiException:
    """The 404 the API server answers for a missing object."""
    error = ApiException(status=404, reason="Not Found")
    error.body = (f'{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"{plural} \\"{name}\\" not '
                  f'found","reason":"NotFound","code":404}}')
    return error


class FakeCustomObjects:
    """``create/get/list/patch/delete_namespaced_custom_object`` over an in-memory store."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.calls: list[tuple[str, Key]] = []
        self.readers: list[Callable[[Key, dict[str, Any]], None]] = []
        self.refuse: Callable[[dict[str, Any]], ApiException | None] = lambda _body: None
        self._versions = itertools.count(1)

    def on_get(self, reader: Callable[[Key, dict[str, Any]], None]) -> None:
        """Call ``reader(key, object)`` before every read of an object (a controller's chance to act)."""
        self.readers.append(reader)

    def put(self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store ``body`` as if created (for setting up what a test starts from)."""
        stored = copy.deepcopy(body)
        meta = stored.setdefault("metadata", {})
        meta.setdefault("namespace", namespace)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-11-30T10:00:00Z")
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[(group, version, namespace, plural, meta["name"])] = stored
        return copy.deepcopy(stored)

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        body: dict[str, Any], **_: Any) -> dict[str, Any]:
        key = (group, version, namespace, plural, body["metadata"]["name"])
        self.calls.append(("create", key))
        refused = self.refuse(body)
        if refused is not None:
            raise refused
        if key in self.objects:
            error = ApiException(status=409, reason="Conflict")
            error.body = f'{{"reason":"AlreadyExists","message":"{plural} \\"{key[4]}\\" already exists"}}'
            raise error
        return self.put(group, version, namespace, plural, {k: v for k, v in body.items() if k != "status"})

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                     name: str, **_: Any) -> dict[str, Any]:
        key = (group, version, namespace, plural, name)
        self.calls.append(("get", key))
        if key not in self.objects:
            raise not_found(plural, name)
        for reader in self.readers:
            reader(key, self.objects[key])
        return copy.deepcopy(self.objects[key])

    def list_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                      label_selector: str = "", **_: Any) -> dict[str, Any]:
        self.calls.append(("list", (group, version, namespace, plural, label_selector)))
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if part)
        items = [copy.deepcopy(obj) for (g, v, ns, p, _), obj in self.objects.items()
                 if (g, v, ns, p) == (group, version, namespace, plural)
                 and all((obj["metadata"].get("labels") or {}).get(k) == val for k, val in wanted.items())]
        return {"apiVersion": f"{group}/{version}", "kind": "List", "items": items,
                "metadata": {"resourceVersion": str(next(self._versions))}}

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        name: str, **_: Any) -> dict[str, Any]:
        key = (group, version, namespace, plural, name)
        self.calls.append(("delete", key))
        if key not in self.objects:
            raise not_found(plural, name)
        return self.objects.pop(key)


def katib_trial(experiment: str, namespace: str, record: dict[str, Any]) -> dict[str, Any]:
    """A ``kubeflow.org/v1beta1`` Trial as Katib writes it, from a trial record of the tuning result."""
    condition = record["condition"]
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
        "metadata": {"name": record["name"], "namespace": namespace,
                     "labels": {"katib.kubeflow.org/experiment": experiment}},
        "spec": {"parameterAssignments": record["parameterAssignments"]},
        "status": {
            "startTime": record.get("startTime"), "completionTime": record.get("completionTime"),
            "conditions": [
                {"type": "Created", "status": "True", "reason": "TrialCreated", "message": "Trial is created"},
                {"type": "Running", "status": "False", "reason": "TrialRunning", "message": ""},
                {"type": condition, "status": "True", "reason": record.get("reason", ""),
                 "message": record.get("message", "")},
            ],
            "observation": record["observation"],
        },
    }
