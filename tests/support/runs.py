"""Creating SmartResumeRuns in tests, waiting for their phases, reading stream checkpoints."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from harness.waiting import wait_for
from smart_resume import resource
from smart_resume.core.checkpoint import decode_clients


def create_run(api: client.ApiClient, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }
    return client.CustomObjectsApi(api).create_namespaced_custom_object(  # type: ignore[no-any-return]
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, body
    )


def get_run(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(  # type: ignore[no-any-return]
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, name
    )


def wait_phase(
    api: client.ApiClient, namespace: str, name: str, phases: set[str], *, timeout: float = 90
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        run = get_run(api, namespace, name)
        return run if (run.get("status") or {}).get("phase") in phases else None

    try:
        return wait_for(probe, timeout=timeout, what=f"run {name} to reach {sorted(phases)}")
    except AssertionError as exc:
        status = get_run(api, namespace, name).get("status") or {}
        raise AssertionError(f"{exc}\nstatus: {status}") from None


def patch_spec(api: client.ApiClient, namespace: str, name: str, **spec: Any) -> None:
    """Merge ``spec`` into a run's spec, as `kubectl patch --type merge` would."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, name, {"spec": spec}
    )


def get_checkpoint(api: client.ApiClient, namespace: str, stream: int) -> dict[str, Any]:
    """The SmartResumeStream of ``stream`` (the scheduled runs' cycle checkpoint)."""
    return client.CustomObjectsApi(api).get_namespaced_custom_object(  # type: ignore[no-any-return]
        resource.GROUP,
        resource.VERSION,
        namespace,
        resource.STREAM_PLURAL,
        resource.checkpoint_name(stream),
    )


def cycle_clients(api: client.ApiClient, namespace: str, stream: int) -> dict[str, dict[str, Any]]:
    """The clients of ``stream``'s current cycle, decoded (state, attempts, tasks)."""
    try:
        checkpoint = get_checkpoint(api, namespace, stream)
    except client.ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return decode_clients(checkpoint.get("status") or {})


def events(api: client.ApiClient, namespace: str, name: str) -> list[client.CoreV1Event]:
    """The Events about the object ``name`` in ``namespace`` (what `kubectl describe` lists)."""
    return list(
        client.CoreV1Api(api)
        .list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        .items
    )
