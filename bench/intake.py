"""Signed intake benchmark: requests/s of ``POST /webhooks/events`` with one event each, side by
side with the minimal durable intake and a bare Flask endpoint (``bench/intake_apps.py``).

All three run under the same gunicorn settings (``integration.web.gunicorn_config``: 2 workers x
8 threads) and take the same load: single-event signed requests over keep-alive connections for
``--seconds``, events spread over 10,000 leads known beforehand (seeded through the endpoint).
The rounds alternate (leadloop, minimal, bare) ``--rounds`` times and each figure is its best
round, so a busy neighbour on a shared machine costs all three alike. Needs PostgreSQL:
``BENCH_DATABASE_URL=postgresql://... REDIS_URL=redis://... .venv/bin/python bench/intake.py
[--seconds 5 --rounds 2]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    bench_environment,
    fresh_store,
    hammer,
    make_events,
    post_all,
    ready,
    start_gunicorn,
    stop,
    wait_until,
)

TARGET = 0.85
LEADS = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2, help="load processes (each with 4 connections)")
    args = parser.parse_args()
    if "postgresql" not in os.environ.get("BENCH_DATABASE_URL", ""):
        sys.exit("bench/intake.py measures against PostgreSQL: set BENCH_DATABASE_URL=postgresql://...")

    with bench_environment() as bench:
        from bench.intake_apps import REDIS_KEY, create_table
        from integration import services

        svc = services.Services.build()
        fresh_store(svc)
        create_table(bench.env["DATABASE_URL"])
        apps = {"leadloop": "wsgi:app", "minimal": "bench.intake_apps:durable", "bare": "bench.intake_apps:bare"}
        # The 10,000 people are known, as in steady traffic (a person's first event also creates
        # their lead: one more query, and a transaction).
        seeder, base = start_gunicorn(bench.env)
        try:
            wait_until(lambda: ready(base), 60, "gunicorn did not start")
            post_all(base, make_events(LEADS, LEADS, "seed"))
        finally:
            stop(seeder)
        best = {name: 0.0 for name in apps}
        refused = {name: 0 for name in apps}
        for round_ in range(args.rounds):
            for name, app in apps.items():
                server, base = start_gunicorn(bench.env, app)
                try:
                    path = "/healthz" if name == "leadloop" else "/"
                    wait_until(lambda b=base, p=path: ready(b, p), 60, "gunicorn did not start")
                    rate, failed = hammer(base, f"{name}{round_}", seconds=args.seconds, processes=args.clients,
                                          leads=LEADS)
                finally:
                    stop(server)
                best[name] = max(best[name], rate)
                refused[name] += failed
        svc.redis.delete(REDIS_KEY)

    print(f"signed intake benchmark: single-event requests, {args.clients * 4} connections, "
          f"{args.rounds} x {args.seconds:.0f} s per endpoint, {bench.database}, gunicorn 2 workers x 8 threads")
    for name, label in (("leadloop", "POST /webhooks/events"), ("minimal", "minimal durable intake"),
                        ("bare", "bare Flask endpoint")):
        print(f"  {label:24s}: {best[name]:8.1f} requests/s  ({refused[name]} non-2xx)")
    print(f"  leadloop / minimal durable: {best['leadloop'] / best['minimal']:5.2f}x  (target >= {TARGET}x)")
    print(f"  leadloop / bare Flask     : {best['leadloop'] / best['bare']:5.2f}x  (reported, no target)")


if __name__ == "__main__":
    main()
