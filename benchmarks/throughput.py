"""Throughput of lead scoring against the local fakes: leads per second, Airtable requests per lead.

Sets up N clients with M leads to score, each client in its own base of one ``FakeAirtable`` that
answers 429 above 5 requests per second per base, and a ``FakeAI`` that answers every request
after a fixed latency. The clients are then scored one after another, as a stream worker does,
by the real task (``smart_resume.tasks.lead_scoring.run``) in this process over real HTTP on
127.0.0.1 with the production Airtable pacing: once with ``--concurrency`` AI calls in flight and
once one lead at a time (the baseline, concurrency 1), each on fresh bases.

The theoretical bound for one client at a time is min(concurrency / AI latency, Airtable limit),
the Airtable limit being 5 requests per second per base times 10 leads per write request (the one
read per 100 leads is left out, so the bound is slightly generous).

Run: ``python benchmarks/throughput.py [--clients N] [--leads M] [--ai-latency S]
[--concurrency C]``. It prints figures and asserts nothing; the goals it prints are the issue's.
"""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import sys
import time
from collections.abc import Sequence

from fakes import fake_ai, fake_airtable
from fakes.fake_ai import FakeAI
from fakes.fake_airtable import FakeAirtable
from smart_resume.config import AirtableSettings, AISettings, Secret, Settings
from smart_resume.core.clients import Client
from smart_resume.integrations.airtable_fields import ClientsTable, LeadsTable, ScoringStatus
from smart_resume.tasks import lead_scoring
from smart_resume.tasks.base import TaskContext
from smart_resume.tasks.leads import RECORDS_PER_REQUEST
from smart_resume.tasks.services import Services

MASTER_BASE = "appBenchMaster001"
GOAL_SHARE_OF_BOUND = 0.8
GOAL_SPEEDUP = 4.0
GOAL_REQUESTS_PER_LEAD = 0.25


@dataclasses.dataclass(frozen=True)
class Measurement:
    concurrency: int
    leads: int
    scored: int
    seconds: float
    airtable_requests: int
    rate_limited: int
    """429 answers from the fake Airtable (the pacing should keep this at 0)."""

    @property
    def leads_per_second(self) -> float:
        return self.scored / self.seconds

    @property
    def requests_per_lead(self) -> float:
        return self.airtable_requests / self.leads


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    airtable = FakeAirtable(enforce_rate_limit=True)
    ai = FakeAI(latency_seconds=args.ai_latency)
    with airtable, ai:
        runs = [
            _measure(airtable, ai, clients=args.clients, leads=args.leads, concurrency=c)
            for c in (args.concurrency, 1)
        ]
    _report(runs, args)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=3, help="clients (default 3)")
    parser.add_argument("--leads", type=int, default=100, help="leads per client (default 100)")
    parser.add_argument(
        "--ai-latency", type=float, default=0.2, help="seconds per AI answer (default 0.2)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="AI calls in flight per client (default 8)"
    )
    return parser


def _measure(
    airtable: FakeAirtable, ai: FakeAI, *, clients: int, leads: int, concurrency: int
) -> Measurement:
    settings = Settings(
        airtable=AirtableSettings(
            api_key=Secret(fake_airtable.DEFAULT_API_KEY),
            endpoint_url=airtable.url,
            master_base_id=MASTER_BASE,
        ),
        ai=AISettings(
            api_key=Secret(fake_ai.DEFAULT_API_KEY),
            base_url=f"{ai.url}/v1",
            model="fake-model",
            concurrency=concurrency,
        ),
    )
    services = Services(settings)
    contexts = [
        TaskContext(
            client=_client(airtable, n, leads), run_id="bench", settings=settings, services=services
        )
        for n in range(clients)
    ]
    requests_before, limited_before = airtable.total_requests, airtable.rate_limited_requests
    began = time.perf_counter()
    scored = sum(lead_scoring.run(ctx).succeeded for ctx in contexts)
    seconds = time.perf_counter() - began
    return Measurement(
        concurrency=concurrency,
        leads=clients * leads,
        scored=scored,
        seconds=seconds,
        airtable_requests=airtable.total_requests - requests_before,
        rate_limited=airtable.rate_limited_requests - limited_before,
    )


def _client(airtable: FakeAirtable, n: int, leads: int) -> Client:
    """A client with ``leads`` leads to score, in a base of its own."""
    base_id = "app" + secrets.token_hex(7)
    airtable.add_table(base_id, LeadsTable.TABLE, fields=LeadsTable.field_names())
    airtable.add_records(
        base_id,
        LeadsTable.TABLE,
        [
            {
                LeadsTable.LINKEDIN_PROFILE_URL: f"https://www.linkedin.com/in/bench-{n}-{i:05d}",
                LeadsTable.HEADLINE: "Head of Talent",
                LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED,
            }
            for i in range(leads)
        ],
    )
    return Client(
        client_id=f"bench-{n}",
        name=f"Bench {n}",
        base_id=base_id,
        stream=1,
        fields={ClientsTable.SCORING_CRITERIA: "Heads of talent at B2B SaaS companies."},
    )


def _report(runs: Sequence[Measurement], args: argparse.Namespace) -> None:
    concurrent, baseline = runs
    rate = AirtableSettings().requests_per_second_per_base
    ai_bound = args.concurrency / args.ai_latency
    airtable_bound = rate * RECORDS_PER_REQUEST
    bound = min(ai_bound, airtable_bound)
    print(
        f"lead scoring: {args.clients} clients x {args.leads} leads, one client at a time, "
        f"AI latency {args.ai_latency:.3f} s, Airtable {rate:g} requests/s per base"
    )
    print(
        f"{'':16}{'concurrency':>12}{'scored':>9}{'seconds':>9}{'leads/s':>9}"
        f"{'Airtable req/lead':>19}{'429s':>6}"
    )
    for label, run in (("concurrent", concurrent), ("one at a time", baseline)):
        print(
            f"{label:16}{run.concurrency:>12}{f'{run.scored}/{run.leads}':>9}"
            f"{run.seconds:>9.2f}{run.leads_per_second:>9.2f}{run.requests_per_lead:>19.3f}"
            f"{run.rate_limited:>6}"
        )
    print(
        f"theoretical bound: min({args.concurrency} / {args.ai_latency:g} s = {ai_bound:.1f}, "
        f"{rate:g} req/s x {RECORDS_PER_REQUEST} leads = {airtable_bound:.1f}) "
        f"= {bound:.1f} leads/s"
    )
    share = concurrent.leads_per_second / bound
    speedup = concurrent.leads_per_second / baseline.leads_per_second
    print(f"ratio to the bound:        {share:7.1%}   (goal >= {GOAL_SHARE_OF_BOUND:.0%})")
    print(f"ratio to the baseline:     {speedup:7.2f}x  (goal >= {GOAL_SPEEDUP:g}x)")
    print(
        f"Airtable requests per lead: {concurrent.requests_per_lead:6.3f}   "
        f"(goal <= {GOAL_REQUESTS_PER_LEAD})"
    )


if __name__ == "__main__":
    sys.exit(main())
