"""Reaching the Kubernetes API from a step pod (its ServiceAccount) or from a workstation (its kube config)."""

from __future__ import annotations

from typing import Any

from kfops.base.errors import KfopsError

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def current_namespace(default: str = "kubeflow-user-example-com") -> str:
    """The namespace this pod runs in (pipeline steps run in the user's namespace), else ``default``."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as handle:
            return handle.read().strip() or default
    except OSError:
        return default


def load_kubernetes_config() -> None:
    """Use the pod's service account in a cluster, else the local kube config.

    Raises:
        KfopsError: Neither is available.
    """
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_incluster_config()
    except ConfigException:
        try:
            config.load_kube_config()
        except (ConfigException, OSError) as error:
            raise KfopsError(f"no Kubernetes configuration found ({error})",
                             "run this step inside the cluster, or choose the local target") from error


def custom_objects_api() -> Any:
    """A ``kubernetes.client.CustomObjectsApi`` for this pod's or this workstation's cluster."""
    from kubernetes import client

    load_kubernetes_config()
    return client.CustomObjectsApi()
