"""Reading and writing SmartResumeStreams, the per-stream cycle checkpoints.

Every write carries the resourceVersion it was decided on: the operator's claims replace the
status (PUT), the worker's checkpoints are JSON merge patches of the status; a 409 Conflict means
someone else wrote first, and the caller decides again on what it reads.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from smart_resume import resource

MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER_OPERATOR = "smart-resume-operator"
FIELD_MANAGER_WORKER = "smart-resume-worker"


class Checkpoints:
    def __init__(self, api: client.ApiClient, *, field_manager: str) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._manager = field_manager

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return cast(
                dict[str, Any],
                self._objects.get_namespaced_custom_object(
                    resource.GROUP, resource.VERSION, namespace, resource.STREAM_PLURAL, name
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, namespace: str) -> list[dict[str, Any]]:
        listing = cast(
            dict[str, Any],
            self._objects.list_namespaced_custom_object(
                resource.GROUP, resource.VERSION, namespace, resource.STREAM_PLURAL
            ),
        )
        return list(listing.get("items", []))

    def create(
        self, namespace: str, name: str, *, stream: int, owner: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The checkpoint ``name``, created empty; as it is if it exists already (``owner``: for
        ad-hoc runs only)."""
        metadata: dict[str, Any] = {
            "name": name,
            "labels": {resource.LABEL_STREAM: str(stream)},
        }
        if owner:
            metadata["ownerReferences"] = [owner]
        body = {
            "apiVersion": resource.API_VERSION,
            "kind": resource.STREAM_KIND,
            "metadata": metadata,
            "spec": {},
        }
        try:
            return cast(
                dict[str, Any],
                self._objects.create_namespaced_custom_object(
                    resource.GROUP,
                    resource.VERSION,
                    namespace,
                    resource.STREAM_PLURAL,
                    body,
                    field_manager=self._manager,
                ),
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
        found = self.get(namespace, name)
        if found is None:
            raise RuntimeError(f"SmartResumeStream {namespace}/{name} vanished while created")
        return found

    def replace_status(self, checkpoint: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Replace the status of ``checkpoint`` as read (409 when it changed since)."""
        meta = checkpoint["metadata"]
        body = {**checkpoint, "status": status}
        return cast(
            dict[str, Any],
            self._objects.replace_namespaced_custom_object_status(
                resource.GROUP,
                resource.VERSION,
                meta["namespace"],
                resource.STREAM_PLURAL,
                meta["name"],
                body,
                field_manager=self._manager,
            ),
        )

    def patch_status(
        self, namespace: str, name: str, patch: dict[str, Any], *, resource_version: str
    ) -> dict[str, Any]:
        """Merge ``patch`` into the status if the object is still at ``resource_version``."""
        return cast(
            dict[str, Any],
            self._objects.patch_namespaced_custom_object_status(
                resource.GROUP,
                resource.VERSION,
                namespace,
                resource.STREAM_PLURAL,
                name,
                {"metadata": {"resourceVersion": resource_version}, "status": patch},
                field_manager=self._manager,
                _content_type=MERGE_PATCH,
            ),
        )
