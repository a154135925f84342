"""Rate-limit benchmark: a burst of events in live mode against a HubSpot stand-in enforcing
HubSpot's 190 requests / 10 s (``bench/crm_standin.py``).

Posts ``--events`` signed events for ``--leads`` HubSpot contacts as fast as the intake takes
them (500 per request), lets ``--workers`` real RQ workers score them and flush the outbox, and
prints the CRM calls made beside the batch minimum: ⌈changed records / 100⌉ batch updates (a
changed record: one record update sent; also shown per distinct contact), tasks (hand-offs: not
batchable in HubSpot, two calls each: the look-up by key and the create) apart, and the 429s.
Run: ``BENCH_DATABASE_URL=postgresql://... REDIS_URL=redis://... .venv/bin/python bench/rate_limit.py
[--events 50000 --leads 10000]`` (the defaults are a quick check: 5,000 events for 1,000 leads).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    ROOT,
    bench_environment,
    free_port,
    fresh_store,
    make_events,
    post_all,
    ready,
    start_gunicorn,
    start_worker,
    stop,
    wait_until,
)

LIMIT = 190


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    log = Path(tempfile.mkdtemp(prefix="llb-crm-")) / "calls.jsonl"
    crm_port = free_port()
    with bench_environment(CRM_WRITE_MODE="live", HUBSPOT_ACCESS_TOKEN="pat-na1-bench",
                           HUBSPOT_API_BASE=f"http://127.0.0.1:{crm_port}",
                           HUBSPOT_RATE_LIMIT_PER_10S=str(LIMIT)) as bench:
        from sqlalchemy import func, select

        from integration import services
        from integration.store.models import Event, OutboxWrite

        svc = services.Services.build()
        fresh_store(svc)
        crm = subprocess.Popen([sys.executable, "-m", "bench.crm_standin", "--port", str(crm_port),
                                "--limit", str(LIMIT), "--log", str(log)], cwd=ROOT, start_new_session=True)
        web, base = start_gunicorn(bench.env)
        workers = []

        def count(stmt):
            with svc.sessions() as session:
                return session.scalar(stmt)

        try:
            wait_until(lambda: ready(base), 60, "gunicorn did not start")
            workers = [start_worker(bench.env) for _ in range(args.workers)]
            started = time.perf_counter()
            post_all(base, make_events(args.events, args.leads, "burst"))
            posted = time.perf_counter() - started
            wait_until(lambda: count(select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) == 0
                       and count(select(func.count()).select_from(OutboxWrite)
                                 .where(OutboxWrite.status == "pending")) == 0 and not len(svc.queue), 1800)
            elapsed = time.perf_counter() - started
            sent_updates = count(select(func.count()).select_from(OutboxWrite)
                                 .where(OutboxWrite.kind == "update", OutboxWrite.status == "sent"))
            changed = count(select(func.count(func.distinct(OutboxWrite.crm_id)))
                            .where(OutboxWrite.kind == "update", OutboxWrite.status == "sent"))
            tasks = count(select(func.count()).select_from(OutboxWrite).where(OutboxWrite.kind == "task"))
        finally:
            stop(web, *workers, crm)
        from bench.crm_standin import read_log

        calls = read_log(str(log))

    updates = [c for c in calls if c["path"].endswith("/contacts/batch/update") and c["status"] == 200]
    task_calls = [c for c in calls if "/tasks" in c["path"] and c["status"] != 429]
    refused = [c for c in calls if c["status"] == 429]
    others = len(calls) - len(updates) - len(task_calls) - len(refused)
    minimum = math.ceil(sent_updates / 100)
    print(f"rate-limit benchmark: a burst of {args.events} events for {args.leads} contacts (posted in {posted:.1f} s, "
          f"drained in {elapsed:.1f} s), {args.workers} worker(s), live mode against the HubSpot stand-in "
          f"({LIMIT} calls / 10 s), {bench.database}")
    print(f"  changed records sent {sent_updates} (record updates), for {changed} distinct contacts (a contact whose "
          f"later events changed it again after its first write is sent again)")
    print(f"  batch update calls {len(updates)}  (target = the batch minimum ceil({sent_updates} / 100) = {minimum}; "
          f"one write per contact would be ceil({changed} / 100) = {math.ceil(changed / 100)})")
    print(f"  429 answers {len(refused)}  (target 0)")
    print(f"  task calls {len(task_calls)} for {tasks} task(s) (look-up by key + create each; not batchable), "
          f"other calls {others}")


if __name__ == "__main__":
    main()
