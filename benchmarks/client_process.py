"""One client's three tasks in a process of its own, as a stream worker's child runs them.

Used by ``client_throughput.py``: settings come from the ``SMART_RESUME_*`` environment (the one
config loader), the client from a JSON argument. After each task it prints one JSON line (task,
seconds, outcome) and waits for a line on stdin, so the parent can read the fakes' counters
between tasks; it ends with a line holding its peak RSS. It imports nothing of the fakes, so the
RSS is the client's own. Peak RSS is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` would
carry the parent's high-water mark over the ``vfork``/``exec`` that started this process.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

from smart_resume.config import Settings
from smart_resume.core.clients import Client
from smart_resume.tasks import lead_scoring, post_harvesting, post_scoring
from smart_resume.tasks.base import TaskContext
from smart_resume.tasks.services import Services

TASKS = (
    ("lead_scoring", lead_scoring.run),
    ("post_harvesting", post_harvesting.run),
    ("post_scoring", post_scoring.run),
)


def main() -> int:
    client = Client(**json.loads(sys.argv[1]))
    settings = Settings.from_env()
    ctx = TaskContext(
        client=client, run_id="SR-261201-001", settings=settings, services=Services(settings)
    )
    started_kib = _peak_rss_kib()
    for name, task in TASKS:
        began = time.perf_counter()
        outcome = task(ctx)
        seconds = time.perf_counter() - began
        usage = resource.getrusage(resource.RUSAGE_SELF)
        line = {
            "task": name,
            "seconds": seconds,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "rss_kib": _peak_rss_kib(),
            "outcome": dataclasses.asdict(outcome),
        }
        print(json.dumps(line))
        sys.stdout.flush()
        sys.stdin.readline()
    print(json.dumps({"started_rss_kib": started_kib, "peak_rss_kib": _peak_rss_kib()}))
    return 0


def _peak_rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


if __name__ == "__main__":
    sys.exit(main())
