"""The Pod Security Standards' ``restricted`` level for the pods kfops writes itself.

Kubernetes' ``restricted`` policy (pod-security-admission, ``policy/check_*.go``) wants every container to run as a
non-root user, without privilege escalation, with every capability dropped and a ``RuntimeDefault`` (or
``Localhost``) seccomp profile. kfops' images run as a numeric non-root user (the project image as
:data:`~kfops.base.contract.PROJECT_IMAGE_USER`), so these settings cost nothing and remove the warnings a namespace
labelled ``pod-security.kubernetes.io/warn: restricted`` gives for every kfops pod.
"""

from __future__ import annotations

from typing import Any


def restricted_pod(user: int | None = None, group: int | None = None, fs_group: int | None = None) -> dict[str, Any]:
    """A pod ``securityContext``: non-root, the runtime's default seccomp profile, and the given ids."""
    context: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for key, value in (("runAsUser", user), ("runAsGroup", group), ("fsGroup", fs_group)):
        if value is not None:
            context[key] = value
    return context


def restricted_container(user: int | None = None) -> dict[str, Any]:
    """A container ``securityContext`` that passes ``restricted`` on its own (whatever its pod sets)."""
    context: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                               "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if user is not None:
        context["runAsUser"] = user
    return context
