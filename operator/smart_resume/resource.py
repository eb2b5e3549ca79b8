"""Names of the SmartResumeRun API and of the objects a run owns.

The CRD in ``crds/`` and the code agree on these constants; the helpers derive the names of a run's
children (Jobs, Leases) and their labels deterministically, so a restarted operator finds the same
objects again instead of creating duplicates. Nothing here talks to the API server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

GROUP: Final = "smartresume.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "SmartResumeRun"
PLURAL: Final = "smartresumeruns"
SHORT_NAME: Final = "srr"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"
STREAM_KIND: Final = "SmartResumeStream"
STREAM_PLURAL: Final = "smartresumestreams"
"""A stream's cycle checkpoint: one per stream and namespace, outliving every run."""

PREFIX: Final = GROUP
"""Prefix of our labels and annotations (and of kopf's, via its annotation-prefix setting)."""
FINALIZER: Final = f"{PREFIX}/finalizer"
HANDLED_KEY: Final = "last-handled-configuration"
HANDLED: Final = f"{PREFIX}/{HANDLED_KEY}"
"""The annotation kopf writes once a run's start handler has finished (its diff base)."""
LABEL_RUN: Final = f"{PREFIX}/run"
"""On every child of a run: the run's name (shortened like a Job name when over 63 characters)."""
LABEL_STREAM: Final = f"{PREFIX}/stream"
"""On a stream's Job and Lease: the stream number."""

MAX_NAME_LENGTH: Final = 63
"""Job names end up in the ``job-name`` label of its pods, so they obey the label-value limit."""
_HASH_LENGTH: Final = 8
_LEASE_PREFIX: Final = "smart-resume-stream-"


def holder_identity(run: Mapping[str, Any]) -> str:
    """Who holds a stream Lease on behalf of a run: ``namespace/name/uid``."""
    meta = run["metadata"]
    return f"{meta['namespace']}/{meta['name']}/{meta['uid']}"


def lease_name(stream: int) -> str:
    """The Lease that locks ``stream`` in the run's namespace: ``smart-resume-stream-<n>``."""
    return f"{_LEASE_PREFIX}{stream}"


def checkpoint_name(stream: int, *, ad_hoc_run: str | None = None) -> str:
    """The SmartResumeStream holding a stream's cycle: ``stream-<n>``.

    An ad-hoc run (``spec.clients``) never continues nor disturbs the scheduled cycle: its
    checkpoint is its own (named like its Job, and owned by the run).
    """
    return job_name(ad_hoc_run, stream) if ad_hoc_run else f"stream-{stream}"


def job_name(run_name: str, stream: int) -> str:
    """The Job of ``stream`` in run ``run_name``: ``<run>-s<n>``, at most 63 characters.

    A run name too long for that is cut and followed by a hash of the full name, so distinct
    runs never share a Job name and the same run always gets the same one.
    """
    return _fit(run_name, suffix=f"-s{stream}")


def labels(run_name: str, stream: int | None = None) -> dict[str, str]:
    """The labels of a run's child; ``stream`` only for per-stream children."""
    result = {LABEL_RUN: _fit(run_name)}
    if stream is not None:
        result[LABEL_STREAM] = str(stream)
    return result


def selector(run_name: str, stream: int | None = None) -> str:
    """A label selector matching the children that ``labels(run_name, stream)`` labels."""
    return ",".join(f"{key}={value}" for key, value in labels(run_name, stream).items())


def _fit(name: str, *, suffix: str = "") -> str:
    if len(name) + len(suffix) <= MAX_NAME_LENGTH:
        return name + suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LENGTH]
    keep = MAX_NAME_LENGTH - len(suffix) - _HASH_LENGTH - 1
    # A cut may end in '-' or '.', which would leave an invalid DNS label before the hash.
    head = re.sub(r"[-.]+$", "", name[:keep])
    return f"{head}-{digest}{suffix}"
