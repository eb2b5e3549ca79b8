"""Whole-client throughput: one client through lead scoring, post harvesting and post scoring.

The client runs in a process of its own (``client_process.py``, configured through the
``SMART_RESUME_*`` environment like a worker) against the local fakes over real HTTP, with
realistic latencies scaled down by one factor ``--scale`` (default 1/10) to keep the run short:

    AI answer 1.5 s, Apify 10 s per profile per run (plus 0.1 s per request), Airtable
    5 requests/s per base (enforced by the fake with 429s, paced by the client) and 0.25 s per
    request.

Every time printed is scaled back to real seconds (divided by the factor); the client's own CPU
time is scaled up with it, so the real-scale figures are slightly pessimistic.

For each task the bound is the slowest of its resources: AI calls / AI concurrency x AI latency,
Apify profiles / run concurrency x per-profile time, Airtable requests / 5 per second. A client
runs its tasks one after another, so the whole-client bound is the sum of the three.

Scenarios: every lead new (all three tasks on every lead) for ``--leads`` (100 and 1,000); the
same with one AI call and one actor run at a time (the sequential baseline, 100 leads); the seeds'
mix (3 % of the leads new, a seventh of the posts due, their posts changed) giving clients per
hour per stream; and a ``--rss-leads`` client (10,000) at ``--rss-scale`` for peak RSS only.

Run: ``make bench-client``. It prints figures and asserts nothing; the goals are the issue's.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fakes import fake_ai, fake_airtable, fake_apify
from fakes.fake_ai import FakeAI
from fakes.fake_airtable import FakeAirtable
from fakes.fake_apify import FakeApify
from smart_resume.integrations.airtable_fields import ClientsTable, LeadsTable, ScoringStatus
from smart_resume.integrations.apify import Post
from smart_resume.tasks import post_harvesting

AI_SECONDS = 1.5
APIFY_SECONDS_PER_PROFILE = 10.0
APIFY_REQUEST_SECONDS = 0.1
AIRTABLE_REQUESTS_PER_SECOND = 5.0
AIRTABLE_REQUEST_SECONDS = 0.25
POSTS_PER_LEAD = 10
MASTER_BASE = "appBenchMaster001"
TASKS = ("lead_scoring", "post_harvesting", "post_scoring")
GOAL_TASK_SHARE, GOAL_CLIENT_SHARE, GOAL_HARVEST_SPEEDUP = 0.85, 0.80, 4.0
GOAL_RSS_MIB, GOAL_CLIENTS_PER_DAY = 150, 800


@dataclasses.dataclass(frozen=True)
class Mix:
    name: str
    new: float
    """Share of the leads still to score."""
    due: float
    """Share of the leads whose posts are due (their stored posts are then out of date)."""


EVERY_LEAD_NEW = Mix("every lead new", 1.0, 1.0)
SEEDS_MIX = Mix("seeds' mix", 0.03, 1 / 7)


@dataclasses.dataclass(frozen=True)
class Config:
    scale: float
    ai_concurrency: int
    run_concurrency: int


@dataclasses.dataclass
class TaskFigures:
    seconds: float
    """Real-scale."""
    ai_calls: int
    profiles: int
    airtable_requests: int
    outcome: dict[str, Any]

    def bound(self, config: Config) -> float:
        """Real-scale seconds: the slowest of this task's resources."""
        return max(
            self.ai_calls / config.ai_concurrency * AI_SECONDS,
            self.profiles / config.run_concurrency * APIFY_SECONDS_PER_PROFILE,
            self.airtable_requests / AIRTABLE_REQUESTS_PER_SECOND,
        )


@dataclasses.dataclass
class ClientFigures:
    leads: int
    mix: Mix
    config: Config
    tasks: dict[str, TaskFigures]
    peak_rss_kib: int
    started_rss_kib: int
    rate_limited: int
    cpu_seconds: float
    """The client process's own CPU time, not scaled."""

    @property
    def seconds(self) -> float:
        return sum(task.seconds for task in self.tasks.values())

    @property
    def bound(self) -> float:
        return sum(task.bound(self.config) for task in self.tasks.values())

    @property
    def airtable_requests(self) -> int:
        return sum(task.airtable_requests for task in self.tasks.values())


class Fakes:
    """The three fakes with the scaled latencies; counters are read between tasks."""

    def __init__(self, scale: float) -> None:
        self.airtable = FakeAirtable(
            enforce_rate_limit=True,
            requests_per_second=AIRTABLE_REQUESTS_PER_SECOND / scale,
            latency_seconds=AIRTABLE_REQUEST_SECONDS * scale,
        )
        self.ai = FakeAI(latency_seconds=AI_SECONDS * scale)
        self.apify = FakeApify(
            latency_seconds=APIFY_REQUEST_SECONDS * scale,
            seconds_per_profile=APIFY_SECONDS_PER_PROFILE * scale,
        )
        for fake in (self.airtable, self.ai, self.apify):
            fake.keep_requests = False

    def __enter__(self) -> Fakes:
        for fake in (self.airtable, self.ai, self.apify):
            fake.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for fake in (self.airtable, self.ai, self.apify):
            fake.stop()

    def counters(self) -> tuple[int, int, int]:
        profiles = sum(len(urls) for urls in self.apify.started_runs)
        return self.ai.total_requests, profiles, self.airtable.total_requests


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    full = Config(args.scale, args.ai_concurrency, args.run_concurrency)
    sequential = Config(args.scale, 1, 1)
    print(__doc__.split("\n\n")[0])
    print(
        f"latencies scaled by 1/{1 / args.scale:g}; AI concurrency {full.ai_concurrency}, "
        f"run concurrency {full.run_concurrency}; all times in real-scale seconds\n"
    )
    with Fakes(args.scale) as fakes:
        for leads in args.leads:
            figures = measure(fakes, leads, EVERY_LEAD_NEW, full)
            baseline = (
                measure(fakes, leads, EVERY_LEAD_NEW, sequential)
                if leads <= args.baseline_leads
                else None
            )
            report(figures, baseline)
        for leads in args.leads:
            report_mix(measure(fakes, leads, SEEDS_MIX, full))
    rss_config = dataclasses.replace(full, scale=args.rss_scale)
    with Fakes(args.rss_scale) as fakes:
        big = measure(fakes, args.rss_leads, EVERY_LEAD_NEW, rss_config)
    print(
        f"{args.rss_leads:,} leads, every lead new (latencies 1/{1 / args.rss_scale:g}, for "
        f"memory only): peak RSS {big.peak_rss_kib / 1024:.1f} MiB "
        f"(after imports {big.started_rss_kib / 1024:.1f} MiB; goal < {GOAL_RSS_MIB} MiB); "
        f"examined {[big.tasks[t].outcome['examined'] for t in TASKS]}"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="latency factor (1/10)")
    parser.add_argument("--leads", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--baseline-leads", type=int, default=100, help="largest baseline")
    parser.add_argument("--rss-leads", type=int, default=10_000)
    parser.add_argument("--rss-scale", type=float, default=0.005)
    parser.add_argument("--ai-concurrency", type=int, default=8)
    parser.add_argument("--run-concurrency", type=int, default=8)
    return parser


def measure(fakes: Fakes, leads: int, mix: Mix, config: Config) -> ClientFigures:
    """Seed a client's base with ``leads`` leads in ``mix`` and run its three tasks."""
    base_id = _seed(fakes, leads, mix)
    client = {
        "client_id": "bench-recruiting",
        "name": "Bench Recruiting",
        "base_id": base_id,
        "stream": 1,
        "fields": {
            ClientsTable.SCORING_CRITERIA: "Heads of talent at B2B SaaS companies.",
            ClientsTable.POST_TOPICS: "Hiring, recruiting operations, employer branding.",
        },
    }
    limited_before = fakes.airtable.rate_limited_requests
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("client_process.py")), json.dumps(client)],
        env={**os.environ, **_environment(fakes, config)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    tasks: dict[str, TaskFigures] = {}
    before = fakes.counters()
    line: dict[str, Any] = {}
    for _ in TASKS:
        line = json.loads(child.stdout.readline())
        after = fakes.counters()
        ai, profiles, airtable = (a - b for a, b in zip(after, before, strict=True))
        tasks[line["task"]] = TaskFigures(
            line["seconds"] / config.scale, ai, profiles, airtable, line["outcome"]
        )
        before = after
        child.stdin.write("\n")
        child.stdin.flush()
    rss = json.loads(child.stdout.readline())
    child.wait()
    return ClientFigures(
        leads=leads,
        mix=mix,
        config=config,
        tasks=tasks,
        peak_rss_kib=rss["peak_rss_kib"],
        started_rss_kib=rss["started_rss_kib"],
        rate_limited=fakes.airtable.rate_limited_requests - limited_before,
        cpu_seconds=line["cpu_seconds"],
    )


def report(figures: ClientFigures, baseline: ClientFigures | None) -> None:
    config = figures.config
    print(f"{figures.leads:,} leads, {figures.mix.name}:")
    print(
        f"  {'task':16}{'wall s':>9}{'bound s':>9}{'ratio':>7}{'AI calls':>10}{'profiles':>10}"
        f"{'Airtable':>10}{'baseline s':>12}{'speed-up':>10}"
    )
    for name in TASKS:
        task = figures.tasks[name]
        base = baseline.tasks[name].seconds if baseline else None
        print(
            f"  {name:16}{task.seconds:>9.1f}{task.bound(config):>9.1f}"
            f"{task.bound(config) / task.seconds:>7.1%}{task.ai_calls:>10}{task.profiles:>10}"
            f"{task.airtable_requests:>10}"
            + (f"{base:>12.1f}{base / task.seconds:>9.2f}x" if base else f"{'n/a':>12}")
        )
    base_total = (
        f"{baseline.seconds:>12.1f}{baseline.seconds / figures.seconds:>9.2f}x" if baseline else ""
    )
    print(
        f"  {'whole client':16}{figures.seconds:>9.1f}{figures.bound:>9.1f}"
        f"{figures.bound / figures.seconds:>7.1%}{'':30}{base_total}"
    )
    print(
        f"  Airtable requests per lead {figures.airtable_requests / figures.leads:.3f} "
        f"({figures.rate_limited} answered 429); peak RSS {figures.peak_rss_kib / 1024:.1f} MiB; "
        f"client CPU {figures.cpu_seconds:.1f} s (not scaled)"
    )
    print(
        f"  goals: each task >= {GOAL_TASK_SHARE:.0%} of its bound, the client >= "
        f"{GOAL_CLIENT_SHARE:.0%}, harvesting >= {GOAL_HARVEST_SPEEDUP:g}x the baseline\n"
    )


def report_mix(figures: ClientFigures) -> None:
    per_hour = 3600 / figures.seconds
    parts = ", ".join(
        f"{name} {figures.tasks[name].seconds:.1f} s ({figures.tasks[name].outcome['examined']})"
        for name in TASKS
    )
    print(
        f"{figures.leads:,} leads, {figures.mix.name}: {figures.seconds:.1f} s per client "
        f"= {figures.bound / figures.seconds:.1%} of its bound {figures.bound:.1f} s [{parts}]; "
        f"{per_hour:.0f} clients per hour = {per_hour * 24:.0f} a day per stream "
        f"(goal >= {GOAL_CLIENTS_PER_DAY}); peak RSS {figures.peak_rss_kib / 1024:.1f} MiB\n"
    )


def _environment(fakes: Fakes, config: Config) -> dict[str, str]:
    return {
        "SMART_RESUME_AIRTABLE_API_KEY": fake_airtable.DEFAULT_API_KEY,
        "SMART_RESUME_AIRTABLE_ENDPOINT_URL": fakes.airtable.url,
        "SMART_RESUME_AIRTABLE_MASTER_BASE_ID": MASTER_BASE,
        "SMART_RESUME_AIRTABLE_REQUESTS_PER_SECOND_PER_BASE": str(
            AIRTABLE_REQUESTS_PER_SECOND / config.scale
        ),
        "SMART_RESUME_AIRTABLE_RATE_LIMIT_PENALTY_SECONDS": str(30 * config.scale),
        "SMART_RESUME_AI_API_KEY": fake_ai.DEFAULT_API_KEY,
        "SMART_RESUME_AI_BASE_URL": f"{fakes.ai.url}/v1",
        "SMART_RESUME_AI_MODEL": "fake-model",
        "SMART_RESUME_AI_CONCURRENCY": str(config.ai_concurrency),
        "SMART_RESUME_APIFY_TOKEN": fake_apify.DEFAULT_TOKEN,
        "SMART_RESUME_APIFY_BASE_URL": fakes.apify.url,
        "SMART_RESUME_APIFY_ACTOR_ID": fake_apify.DEFAULT_ACTOR,
        "SMART_RESUME_APIFY_RUN_CONCURRENCY": str(config.run_concurrency),
        "SMART_RESUME_APIFY_MAX_POSTS_PER_LEAD": str(POSTS_PER_LEAD),
    }


def _seed(fakes: Fakes, leads: int, mix: Mix) -> str:
    """A base with ``leads`` leads in ``mix``; the fake Apify knows every lead's current posts."""
    base_id = "app" + secrets.token_hex(7)
    fakes.airtable.add_table(base_id, LeadsTable.TABLE, fields=LeadsTable.field_names())
    now = dt.datetime.now(dt.UTC)
    records = []
    for i in range(leads):
        url = f"https://www.linkedin.com/in/bench-{base_id}-{i:05d}"
        posts = [_post(url, i, k) for k in range(POSTS_PER_LEAD)]
        fakes.apify.set_posts(url, posts)
        fields: dict[str, Any] = {
            LeadsTable.LINKEDIN_PROFILE_URL: url,
            LeadsTable.FIRST_NAME: "Lead",
            LeadsTable.LAST_NAME: f"Number {i}",
            LeadsTable.HEADLINE: "Head of Talent at a B2B SaaS company",
            LeadsTable.COMPANY_NAME: "Acme SaaS",
            LeadsTable.ABOUT: "Builds recruiting teams. " * 20,
        }
        if i >= leads * mix.new:
            fields |= {LeadsTable.SCORING_STATUS: ScoringStatus.SCORED, LeadsTable.AI_SCORE: 60}
        if mix is not EVERY_LEAD_NEW and i % round(1 / mix.due) != 0:  # checked yesterday
            fields |= post_harvesting.harvested_fields(
                posts, previous_posts_json=None, now=now - dt.timedelta(days=1)
            )
            fields |= {LeadsTable.POSTS_RELEVANCE_STATUS: ScoringStatus.SCORED}
        elif mix is not EVERY_LEAD_NEW:  # checked 8 days ago: one post since
            fields |= post_harvesting.harvested_fields(
                posts[1:], previous_posts_json=None, now=now - dt.timedelta(days=8)
            )
            fields |= {LeadsTable.POSTS_RELEVANCE_STATUS: ScoringStatus.SCORED}
        records.append(fields)
    fakes.airtable.add_records(base_id, LeadsTable.TABLE, records)
    return base_id


def _post(url: str, lead: int, k: int) -> Post:
    return Post(
        url=f"https://www.linkedin.com/posts/bench-{lead:05d}_activity-{k}",
        text=f"Post {k}: what we learned hiring recruiters this quarter. " * 8,
        posted_at=f"2026-11-{k + 1:02d}T09:30:00+00:00",
        author_profile_url=url,
        reactions=10 * k,
        comments=k,
    )


if __name__ == "__main__":
    sys.exit(main())
