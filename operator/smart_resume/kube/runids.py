"""The cluster-wide run ID counter: a ConfigMap in the operator's namespace.

Run IDs key Airtable records in one master base shared by every namespace, so they are numbered
by one counter that outlives operator restarts and the deletion or pruning of runs. The
ConfigMap holds the last ID handed out; taking the next one is a replace conditioned on the
resourceVersion that was read, so two operators (or two threads) racing for a number get a 409
and try again with the newer value: no number is given twice. The ConfigMap as last written is
kept, so that taking a number costs one request while this process is the only one taking them.
A number taken by an operator that dies before writing it into its run's status is skipped, never
reused.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from smart_resume.core.runid import next_run_id

COUNTER_NAME: Final = "smart-resume-run-ids"
LAST_KEY: Final = "last"
ATTEMPTS: Final = 20
BACKOFF_SECONDS: Final = 0.02
"""First bound of the random wait after a lost race; it doubles, so racers spread out."""


class RunIdCounter:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str = COUNTER_NAME,
        today: Callable[[], date],
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._name = name
        self._today = today
        self._last: client.V1ConfigMap | None = None
        """The counter as this process last wrote it: read again only after a 409."""
        self._lock = threading.Lock()

    def take(self) -> str:
        """The next run ID of today, reserved for good.

        Raises:
            RuntimeError: the counter kept changing under us for ``ATTEMPTS`` tries.
        """
        with self._lock:  # this process's takes, one after another: they do not race
            for attempt in range(ATTEMPTS):
                if attempt:  # lost a race: wait a random while, so that racers do not collide
                    time.sleep(random.uniform(0, BACKOFF_SECONDS * 2 ** min(attempt, 6)))
                counter, self._last = self._last or self._read_or_create(), None
                data = counter.data or {}
                run_id = next_run_id([data.get(LAST_KEY, "")], self._today())
                counter.data = {**data, LAST_KEY: run_id}
                try:
                    # metadata.resourceVersion is the one read: a 409 means someone took one.
                    self._last = self._core.replace_namespaced_config_map(
                        self._name, self._namespace, counter
                    )
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                    continue
                return run_id
        raise RuntimeError(f"ConfigMap {self._namespace}/{self._name} kept changing")

    def _read_or_create(self) -> client.V1ConfigMap:
        try:
            return self._core.read_namespaced_config_map(self._name, self._namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=self._name,
                labels={"app.kubernetes.io/name": "smart-resume-operator"},
                annotations={
                    "smartresume.io/purpose": "last run ID handed out; do not delete "
                    "(run IDs key Airtable records)"
                },
            ),
            data={},
        )
        try:
            return self._core.create_namespaced_config_map(self._namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        return self._core.read_namespaced_config_map(self._name, self._namespace)
