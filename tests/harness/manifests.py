"""Apply the YAML manifests of ``manifests/`` to the test cluster, as ``kubectl apply`` would.

The lifecycle tests take the operator's and the workers' RBAC from here, so they run with exactly
the rights the install grants.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

MANIFESTS_DIR = Path(__file__).resolve().parents[2] / "manifests"
OPERATOR_NAMESPACE = "smart-resume-system"
"""Where ``manifests/operator`` installs the operator."""
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:smart-resume-operator"
"""The operator's identity, as the API server names it."""


def load(name: str, *, namespace: str | None = None) -> list[dict[str, Any]]:
    """The documents of ``manifests/<name>``; with ``namespace``, moved there as kustomize's
    ``namespace:`` field moves them.

    Namespaced objects move, and so do the RoleBinding subjects naming a ServiceAccount defined
    among these documents; a subject from elsewhere (the operator's account, bound from
    ``smart-resume-system``) stays where it is.
    """
    documents = [doc for doc in yaml.safe_load_all((MANIFESTS_DIR / name).read_text()) if doc]
    if namespace is None:
        return documents
    accounts = {
        (doc["metadata"].get("namespace"), doc["metadata"]["name"])
        for doc in documents
        if doc["kind"] == "ServiceAccount"
    }
    moved = []
    for doc in documents:
        doc = copy.deepcopy(doc)
        if "namespace" in doc["metadata"]:
            doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects", []):
            if (subject.get("namespace"), subject["name"]) in accounts:
                subject["namespace"] = namespace
        moved.append(doc)
    return moved


def apply(api: client.ApiClient, documents: Iterable[dict[str, Any]]) -> None:
    """Create each object, or replace it when it exists already."""
    resources = dynamic.DynamicClient(api).resources
    for doc in documents:
        kind = resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        namespace = doc["metadata"].get("namespace")
        try:
            kind.create(body=doc, namespace=namespace)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = kind.get(name=doc["metadata"]["name"], namespace=namespace)
            doc = {
                **doc,
                "metadata": {
                    **doc["metadata"],
                    "resourceVersion": current.metadata.resourceVersion,
                },
            }
            kind.replace(body=doc, namespace=namespace)
