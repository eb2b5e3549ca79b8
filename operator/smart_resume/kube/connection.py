"""How every process of ours connects to the API server: in-cluster first, then kubeconfig."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def current_namespace() -> str:
    """The namespace kubectl would use: the pod's own in a cluster, else the kubeconfig's."""
    if IN_CLUSTER_NAMESPACE.exists():
        return IN_CLUSTER_NAMESPACE.read_text().strip()
    try:
        _, active = config.list_kube_config_contexts()
    except config.ConfigException:
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")
