"""Apply the YAML manifests of ``manifests/`` to the test cluster, as ``kubectl apply`` would."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

MANIFESTS_DIR = Path(__file__).resolve().parents[2] / "manifests"


def load(name: str, *, namespace: str | None = None) -> list[dict[str, Any]]:
    """The documents of ``manifests/<name>``, namespaced objects moved to ``namespace`` if given."""
    documents = [doc for doc in yaml.safe_load_all((MANIFESTS_DIR / name).read_text()) if doc]
    if namespace is None:
        return documents
    moved = []
    for doc in documents:
        doc = copy.deepcopy(doc)
        if "namespace" in doc.get("metadata", {}):
            original = doc["metadata"]["namespace"]
            doc["metadata"]["namespace"] = namespace
            for subject in doc.get("subjects", []):
                if subject.get("namespace") == original:
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
