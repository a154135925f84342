"""Reports benchmark: every ``leadloop report`` on a big store (1,000,000 leads, 10,000,000 events)
and on a small one, each time beside the target (<= 5 s per report at the big size).

The stores are built by ``bench/big_store.py`` (seeded, repeatable) in PostgreSQL: the big one in
``--database-url`` (default ``DATABASE_URL``), the small one in the same server's database named
like it with ``_small`` (created if missing). ``--reuse`` keeps a store that already holds the
asked number of leads instead of building it again (building the big one takes minutes). Each
report runs twice in its own transaction: the first time (cold caches) and again (warm).

Run: ``.venv/bin/python bench/reports.py [--reuse] [--leads N --events M] [--by owner]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.big_store import build_big_store  # noqa: E402
from integration.reports import REPORTS, ReportQuery  # noqa: E402
from integration.services import make_engine  # noqa: E402
from integration.store.migrate import upgrade  # noqa: E402
from integration.store.models import Lead  # noqa: E402

#: Seconds a report may take at 1,000,000 leads / 10,000,000 events.
TARGET_SECONDS = 5.0


def driver_url(url: str) -> str:
    """``postgresql://`` as the psycopg 3 URL SQLAlchemy needs."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def small_url(url: str) -> str:
    """The small store's database: the big one's name with ``_small``, created if missing."""
    parsed = make_url(driver_url(url))
    name = f"{parsed.database}_small"
    maintenance = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with maintenance.connect() as connection:
        if not connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first():
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    maintenance.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def ensure_store(url: str, leads: int, events: int, seed: int, reuse: bool) -> None:
    """Build the store unless ``reuse`` and it already holds ``leads`` leads."""
    if reuse:
        engine = make_engine(driver_url(url))
        try:
            with Session(engine) as session:
                present = session.scalar(select(func.count()).select_from(Lead))
        except Exception:  # noqa: BLE001 - no schema yet: build it
            present = None
        finally:
            engine.dispose()
        if present == leads:
            started = time.perf_counter()
            engine = make_engine(driver_url(url))
            upgrade(engine)  # a store built before the summaries gets them (migration 0007: a full refresh)
            engine.dispose()
            print(f"  reusing the store of {leads:,} leads (migrated in {time.perf_counter() - started:.1f} s)",
                  flush=True)
            return
    started = time.perf_counter()
    built = build_big_store(url, leads=leads, events=events, seed=seed, reset=True)
    rows = sum(built["rows"].values())
    print(f"  built {rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)


def time_reports(url: str, by: str | None, target: float | None) -> dict[str, tuple[float, float]]:
    """Run every report twice; print and return (first, again) seconds per kind."""
    engine = make_engine(driver_url(url))
    timings = {}
    try:
        for kind, build in REPORTS.items():
            seconds = []
            for _ in range(2):
                with Session(engine) as session:
                    started = time.perf_counter()
                    report = build(session, ReportQuery(by=by))
                    seconds.append(time.perf_counter() - started)
            timings[kind] = (seconds[0], seconds[1])
            verdict = "" if target is None else ("  ok" if min(seconds) <= target else "  OVER")
            aim = "" if target is None else f"  (target <= {target:.0f} s)"
            print(f"  {kind:<8} {len(report.rows):>5} rows  first {seconds[0]:6.2f} s  again {seconds[1]:6.2f} s"
                  f"{aim}{verdict}", flush=True)
    finally:
        engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="PostgreSQL database of the big store (default: DATABASE_URL)")
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--small-leads", type=int, default=10_000)
    parser.add_argument("--small-events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--by", default=None, help="group every report by this dimension (default: none)")
    parser.add_argument("--reuse", action="store_true", help="keep a store that already has the asked size")
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith(("postgresql", "postgres:")):
        parser.error("give a PostgreSQL --database-url (or DATABASE_URL): the big store is PostgreSQL's")
    small = small_url(args.database_url)
    print(f"small store: {args.small_leads:,} leads, {args.small_events:,} events", flush=True)
    ensure_store(small, args.small_leads, args.small_events, args.seed, args.reuse)
    time_reports(small, args.by, None)
    print(f"big store: {args.leads:,} leads, {args.events:,} events", flush=True)
    ensure_store(args.database_url, args.leads, args.events, args.seed, args.reuse)
    timings = time_reports(args.database_url, args.by, TARGET_SECONDS)
    over = [kind for kind, seconds in timings.items() if min(seconds) > TARGET_SECONDS]
    print("all reports within the target" if not over else f"over the target: {', '.join(over)}")


if __name__ == "__main__":
    main()
