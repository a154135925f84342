"""Latency benchmark: from an event's receipt to its CRM write leaving the outbox, in live mode.

Posts single-event signed requests at a steady ``--rate`` per second for ``--seconds`` to a real
gunicorn server; ``--workers`` real RQ workers process them and flush the outbox in live mode to
a local HubSpot stand-in (``bench/crm_standin.py``, HubSpot's shapes and 190 calls / 10 s). For
each event that changed what the CRM shows, the latency is the time from its receipt
(``events.received_at``) to the moment the first CRM write of its lead queued at or after its
processing was sent (``outbox.sent_at``). Prints p50 / p95 / max beside the target.
Run: ``BENCH_DATABASE_URL=postgresql://... REDIS_URL=redis://... .venv/bin/python bench/latency.py
[--rate 200 --seconds 60 --leads 2000]`` (the defaults are a quick check: 100/s for 10 s).
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    ROOT,
    bench_environment,
    free_port,
    fresh_store,
    make_event,
    percentile,
    ready,
    signed_headers,
    start_gunicorn,
    start_worker,
    stop,
    wait_until,
)

TARGET_P95 = 2.0


def post_steadily(base: str, rate: float, seconds: float, leads: int, threads: int = 8) -> tuple[int, int, float]:
    """Post event ``i`` at ``start + i / rate`` (single-event requests); return (sent, refused, the
    worst lag behind the schedule in seconds)."""
    host, port = base.removeprefix("http://").split(":")
    total = int(rate * seconds)
    start = time.monotonic() + 0.2
    lock = threading.Lock()
    state = {"next": 0, "refused": 0, "lag": 0.0}

    def run() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= total:
                return
            due = start + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            body = json.dumps([make_event(i, leads, "lat", datetime.now(UTC))]).encode()
            connection.request("POST", "/webhooks/events", body, signed_headers(body))
            response = connection.getresponse()
            response.read()
            with lock:
                state["lag"] = max(state["lag"], time.monotonic() - due)
                state["refused"] += response.status != 200

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return total, state["refused"], state["lag"]


LATENCIES = """
SELECT EXTRACT(EPOCH FROM (w.sent_at - e.received_at))
FROM events e
CROSS JOIN LATERAL (
    SELECT o.sent_at FROM outbox o
    WHERE o.lead_id = e.lead_id AND o.kind = 'update' AND o.status = 'sent' AND o.created_at >= e.processed_at
    ORDER BY o.created_at, o.id LIMIT 1) w
WHERE e.source = 'web'
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--flush-delay", default="0.25", help="LEADLOOP_FLUSH_DELAY for the run")
    args = parser.parse_args()

    log = Path(tempfile.mkdtemp(prefix="llb-crm-")) / "calls.jsonl"
    crm_port = free_port()
    with bench_environment(CRM_WRITE_MODE="live", HUBSPOT_ACCESS_TOKEN="pat-na1-bench",
                           HUBSPOT_API_BASE=f"http://127.0.0.1:{crm_port}", HUBSPOT_RATE_LIMIT_PER_10S="190",
                           LEADLOOP_FLUSH_DELAY=args.flush_delay) as bench:
        if bench.database != "PostgreSQL":
            sys.exit("bench/latency.py measures against PostgreSQL: set BENCH_DATABASE_URL=postgresql://...")
        from sqlalchemy import func, select, text

        from integration import services
        from integration.store.models import Event, OutboxWrite

        svc = services.Services.build()
        fresh_store(svc)
        crm = subprocess.Popen([sys.executable, "-m", "bench.crm_standin", "--port", str(crm_port), "--log", str(log)],
                               cwd=ROOT, start_new_session=True)
        web, base = start_gunicorn(bench.env)
        workers = []
        try:
            wait_until(lambda: ready(base), 60, "gunicorn did not start")
            workers = [start_worker(bench.env) for _ in range(args.workers)]
            time.sleep(2)  # the workers connect and register
            sent, refused, lag = post_steadily(base, args.rate, args.seconds, args.leads)

            def drained() -> bool:
                with svc.sessions() as session:
                    return not session.scalar(select(func.count()).select_from(Event)
                                              .where(Event.processed_at.is_(None))) and \
                        not session.scalar(select(func.count()).select_from(OutboxWrite)
                                           .where(OutboxWrite.status == "pending"))

            wait_until(drained, 600)
            with svc.engine.connect() as connection:
                latencies = [float(value) for (value,) in connection.execute(text(LATENCIES))]
                processed = connection.scalar(text("SELECT count(*) FROM events WHERE source = 'web'"))
        finally:
            stop(web, *workers, crm)
        from bench.crm_standin import read_log

        calls = read_log(str(log))

    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    print(f"latency benchmark: {args.rate:.0f} events/s for {args.seconds:.0f} s ({sent} single-event requests, "
          f"{refused} refused, worst lag behind schedule {lag:.2f} s), {args.leads} leads, {args.workers} worker(s), "
          f"live mode against the HubSpot stand-in, LEADLOOP_FLUSH_DELAY={args.flush_delay}, {bench.database}")
    print(f"  events stored {processed}; with a CRM write {len(latencies)} (the others changed nothing the CRM shows)")
    print(f"  receipt -> CRM write sent: p50 {p50:.2f} s  p95 {p95:.2f} s  (target p95 <= {TARGET_P95:.0f} s)  "
          f"max {max(latencies, default=float('nan')):.2f} s")
    print(f"  CRM calls {len(calls)}, of which 429 {sum(1 for c in calls if c['status'] == 429)}")


if __name__ == "__main__":
    main()
