"""End-to-end pipeline benchmark: signed HTTP intake -> queue -> scoring -> batched CRM writes.

Posts N signed events for M leads (500 per request) to a real gunicorn server while real RQ
workers drain them, and prints events/s end to end (first post to the last event processed and
the last CRM write recorded, shadow mode): with one worker, then on a fresh store with two
workers (the ratio beside its target); then a naive one-RQ-job-per-event pipeline
(``bench/naive.py``) on a sample of the same stream, and the ratio.
Run: ``.venv/bin/python bench/pipeline.py [--events 1000 --leads 50] [--naive-events 1000]``;
the target run: ``BENCH_DATABASE_URL=postgresql://... REDIS_URL=redis://... bench/pipeline.py
--events 100000 --leads 10000 --naive-events 2000``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    bench_environment,
    fresh_store,
    make_events,
    post_all,
    ready,
    rss_mb,
    start_gunicorn,
    start_worker,
    stop,
    wait_until,
)

TARGET_EVENTS_PER_S = 3000
TARGET_TWO_WORKERS = 1.7


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--leads", type=int, default=50)
    parser.add_argument("--naive-events", type=int, default=None, help="naive sample size (default: --events)")
    parser.add_argument("--worker", choices=["fork", "simple"], default=None,
                        help="force RQ's forking Worker or SimpleWorker (default: what `leadloop worker` runs)")
    parser.add_argument("--no-two", action="store_true", help="skip the two-worker run")
    args = parser.parse_args()
    options = {None: [], "simple": ["--simple"], "fork": ["--fork"]}[args.worker]
    naive_events = args.naive_events or args.events
    naive_leads = max(1, naive_events * args.leads // args.events)

    with bench_environment() as bench:
        from sqlalchemy import func, select

        from bench.naive import pending_event_ids
        from integration import services
        from integration.store.models import Event, OutboxWrite, ScoreRecord

        svc = services.Services.build()

        def count(stmt):
            with svc.sessions() as session:
                return session.scalar(stmt)

        unprocessed = select(func.count()).select_from(Event).where(Event.processed_at.is_(None))
        pending_writes = select(func.count()).select_from(OutboxWrite).where(OutboxWrite.status == "pending")

        def drained() -> bool:
            return count(unprocessed) == 0 and count(pending_writes) == 0 and not len(svc.queue)

        def coalescing_run(workers: int, tag: str) -> dict:
            fresh_store(svc)
            web, base = start_gunicorn(bench.env)
            started = []
            try:
                wait_until(lambda: ready(base), 60, "gunicorn did not start")
                started = [start_worker(bench.env, *options) for _ in range(workers)]
                time.sleep(2)  # the workers connect and register
                events = make_events(args.events, args.leads, tag)
                t0 = time.perf_counter()
                post_all(base, events)
                posted = time.perf_counter() - t0
                wait_until(drained, 3600)
                elapsed = time.perf_counter() - t0
                return {"elapsed": elapsed, "posted": posted, "web_mb": rss_mb(web.pid),
                        "worker_mb": max(rss_mb(w.pid) for w in started),
                        "scorings": count(select(func.count()).select_from(ScoreRecord)),
                        "batches": count(select(func.count(func.distinct(OutboxWrite.batch_id)))
                                         .where(OutboxWrite.kind == "update")),
                        "tasks": count(select(func.count()).select_from(OutboxWrite).where(OutboxWrite.kind == "task"))}
            finally:
                stop(web, *started)

        one = coalescing_run(1, "c1")
        two = None if args.no_two else coalescing_run(2, "c2")

        # Naive: the same intake, then one job per event (the coalesced jobs are discarded).
        fresh_store(svc)
        web, base = start_gunicorn(bench.env)
        worker = None
        try:
            wait_until(lambda: ready(base), 60, "gunicorn did not start")
            # The sample keeps the stream's events per lead (10 each for 100,000 / 10,000).
            events = make_events(naive_events, naive_leads, "n")
            t1 = time.perf_counter()
            post_all(base, events)
            svc.queue.empty()
            with svc.sessions() as session:
                ids = pending_event_ids(session)
            for event_id in ids:
                svc.queue.enqueue("bench.naive.process_event", event_id)
            worker = start_worker(bench.env, *options)
            wait_until(lambda: count(unprocessed) == 0 and not len(svc.queue), 3600)
            naive = time.perf_counter() - t1
            naive_scorings = count(select(func.count()).select_from(ScoreRecord))
            naive_calls = count(select(func.count()).select_from(OutboxWrite)
                                .where(OutboxWrite.idempotency_key.like("naive:%")))
        finally:
            stop(web, worker)

    kind = args.worker or "default (`leadloop worker`)"
    rate_one = args.events / one["elapsed"]
    print(f"pipeline benchmark: {args.events} events for {args.leads} leads through the signed endpoint "
          f"(500 per request), shadow mode, {kind} RQ worker(s), {bench.database}")
    print(f"  one worker : {one['elapsed']:7.2f} s  {rate_one:8.1f} events/s end to end  "
          f"(target >= {TARGET_EVENTS_PER_S})  posted in {one['posted']:.2f} s; {one['scorings']} scorings, "
          f"{one['batches']} batched CRM update call(s), {one['tasks']} task(s)")
    if two is not None:
        rate_two = args.events / two["elapsed"]
        print(f"  two workers: {two['elapsed']:7.2f} s  {rate_two:8.1f} events/s end to end  "
              f"{rate_two / rate_one:5.2f}x one worker  (target >= {TARGET_TWO_WORKERS}x); {two['scorings']} scorings")
    rate_naive = naive_events / naive
    print(f"  naive      : {naive:7.2f} s  {rate_naive:8.1f} events/s end to end  ({naive_events} events for "
          f"{naive_leads} leads, one RQ job each; {naive_scorings} scorings, {naive_calls} CRM update calls)")
    print(f"  ratio      : {rate_one / rate_naive:7.1f}x faster with coalescing (one worker, events/s)")
    print(f"  memory     : web (gunicorn master + 2 workers) peak {one['web_mb']:.0f} MB, RQ worker peak "
          f"{one['worker_mb']:.0f} MB (one-worker run)")


if __name__ == "__main__":
    main()
