"""History import benchmark: a seeded CSV export of N leads (and activities) through ``leadloop import csv``.

Generates the files and their mapping in a temporary folder, imports them into an empty store
with the real import (batches, progress rows, the quiet scoring) in this process, and prints
rows/s per phase and overall and the process's peak RSS, each beside its target. The store is
PostgreSQL from ``BENCH_DATABASE_URL`` (its name must contain ``test`` or ``bench``: the schema
is dropped), or SQLite with ``--sqlite``.

Run: ``BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1/test_import .venv/bin/python bench/import_csv.py
[--rows 1000000] [--activities 0] [--sqlite]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Targets: memory bounded whatever the file's size; the speed aimed at on PostgreSQL.
PEAK_RSS_TARGET_MB = 300
ROWS_PER_SECOND_TARGET = 5000

MAPPING = """crm: bench
id: Prospect ID
email: Email
created_at: {column: Created, format: "%d/%m/%Y %H:%M"}
fields:
  company: Company
  country: Country
  job_title: Job Title
  industry: Industry
  employees: {column: Employees, type: number}
  newsletter: {column: Newsletter, type: bool}
  lead_source: Lead Source
stages:
  mql: MQL Date
  sql: SQL Date
outcome:
  column: Converted
  won: ["1"]
  lost: ["0"]
"""
COUNTRIES = ["DE", "FR", "GB", "US", "NL", "ES", "IT", "PL"]
TITLES = ["Head of Operations", "Operations Manager", "Student", "CTO", "Logistics Lead", "Intern", "Buyer"]
INDUSTRIES = ["Logistics", "Retail", "Manufacturing", "Education", "Software", "Wholesale"]
SOURCES = ["Google", "Webinar", "Referral", "Trade Show", "Direct"]
KINDS = ["Page Visited", "Page Visited", "Email Opened", "Whitepaper", "Form Submitted"]


def write_files(folder: Path, rows: int, activities: int, seed: int) -> tuple[Path, Path | None, Path]:
    """Write the leads file, the activities file (if any) and the mapping; return their paths."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    leads_path = folder / "leads.csv"
    with open(leads_path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["Prospect ID", "Email", "Created", "Company", "Country", "Job Title", "Industry", "Employees",
                      "Newsletter", "Lead Source", "MQL Date", "SQL Date", "Converted"])
        for i in range(rows):
            created = start + timedelta(minutes=rng.randrange(500_000))
            mql = created + timedelta(days=rng.randrange(1, 60)) if rng.random() < 0.3 else None
            sql = mql + timedelta(days=rng.randrange(1, 30)) if mql and rng.random() < 0.4 else None
            converted = rng.choice(["1", "0"]) if sql else ("0" if mql and rng.random() < 0.2 else "")
            out.writerow([f"L{i:07d}", f"person{i}@company{i % 50_000}.example", created.strftime("%d/%m/%Y %H:%M"),
                          f"Company {i % 50_000}", rng.choice(COUNTRIES), rng.choice(TITLES), rng.choice(INDUSTRIES),
                          rng.choice(["", str(rng.randrange(1, 5000))]), rng.choice(["yes", "no"]),
                          rng.choice(SOURCES), mql.isoformat() if mql else "", sql.isoformat() if sql else "",
                          converted])
    activities_path = None
    mapping = MAPPING
    if activities:
        activities_path = folder / "activities.csv"
        mapping += ("activities:\n  kinds: {Page Visited: page_view, Email Opened: email_open, "
                    "Whitepaper: content_download, Form Submitted: form_submit}\n")
        with open(activities_path, "w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["id", "kind", "occurred_at", "url"])
            for i in range(activities):
                at = start + timedelta(minutes=rng.randrange(600_000))
                out.writerow([f"L{rng.randrange(rows):07d}", rng.choice(KINDS), at.isoformat(),
                              f"https://example.com/page-{i % 97}"])
    mapping_path = folder / "mapping.yaml"
    mapping_path.write_text(mapping, encoding="utf-8")
    return leads_path, activities_path, mapping_path


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="leads in the generated file")
    parser.add_argument("--activities", type=int, default=0, help="rows in the generated activities file")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sqlite", action="store_true", help="import into a SQLite file instead of PostgreSQL")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lli-"))
    url = f"sqlite:///{work / 'bench.db'}" if args.sqlite else os.environ.get("BENCH_DATABASE_URL", "")
    if not url:
        sys.exit("set BENCH_DATABASE_URL to a PostgreSQL database (its name containing test or bench), or use --sqlite")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not args.sqlite and not any(word in url.rsplit("/", 1)[-1] for word in ("test", "bench")):
        sys.exit("refusing to drop the schema of a database whose name contains neither test nor bench")
    from integration.embedded_redis import ensure_embedded_redis, stop_embedded_redis

    redis_url = os.environ.get("REDIS_URL") or ensure_embedded_redis(work / "redis")
    os.environ.update({"DATABASE_URL": url, "REDIS_URL": redis_url, "LEADLOOP_INSTANCE_DIR": str(work),
                       "LEADLOOP_EVENTS_SECRETS": "bench-secret", "CRM_WRITE_MODE": "shadow", "LOG_LEVEL": "WARNING"})
    from sqlalchemy import text

    from integration.imports.csv_import import import_csv
    from integration.imports.mapping import load_mapping
    from integration.services import Services
    from integration.store.migrate import upgrade

    try:
        t0 = time.perf_counter()
        leads_path, activities_path, mapping_path = write_files(work, args.rows, args.activities, args.seed)
        size_mb = (leads_path.stat().st_size + (activities_path.stat().st_size if activities_path else 0)) / 1e6
        print(f"generated {args.rows:,} leads and {args.activities:,} activities ({size_mb:,.0f} MB) "
              f"in {time.perf_counter() - t0:.1f} s")
        svc = Services.build()
        if svc.engine.dialect.name == "postgresql":
            with svc.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade(svc.engine)
        baseline = peak_rss_mb()
        phases: dict[str, float] = {}
        last = [time.perf_counter()]

        def timed(phase: str) -> None:
            now = time.perf_counter()
            phases[phase] = phases.get(phase, 0.0) + now - last[0]
            last[0] = now

        t0 = last[0] = time.perf_counter()
        done = import_csv(svc, leads_path, load_mapping(mapping_path), mapping_path.read_text(), activities_path,
                          on_batch=timed)
        elapsed = time.perf_counter() - t0
        counts = done.counts
        rows = counts.get("rows", 0)
        print(f"store: {svc.engine.dialect.name}; {counts}")
        for phase, seconds in phases.items():
            per = {"leads": counts.get("rows", 0) - args.activities, "activities": args.activities,
                   "scoring": counts.get("scored", 0)}[phase]
            print(f"  {phase:<10} {seconds:7.1f} s  {per / seconds:9,.0f} rows/s")
        rate = rows / elapsed
        peak = peak_rss_mb()
        verdict = "met" if rate >= ROWS_PER_SECOND_TARGET else "MISSED"
        print(f"import: {rows:,} rows in {elapsed:.1f} s = {rate:,.0f} rows/s "
              f"(target >= {ROWS_PER_SECOND_TARGET:,} on PostgreSQL: {verdict})")
        print(f"peak RSS: {peak:.0f} MB (before the import {baseline:.0f} MB; target < {PEAK_RSS_TARGET_MB} MB: "
              f"{'met' if peak < PEAK_RSS_TARGET_MB else 'MISSED'})")
        svc.engine.dispose()
    finally:
        if not os.environ.get("REDIS_URL", "").startswith("redis://"):
            stop_embedded_redis(work / "redis")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
