"""SQL statements per lead in the worker's rescore job, counted, and the job's leads/s.

Stores N events for M leads through the signed intake (Flask's test client, no server), then
runs the worker's rescore job (``jobs._rescore``) in this process, 100 leads at a time as
``rescore_wanted`` takes them, counting every statement the job sends (SQLAlchemy's
``before_cursor_execute``): statements per lead, the commonest statements, leads/s.
Run: ``BENCH_DATABASE_URL=postgresql://... REDIS_URL=redis://... .venv/bin/python
bench/worker_statements.py [--events 20000 --leads 2000]`` (SQLite without ``BENCH_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import bench_environment, fresh_store, make_events, signed_headers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--top", type=int, default=12, help="how many of the commonest statements to print")
    args = parser.parse_args()

    with bench_environment() as bench:
        from sqlalchemy import event, func, select

        from integration import services
        from integration.pipeline import jobs
        from integration.store.models import Lead
        from integration.web import create_app

        svc = services.Services.build()
        fresh_store(svc)
        client = create_app().test_client()
        stream = make_events(args.events, args.leads, "stmts")
        for start in range(0, len(stream), 500):
            body = json.dumps(stream[start:start + 500]).encode()
            response = client.post("/webhooks/events", data=body, headers=signed_headers(body))
            assert response.status_code < 300, response.status_code
        svc = services.current()
        with svc.sessions() as session:
            lead_ids = sorted(session.scalars(select(Lead.id)))
            assert session.scalar(select(func.count()).select_from(Lead)) == args.leads

        statements: Counter[str] = Counter()

        def count(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
            statements[re.sub(r"sa_savepoint_\d+", "sa_savepoint_N", re.sub(r"\s+", " ", statement))[:110]] += 1

        event.listen(svc.engine, "before_cursor_execute", count)
        started = time.perf_counter()
        scored = 0
        for start in range(0, len(lead_ids), 100):
            scored += jobs._rescore(svc, lead_ids[start:start + 100])["scored"]
        elapsed = time.perf_counter() - started
        event.remove(svc.engine, "before_cursor_execute", count)

        total = sum(statements.values())
        print(f"{bench.database}: {args.events:,} events / {args.leads:,} leads, {scored:,} scored in {elapsed:.1f} s")
        print(f"statements per lead  {total / len(lead_ids):.1f}  ({total:,} for {len(lead_ids):,} leads)")
        print(f"leads/s in the job   {len(lead_ids) / elapsed:.0f}  ({args.events / elapsed:.0f} events/s)")
        for statement, n in statements.most_common(args.top):
            print(f"  {n / len(lead_ids):5.2f}/lead  {statement}")


if __name__ == "__main__":
    main()
