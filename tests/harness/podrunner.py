"""A stand-in for the kubelet: runs the pods of Jobs as local processes.

The local control plane has no scheduler and no kubelet, so Job pods stay unscheduled. This
runner watches them and, for each new pod owned by a Job that asks for the scheduler
``POD_RUNNER_SCHEDULER`` (``spec.schedulerName``: on a real cluster such as kind no scheduler
takes those pods, so the same tests work there), does what a kubelet would:

- resolves the container's environment (``value``, ``secretKeyRef``, ``configMapKeyRef``,
  ``fieldRef``, ``envFrom``) from the real API objects;
- gives the process the pod's identity: a kubeconfig holding a token requested through the
  TokenRequest API for the pod's service account, so the process meets real RBAC;
- runs ``command`` + ``args`` (``$(VAR)`` expanded) and reports ``Running``, then ``Succeeded`` or
  ``Failed`` with the exit code, through the pods/status subresource, as Kubernetes' own Job
  integration tests do;
- when the pod is deleted, sends SIGTERM and, after the pod's grace period, SIGKILL.

As a *stand-in* (benchmarks) it runs no process at all: each pod is reported ``Running`` and, unless
``hold`` is set, ``Succeeded`` right after; held pods succeed when ``release`` lets them go.

Only the first container of a pod is run; images are ignored (the process runs from this checkout).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import logging
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from harness.cluster import Cluster

log = logging.getLogger("harness.podrunner")

POD_RUNNER_SCHEDULER = "smart-resume-pod-runner"
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@dataclasses.dataclass
class LocalPod:
    """A pod this runner started; tests inspect it to prove what happened to the process."""

    namespace: str
    name: str
    uid: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    grace_seconds: int = 30
    terminating: threading.Event = dataclasses.field(default_factory=threading.Event)
    finished: threading.Event = dataclasses.field(default_factory=threading.Event)
    exit_code: int | None = None
    started_at: float | None = None
    """``time.monotonic()`` when the process started; ``ended_at`` when it exited."""
    ended_at: float | None = None
    exit_requested: threading.Event = dataclasses.field(default_factory=threading.Event)
    """Stand-in pods only: released, or deleted."""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def log_text(self) -> str:
        return (
            self.log_path.read_text(errors="replace")
            if self.log_path and self.log_path.exists()
            else ""
        )


class PodRunner:
    def __init__(
        self,
        api: client.ApiClient,
        cluster: Cluster,
        *,
        base_env: Mapping[str, str],
        workdir: Path,
        stand_in: bool = False,
    ) -> None:
        self._stand_in = stand_in
        self.hold = False
        """Stand-in only: pods started from now on stay ``Running`` until released."""
        self._api = api
        self._core = client.CoreV1Api(api)
        self._cluster = cluster
        self._base_env = dict(base_env)
        self._workdir = workdir
        self._pods: dict[str, LocalPod] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: watch.Watch | None = None
        self._thread = threading.Thread(target=self._watch_forever, name="pod-runner", daemon=True)
        self.server_for: Callable[[client.V1Pod], str | None] = lambda pod: None
        """The API server address a pod's kubeconfig names (a test may route a pod via a proxy)."""

    # -- public -----------------------------------------------------------------------------

    def start(self) -> PodRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching and end every process still running (SIGTERM, then SIGKILL)."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.stop()
        with self._lock:
            pods = list(self._pods.values())
        for pod in pods:
            self._terminate(pod, grace_seconds=min(pod.grace_seconds, 5))
        for pod in pods:
            pod.finished.wait(10)

    def release(self, which: Callable[[LocalPod], bool]) -> None:
        """Stand-in only: let the held pods that ``which`` picks succeed."""
        for pod in self.pods():
            if which(pod):
                pod.exit_requested.set()

    def kill(self, pod: LocalPod) -> None:
        """SIGKILL the pod's processes, as a node crash or an OOM kill would end them."""
        if pod.process is not None and pod.process.poll() is None:
            _signal_group(pod.process, signal.SIGKILL)

    def pods(self, namespace: str | None = None) -> list[LocalPod]:
        with self._lock:
            return [p for p in self._pods.values() if namespace in (None, p.namespace)]

    # -- watching ---------------------------------------------------------------------------

    def _watch_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                listing = self._core.list_pod_for_all_namespaces()
                for pod in listing.items:
                    self._on_pod("ADDED", pod)
                self._watcher = watch.Watch()
                for event in self._watcher.stream(
                    self._core.list_pod_for_all_namespaces,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=60,
                ):
                    if self._stopping.is_set():
                        return
                    self._on_pod(event["type"], event["object"])
            except ApiException as exc:
                if exc.status != 410:  # 410 Gone: our resourceVersion expired; relist
                    log.warning("pod watch failed: %s", exc.reason)
                    self._stopping.wait(1)
            except Exception:  # the watch connection broke: relist after a short pause
                if not self._stopping.is_set():
                    log.exception("pod watch broke; relisting")
                    self._stopping.wait(1)

    def _on_pod(self, event_type: str, pod: client.V1Pod) -> None:
        meta = pod.metadata
        with self._lock:
            known = self._pods.get(meta.uid)
        if known is not None:
            if event_type == "DELETED" or meta.deletion_timestamp is not None:
                grace = meta.deletion_grace_period_seconds
                threading.Thread(
                    target=self._terminate,
                    args=(known,),
                    kwargs={"grace_seconds": known.grace_seconds if not grace else grace},
                    daemon=True,
                ).start()
            return
        if event_type == "DELETED" or not _is_runnable(pod):
            return
        local = LocalPod(
            meta.namespace,
            meta.name,
            meta.uid,
            grace_seconds=pod.spec.termination_grace_period_seconds or 30,
        )
        with self._lock:
            self._pods[meta.uid] = local
        threading.Thread(
            target=self._run, args=(pod, local), name=f"pod-{meta.name}", daemon=True
        ).start()

    # -- running ----------------------------------------------------------------------------

    def _run(self, pod: client.V1Pod, local: LocalPod) -> None:
        container = pod.spec.containers[0]
        started = _now()
        if self._stand_in:
            self._stand_in_for(local, container.name, started)
            return
        try:
            argv = _expand_argv(container, env := self._environment(pod, container))
            if not argv:
                raise ValueError("the pod runner needs an explicit container command")
            pod_dir = Path(tempfile.mkdtemp(prefix=f"{local.name}-", dir=self._workdir))
            env["KUBECONFIG"] = str(
                self._cluster.kubeconfig_for(
                    self._api,
                    pod_dir / "kubeconfig",
                    namespace=local.namespace,
                    account=pod.spec.service_account_name or "default",
                    bound_pod=pod,
                    server=self.server_for(pod),
                )
            )
            local.log_path = pod_dir / "container.log"
            with open(local.log_path, "wb") as output:
                local.process = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=pod_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except Exception as exc:  # configuration the runner cannot honour: the pod fails, visibly
            log.warning("cannot run pod %s/%s: %s", local.namespace, local.name, exc)
            self._report_terminated(
                local, container.name, 128, started, reason="StartError", message=str(exc)
            )
            local.finished.set()
            return
        local.started_at = time.monotonic()
        if local.terminating.is_set():  # deleted while we were starting it
            _signal_group(local.process, signal.SIGKILL)
        self._report_running(local, container.name, started)
        local.exit_code = _exit_code(local.process.wait())
        local.ended_at = time.monotonic()
        self._report_terminated(local, container.name, local.exit_code, started)
        local.finished.set()

    def _stand_in_for(self, local: LocalPod, container: str, started: str) -> None:
        if not self.hold:
            local.exit_requested.set()
        self._report_running(local, container, started)
        local.exit_requested.wait()
        local.exit_code = 143 if local.terminating.is_set() else 0
        self._report_terminated(local, container, local.exit_code, started)
        local.finished.set()

    def _terminate(self, pod: LocalPod, *, grace_seconds: int) -> None:
        if pod.terminating.is_set():
            return
        pod.terminating.set()
        pod.exit_requested.set()
        process = pod.process
        if process is None or process.poll() is not None:
            return
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()

    def _environment(self, pod: client.V1Pod, container: client.V1Container) -> dict[str, str]:
        namespace = pod.metadata.namespace
        env = dict(self._base_env)
        env["HOSTNAME"] = pod.metadata.name
        for source in container.env_from or []:
            prefix = source.prefix or ""
            if source.secret_ref is not None:
                data = self._secret(namespace, source.secret_ref.name, source.secret_ref.optional)
            else:
                data = self._config_map(
                    namespace, source.config_map_ref.name, source.config_map_ref.optional
                )
            env.update({prefix + key: value for key, value in data.items()})
        for var in container.env or []:
            if var.value_from is None:
                env[var.name] = _VAR_REF.sub(
                    lambda m: env.get(m.group(1), m.group(0)), var.value or ""
                )
                continue
            value = self._resolve(pod, var.value_from)
            if value is not None:
                env[var.name] = value
        return env

    def _resolve(self, pod: client.V1Pod, source: client.V1EnvVarSource) -> str | None:
        namespace = pod.metadata.namespace
        if source.secret_key_ref is not None:
            ref = source.secret_key_ref
            return self._secret(namespace, ref.name, ref.optional).get(ref.key) or _missing(ref)
        if source.config_map_key_ref is not None:
            ref = source.config_map_key_ref
            return self._config_map(namespace, ref.name, ref.optional).get(ref.key) or _missing(ref)
        if source.field_ref is not None:
            return _field(pod, source.field_ref.field_path)
        raise ValueError("resourceFieldRef is not supported by the pod runner")

    def _secret(self, namespace: str, name: str, optional: bool | None) -> dict[str, str]:
        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            raise ValueError(f"secret {namespace}/{name} is not readable: {exc.reason}") from exc
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def _config_map(self, namespace: str, name: str, optional: bool | None) -> dict[str, str]:
        try:
            return dict(self._core.read_namespaced_config_map(name, namespace).data or {})
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            raise ValueError(f"configmap {namespace}/{name} is not readable: {exc.reason}") from exc

    # -- status reports ---------------------------------------------------------------------

    def _report_running(self, pod: LocalPod, container: str, started: str) -> None:
        self._patch_status(
            pod,
            {
                "phase": "Running",
                "startTime": started,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}],
                "containerStatuses": [
                    _container_status(container, {"running": {"startedAt": started}}, ready=True)
                ],
            },
        )

    def _report_terminated(
        self,
        pod: LocalPod,
        container: str,
        exit_code: int,
        started: str,
        *,
        reason: str = "",
        message: str = "",
    ) -> None:
        terminated = {
            "exitCode": exit_code,
            "startedAt": started,
            "finishedAt": _now(),
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        }
        if message:
            terminated["message"] = message
        self._patch_status(
            pod,
            {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": _now()}],
                "containerStatuses": [_container_status(container, {"terminated": terminated})],
            },
        )

    def _patch_status(self, pod: LocalPod, status: dict[str, Any]) -> None:
        try:
            self._core.patch_namespaced_pod_status(pod.name, pod.namespace, {"status": status})
        except ApiException as exc:
            if exc.status != 404:  # a pod already gone needs no report
                log.warning(
                    "status of pod %s/%s not reported: %s", pod.namespace, pod.name, exc.reason
                )


# -- helpers ----------------------------------------------------------------------------------


def _is_runnable(pod: client.V1Pod) -> bool:
    owners = pod.metadata.owner_references or []
    return (
        pod.metadata.deletion_timestamp is None
        and not pod.spec.node_name
        and pod.spec.scheduler_name == POD_RUNNER_SCHEDULER
        and (pod.status.phase or "Pending") == "Pending"
        and any(owner.kind == "Job" for owner in owners)
    )


def _expand_argv(container: client.V1Container, env: Mapping[str, str]) -> list[str]:
    def expand(text: str) -> str:
        return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text)

    return [expand(part) for part in [*(container.command or []), *(container.args or [])]]


def _field(pod: client.V1Pod, path: str) -> str:
    fields = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.serviceAccountName": pod.spec.service_account_name or "default",
        "spec.nodeName": "",
        "status.podIP": "127.0.0.1",
    }
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return (getattr(pod.metadata, match.group(1)) or {}).get(match.group(2), "")
    if path not in fields:
        raise ValueError(f"fieldRef {path} is not supported by the pod runner")
    return fields[path]


def _missing(ref: Any) -> str | None:
    if ref.optional:
        return None
    raise ValueError(f"key {ref.key} not found in {ref.name}")


def _container_status(name: str, state: dict[str, Any], *, ready: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "image": "local",
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "started": ready,
        "state": state,
    }


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode  # -15 (SIGTERM) -> 143, like a shell


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
