"""Reading SmartResumeRuns and writing their status outside kopf's handler patches.

Status is written with JSON merge patches to the status subresource, under a field manager that
names the writer, so ``managedFields`` shows that every field has one owner: the operator writes
the run's status, a stream's worker only ``streams.<n>.workerReason``, ``workerMessage`` and
``workerCheckpoint``.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client

from smart_resume import resource

MERGE_PATCH = "application/merge-patch+json"


class Runs:
    def __init__(self, api: client.ApiClient, *, field_manager: str) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._manager = field_manager

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        run = self._objects.get_namespaced_custom_object(
            resource.GROUP, resource.VERSION, namespace, resource.PLURAL, name
        )
        return cast(dict[str, Any], run)

    def list(self, namespace: str) -> list[dict[str, Any]]:
        listing = cast(
            dict[str, Any],
            self._objects.list_namespaced_custom_object(
                resource.GROUP, resource.VERSION, namespace, resource.PLURAL
            ),
        )
        return list(listing.get("items", []))

    def delete(self, namespace: str, name: str) -> None:
        self._objects.delete_namespaced_custom_object(
            resource.GROUP, resource.VERSION, namespace, resource.PLURAL, name
        )

    def patch_status(
        self,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Merge ``status`` in and return the run as written; with ``resource_version``, only if
        the run is still at it (409 otherwise), for writers that derive a whole list
        (conditions) from what they read."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        written = self._objects.patch_namespaced_custom_object_status(
            resource.GROUP,
            resource.VERSION,
            namespace,
            resource.PLURAL,
            name,
            body,
            field_manager=self._manager,
            _content_type=MERGE_PATCH,
        )
        return cast(dict[str, Any], written)

    def patch_stream(self, namespace: str, name: str, stream: int, patch: dict[str, Any]) -> None:
        """Merge ``patch`` into ``status.streams.<stream>`` only."""
        self.patch_status(namespace, name, {"streams": {str(stream): patch}})
