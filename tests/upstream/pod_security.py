"""The Pod Security Standards' checks, as Kubernetes' pod-security-admission applies them (levels ``baseline`` and
``restricted``, the latest versions of each check at v0.33, i.e. Kubernetes 1.33, kind's node).

Written from ``policy/check_*.go`` of kubernetes/pod-security-admission at v0.33.13: one function per check, the same
check ids. A pod passes a level if every check of that level (restricted includes baseline, with the restricted
variants of ``capabilities``, ``seccompProfile`` and volumes replacing the baseline ones) allows it. Windows pods and
user-namespace relaxations are out of scope: kfops runs none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Pod = dict[str, Any]  # a PodSpec
Check = Callable[[dict[str, Any], Pod], list[str]]

BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim",
                      "projected", "secret"}
VALID_SECCOMP = {"RuntimeDefault", "Localhost"}


def containers(pod: Pod) -> Iterator[dict[str, Any]]:
    """Every container, init and ephemeral ones included (``visitContainers``)."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod.get(key) or []


def context(container: dict[str, Any]) -> dict[str, Any]:
    return container.get("securityContext") or {}


def pod_context(pod: Pod) -> dict[str, Any]:
    return pod.get("securityContext") or {}


def host_namespaces(_meta: dict[str, Any], pod: Pod) -> list[str]:
    return [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]


def privileged(_meta: dict[str, Any], pod: Pod) -> list[str]:
    return [c["name"] for c in containers(pod) if context(c).get("privileged")]


def capabilities_baseline(_meta: dict[str, Any], pod: Pod) -> list[str]:
    return [f"{c['name']} adds {cap}" for c in containers(pod)
            for cap in (context(c).get("capabilities") or {}).get("add") or [] if cap not in BASELINE_CAPABILITIES]


def host_path_volumes(_meta: dict[str, Any], pod: Pod) -> list[str]:
    return [v["name"] for v in pod.get("volumes") or [] if "hostPath" in v]


def host_ports(_meta: dict[str, Any], pod: Pod) -> list[str]:
    return [f"{c['name']}:{p['hostPort']}" for c in containers(pod) for p in c.get("ports") or [] if p.get("hostPort")]


def app_armor(meta: dict[str, Any], pod: Pod) -> list[str]:
    bad = [f"annotation {key}={value}" for key, value in (meta.get("annotations") or {}).items()
           if key.startswith("container.apparmor.security.beta.kubernetes.io/")
           and value not in ("", "runtime/default") and not value.startswith("localhost/")]
    for owner, ctx in (("pod", pod_context(pod)), *((c["name"], context(c)) for c in containers(pod))):
        profile = (ctx.get("appArmorProfile") or {}).get("type")
        if profile is not None and profile not in VALID_SECCOMP:
            bad.append(f"{owner} appArmorProfile {profile}")
    return bad


def se_linux(_meta: dict[str, Any], pod: Pod) -> list[str]:
    bad = []
    for owner, ctx in (("pod", pod_context(pod)), *((c["name"], context(c)) for c in containers(pod))):
        options = ctx.get("seLinuxOptions") or {}
        if options.get("type", "") not in SELINUX_TYPES or options.get("user") or options.get("role"):
            bad.append(owner)
    return bad


def proc_mount(_meta: dict[str, Any], pod: Pod) -> list[str]:
    return [c["name"] for c in containers(pod) if context(c).get("procMount") not in (None, "Default")]


def sysctls(_meta: dict[str, Any], pod: Pod) -> list[str]:
    return [s["name"] for s in pod_context(pod).get("sysctls") or [] if s["name"] not in SAFE_SYSCTLS]


def windows_host_process(_meta: dict[str, Any], pod: Pod) -> list[str]:
    contexts = [("pod", pod_context(pod)), *((c["name"], context(c)) for c in containers(pod))]
    return [owner for owner, ctx in contexts if (ctx.get("windowsOptions") or {}).get("hostProcess")]


def restricted_volumes(_meta: dict[str, Any], pod: Pod) -> list[str]:
    return [v["name"] for v in pod.get("volumes") or [] if not (set(v) - {"name"}) <= RESTRICTED_VOLUMES]


def allow_privilege_escalation(_meta: dict[str, Any], pod: Pod) -> list[str]:
    return [c["name"] for c in containers(pod) if context(c).get("allowPrivilegeEscalation") is not False]


def run_as_non_root(_meta: dict[str, Any], pod: Pod) -> list[str]:
    pod_value = pod_context(pod).get("runAsNonRoot")
    bad = ["pod sets runAsNonRoot=false"] if pod_value is False else []
    for c in containers(pod):
        value = context(c).get("runAsNonRoot")
        if value is False or (value is None and pod_value is not True):
            bad.append(c["name"])
    return bad


def run_as_user(_meta: dict[str, Any], pod: Pod) -> list[str]:
    contexts = [("pod", pod_context(pod)), *((c["name"], context(c)) for c in containers(pod))]
    return [owner for owner, ctx in contexts if ctx.get("runAsUser") == 0]


def seccomp_restricted(_meta: dict[str, Any], pod: Pod) -> list[str]:
    pod_profile = (pod_context(pod).get("seccompProfile") or {}).get("type")
    bad = [f"pod {pod_profile}"] if pod_profile is not None and pod_profile not in VALID_SECCOMP else []
    pod_set = pod_profile in VALID_SECCOMP
    for c in containers(pod):
        profile = (context(c).get("seccompProfile") or {}).get("type")
        if (profile is not None and profile not in VALID_SECCOMP) or (profile is None and not pod_set):
            bad.append(c["name"])
    return bad


def capabilities_restricted(_meta: dict[str, Any], pod: Pod) -> list[str]:
    bad = []
    for c in containers(pod):
        capabilities = context(c).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            bad.append(f"{c['name']} does not drop ALL")
        bad += [f"{c['name']} adds {cap}" for cap in capabilities.get("add") or [] if cap != "NET_BIND_SERVICE"]
    return bad


BASELINE: dict[str, Check] = {
    "hostNamespaces": host_namespaces, "privileged": privileged, "capabilities_baseline": capabilities_baseline,
    "hostPathVolumes": host_path_volumes, "hostPorts": host_ports, "appArmorProfile": app_armor,
    "seLinuxOptions": se_linux, "procMount": proc_mount,
    "seccompProfile_baseline": lambda _m, pod: [o for o in ("pod", *(c["name"] for c in containers(pod)))
                                                if _seccomp_of(pod, o) == "Unconfined"],
    "sysctls": sysctls, "windowsHostProcess": windows_host_process,
}
#: Restricted: every baseline check, three of them replaced by their restricted variant, and four more.
RESTRICTED: dict[str, Check] = {
    **{key: check for key, check in BASELINE.items()
       if key not in ("capabilities_baseline", "seccompProfile_baseline", "hostPathVolumes")},
    "restrictedVolumes": restricted_volumes, "allowPrivilegeEscalation": allow_privilege_escalation,
    "runAsNonRoot": run_as_non_root, "runAsUser": run_as_user, "seccompProfile_restricted": seccomp_restricted,
    "capabilities_restricted": capabilities_restricted,
}


def _seccomp_of(pod: Pod, owner: str) -> str | None:
    if owner == "pod":
        return (pod_context(pod).get("seccompProfile") or {}).get("type")
    [container] = [c for c in containers(pod) if c["name"] == owner]
    return (context(container).get("seccompProfile") or {}).get("type")


def violations(template: dict[str, Any], level: str = "restricted") -> dict[str, list[str]]:
    """What a pod template (``metadata`` and ``spec``) violates at ``level``: check id -> offenders."""
    checks = RESTRICTED if level == "restricted" else BASELINE
    meta, spec = template.get("metadata") or {}, template["spec"]
    found = {check_id: check(meta, spec) for check_id, check in checks.items()}
    return {check_id: offenders for check_id, offenders in found.items() if offenders}
