"""Scale benchmark: the on-time rescoring and a rules roll-out on a big PostgreSQL store.

On a store built by ``bench/big_store.py`` (``--build``: build it first, ``--leads`` /
``--events``; the target store is 1,000,000 leads / 10,000,000 events) it prints:

1. the due-lead sweep (``integration.pipeline.on_time``): leads due now, and the leads its
   query examined (from PostgreSQL's own ``EXPLAIN ANALYZE`` of it: rows read from ``leads``),
   then one run of the on-time rescoring, timed;
2. a rules roll-out by a real worker (``leadloop worker --burst``, the roll-out jobs handing over
   to each other) over ``--rollout-leads`` leads (the others are marked as scored under the live
   rules already): leads/s end to end, the worker's resident memory sampled every 0.2 s (target
   < 300 MB throughout), and, on one core, the scoring of those same leads' stored inputs
   (``score_lead``; then also ``next_change``, which the roll-out asks too): leads/s of scoring
   per core (target >= 20,000).

Run: ``BENCH_DATABASE_URL=postgresql://... REDIS_URL=redis://... .venv/bin/python bench/scale.py
--build --leads 20000 --events 200000`` (a quick check), or on a built big store
``bench/scale.py --rollout-leads 20000``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import bench_environment, rss_mb, start_worker, stop, wait_until  # noqa: E402

TARGET_SCORING = 20_000
TARGET_RSS_MB = 300


def examined_rows(plan: dict) -> int:
    """Rows read from ``leads`` by the scans of an ``EXPLAIN (ANALYZE, FORMAT JSON)`` plan."""
    total = 0
    if plan.get("Relation Name") == "leads":
        loops = plan.get("Actual Loops", 1)
        total += (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
                  + plan.get("Rows Removed by Index Recheck", 0)) * loops
    for child in plan.get("Plans", []):
        total += examined_rows(child)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="build the store first (bench/big_store.py)")
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rollout-leads", type=int, default=5_000)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if "postgresql" not in url:
        sys.exit("bench/scale.py measures against PostgreSQL: set BENCH_DATABASE_URL=postgresql://...")
    if args.build:
        from bench.big_store import build_big_store

        built = build_big_store(url, leads=args.leads, events=args.events, reset=True)
        print(f"built the store in {built['seconds']['total']:.0f} s: {built['rows']}")

    with bench_environment(LEADLOOP_SWEEP_SECONDS="3600") as bench:
        from sqlalchemy import func, select, text, update

        from integration import services
        from integration.pipeline import on_time, processing, rollout
        from integration.store.models import Event, Lead
        from scoring import next_change, score_lead

        svc = services.Services.build()
        svc.redis.flushdb()
        now = datetime.now(UTC)
        with svc.sessions() as session:
            leads = session.scalar(select(func.count()).select_from(Lead))
            events = session.scalar(select(func.count()).select_from(Event))
            due = session.scalar(select(func.count()).select_from(Lead).where(
                Lead.next_review_at.is_not(None), Lead.next_review_at <= now, Lead.quarantined_at.is_(None)))
            query = on_time.due_query(now, lock=True)
            compiled = query.compile(svc.engine, compile_kwargs={"literal_binds": True})
            plan = session.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}")).scalar()
            session.rollback()
        plan = plan if isinstance(plan, list) else json.loads(plan)
        examined = examined_rows(plan[0]["Plan"])
        started = time.perf_counter()
        sweep = on_time.rescore_on_time(svc, now)
        sweep_seconds = time.perf_counter() - started

        # The roll-out: the first --rollout-leads leads are due, the others carry the live version.
        version = svc.rules.version
        with svc.sessions.begin() as session:
            session.execute(update(Lead).values(rules_version=version))
            first = session.scalar(select(Lead.id).order_by(Lead.id).offset(args.rollout_leads - 1).limit(1))
            session.execute(update(Lead).where(Lead.id <= first).values(rules_version="bench-old"))
            rolled = session.scalar(select(func.count()).select_from(Lead).where(*rollout._due(version)))
        rollout.request_rollout(svc)
        peak = {"rss": 0.0}
        worker = start_worker(bench.env, "--burst")
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak["rss"] = max(peak["rss"], rss_mb(worker.pid, "VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        try:
            wait_until(lambda: worker.poll() is not None, 7200, "the roll-out did not finish")
        finally:
            done.set()
            stop(worker)
        rollout_seconds = time.perf_counter() - started
        with svc.sessions() as session:
            left = rollout.progress(session, version).due
            # The same leads' scoring alone, on this core, from their stored inputs.
            ids = list(session.scalars(select(Lead.id).where(Lead.id <= first).order_by(Lead.id)))
            inputs = [processing.scoring_inputs(session, svc, session.get(Lead, lead_id)) for lead_id in ids]
        cpu = time.process_time()
        for one in inputs:
            score_lead(one.profile, one.signals, svc.rules, now, penalty=one.penalty, penalty_reason=one.penalty_reason)
        scoring_cpu = time.process_time() - cpu
        for one in inputs:
            next_change(one.profile, one.signals, svc.rules, now, penalty=one.penalty)
        both_cpu = time.process_time() - cpu

    print(f"scale benchmark: {leads:,} leads / {events:,} events in {bench.database}")
    print(f"  due-lead sweep: leads due {due:,}; examined by the sweep's query {examined:,} for a batch of "
          f"{on_time.BATCH:,} (target: only due leads); one on-time run rescored {sweep['rescored']:,} of "
          f"{sweep['due']:,} in {sweep_seconds:.1f} s ({sweep['rescored'] / sweep_seconds:,.0f} leads/s)")
    print(f"  roll-out: {rolled:,} leads by one worker in {rollout_seconds:.1f} s "
          f"({rolled / rollout_seconds:,.0f} leads/s end to end, incl. the worker's start), {left:,} left due")
    print(f"  scoring per core: {len(inputs) / scoring_cpu:,.0f} leads/s (score_lead on the rolled-out leads' stored "
          f"inputs, CPU time)  (target >= {TARGET_SCORING:,}); with next_change as well "
          f"{len(inputs) / both_cpu:,.0f} leads/s")
    print(f"  worker resident memory: peak {peak['rss']:.0f} MB sampled every 0.2 s  (target < {TARGET_RSS_MB} MB)")


if __name__ == "__main__":
    main()
