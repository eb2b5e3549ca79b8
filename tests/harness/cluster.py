"""Connecting to the cluster under test: its kubeconfig, the CRDs, service-account identities."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from harness.waiting import wait_for

RESTRICTED_POD_SECURITY: dict[str, str] = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
"""Namespace labels that make Pod Security Admission refuse any pod short of ``restricted``, as
a hardened cluster does for the runs' namespaces."""


class Cluster:
    """Connection facts of a cluster, read from an admin kubeconfig; ``audit_log``: where its
    apiserver writes its audit log, when the harness started it with one."""

    def __init__(self, kubeconfig: Path, *, audit_log: Path | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.audit_log = audit_log
        loaded = yaml.safe_load(kubeconfig.read_text())
        context = next(
            c["context"] for c in loaded["contexts"] if c["name"] == loaded["current-context"]
        )
        cluster = next(c["cluster"] for c in loaded["clusters"] if c["name"] == context["cluster"])
        self.server: str = cluster["server"]
        self.ca_data = base64.b64decode(cluster.get("certificate-authority-data", ""))

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubeconfig_for(
        self,
        api: client.ApiClient,
        path: Path,
        *,
        namespace: str,
        account: str,
        bound_pod: client.V1Pod | None = None,
        server: str | None = None,
    ) -> Path:
        """A kubeconfig holding a token of ``namespace/account`` (TokenRequest API), as a pod
        gets; ``server``: another address of the API server (a proxy)."""
        bound = None
        if bound_pod is not None:
            bound = client.V1BoundObjectReference(
                kind="Pod",
                api_version="v1",
                name=bound_pod.metadata.name,
                uid=bound_pod.metadata.uid,
            )
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[], expiration_seconds=24 * 3600, bound_object_ref=bound
            )
        )
        token = (
            client.CoreV1Api(api)
            .create_namespaced_service_account_token(account, namespace, request)
            .status.token
        )
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "local",
                            "cluster": {
                                "server": server or self.server,
                                "certificate-authority-data": base64.b64encode(
                                    self.ca_data
                                ).decode(),
                            },
                        }
                    ],
                    "users": [{"name": account, "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": account,
                            "context": {
                                "cluster": "local",
                                "user": account,
                                "namespace": namespace,
                            },
                        }
                    ],
                    "current-context": account,
                }
            )
        )
        path.chmod(0o600)
        return path


def install_crds(api: client.ApiClient, directory: Path) -> list[str]:
    """Install (or update) every CRD in ``directory`` and wait until each is Established (its
    ``kustomization.yaml``, which lists them for ``kubectl apply -k``, is no CRD)."""
    extensions = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(directory.glob("*.yaml")):
        for manifest in yaml.safe_load_all(path.read_text()):
            if manifest and manifest["kind"] == "CustomResourceDefinition":
                names.append(_create_or_replace(extensions, manifest))
    for name in names:
        wait_for(
            lambda n=name: _established(extensions, n), timeout=30, what=f"CRD {name} Established"
        )
    return names


def _create_or_replace(extensions: client.ApiextensionsV1Api, manifest: dict[str, Any]) -> str:
    name: str = manifest["metadata"]["name"]
    try:
        current = extensions.read_custom_resource_definition(name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        extensions.create_custom_resource_definition(manifest)
        return name
    manifest["metadata"]["resourceVersion"] = current.metadata.resource_version
    extensions.replace_custom_resource_definition(name, manifest)
    return name


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = extensions.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)
