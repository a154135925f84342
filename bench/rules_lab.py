"""Benchmark: the rules lab on a generated history: backtest leads/s and memory, suggest time.

    .venv/bin/python bench/rules_lab.py [--leads 20000] [--events 10] [--seed 7] [--database URL]

Builds a seeded history in a fresh SQLite file (or the empty database ``--database`` names):
``--leads`` leads with a ``lead_created`` event and about ``--events`` activities each over six
months (pages, downloads, forms, contact requests), and an outcome for most (won, lost, accepted).
Then times, each on its own:

1. ``rules compare``'s replay (``integration.lab.backtest.backtest``) of the shipped rules against
   a candidate (pricing visits worth more): leads per second, and the process's peak memory before
   and after it (the history is read 500 leads at a time, so the growth should not follow the size);
2. ``rules suggest`` (``integration.lab.suggest.suggest``, 5 folds): seconds, rows and AUCs.

Building the history is not timed. The figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from integration.lab.backtest import backtest  # noqa: E402
from integration.lab.suggest import suggest  # noqa: E402
from integration.services import make_engine  # noqa: E402
from integration.store.migrate import upgrade  # noqa: E402
from integration.store.models import Event, Lead, Transition  # noqa: E402
from scoring import load_rules  # noqa: E402

RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "leadloop.yaml"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ACTIVITIES = [("page_view", {"url": "https://x.example/pricing"}), ("page_view", {"url": "https://x.example/blog/a"}),
              ("page_view", {"url": "https://x.example/guide/setup"}), ("content_download", {"asset": "coverage-map"}),
              ("form_submit", {"form": "contact"}), ("email_open", {}), ("email_click", {}),
              ("contact_request", {})]


def peak_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(sessions: sessionmaker, leads: int, events: int, seed: int) -> int:
    """Write the history in bulk; return the number of events."""
    rng = random.Random(seed)
    written = 0
    for first in range(0, leads, 1000):
        with sessions.begin() as session:
            rows = []
            for n in range(first, min(leads, first + 1000)):
                rows.append({"crm": "hubspot", "crm_id": str(n), "email": f"p{n}@firm{n % 997}.example",
                             "fields": {"company": f"Firm {n % 997}", "job_title": rng.choice(
                                 ["Operations Manager", "CEO", "Student", "Buyer", ""]),
                                 "employees": rng.choice([5, 40, 250, 1200]), "country": rng.choice(["DE", "US", "BR"]),
                                 "lead_source": rng.choice(["Referral", "Web", "Ads"]), "phone": "+49 30 1234567"},
                             "field_times": {}, "created_at": START, "updated_at": START})
            session.execute(insert(Lead), rows)
            ids = dict(session.execute(select(Lead.crm_id, Lead.id).where(Lead.crm_id.in_([r["crm_id"] for r in rows]))
                                       ).all())
            stored, moves = [], []
            for row in rows:
                lead_id, created = ids[row["crm_id"]], START + timedelta(hours=rng.randrange(24 * 180))
                stored.append(_event(lead_id, row["crm_id"], 0, "lead_created", created, row["fields"], {}))
                for k in range(rng.randrange(events // 2, events * 3 // 2 + 1)):
                    kind, properties = rng.choice(ACTIVITIES)
                    stored.append(_event(lead_id, row["crm_id"], k + 1, kind,
                                         created + timedelta(hours=rng.randrange(24 * 40)), {}, properties))
                outcome = rng.choices(["won", "lost", "accepted", None], [2 if row["fields"]["lead_source"] ==
                                                                            "Referral" else 1, 3, 1, 2])[0]
                if outcome:
                    moves.append({"lead_id": lead_id, "from_stage": "mql", "to_stage": outcome, "cause": "disposition",
                                  "detail": {}, "rules_version": "bench", "at": created + timedelta(days=45)})
            session.execute(insert(Event), stored)
            if moves:
                session.execute(insert(Transition), moves)
            written += len(stored)
    return written


def _event(lead_id: int, crm_id: str, number: int, kind: str, at: datetime, fields: dict, properties: dict) -> dict:
    return {"source": "web", "event_key": f"bench-{crm_id}-{number}", "lead_id": lead_id, "kind": kind,
            "occurred_at": at, "received_at": at, "fields": fields, "properties": properties, "processed_at": at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", help="an empty database to use instead of a new SQLite file")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.mkdtemp(prefix='lab-bench-')}/lab.db"
    engine = make_engine(url)
    upgrade(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    started = time.perf_counter()
    events = build(sessions, args.leads, args.events, args.seed)
    print(f"history: {args.leads:,} leads, {events:,} events written in {time.perf_counter() - started:.1f} s "
          f"({engine.dialect.name})")
    text = RULES_FILE.read_text(encoding="utf-8")
    live = load_rules(text, str(RULES_FILE))
    data = yaml.safe_load(text)
    next(rule for rule in data["engagement"] if rule["id"] == "view-hot-page")["points"] = 30
    candidate = load_rules(yaml.safe_dump(data), "candidate")
    before = peak_mb()
    started = time.perf_counter()
    with sessions() as session:
        report = backtest(session, live, candidate, since=None, until=START + timedelta(days=400))
    seconds = time.perf_counter() - started
    print(f"backtest: {report.leads:,} leads replayed under two rules files in {seconds:.1f} s "
          f"({report.leads / seconds:,.0f} leads/s); MQLs {report.live.mql:,} live, {report.candidate.mql:,} "
          f"candidate; peak memory {before:.0f} MB before, {peak_mb():.0f} MB after")
    started = time.perf_counter()
    with sessions() as session:
        proposal = suggest(session, live, text, target="won", folds=5, now=START + timedelta(days=400))
    print(f"suggest: {proposal.rows:,} rows, {len(proposal.points)} rules in {time.perf_counter() - started:.1f} s; "
          f"AUC {proposal.live['auc']:.3f} live, {proposal.proposed['auc']:.3f} proposed; "
          f"peak memory {peak_mb():.0f} MB")
    engine.dispose()


if __name__ == "__main__":
    main()
