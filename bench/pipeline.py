"""End-to-end pipeline benchmark: signed HTTP intake -> queue -> scoring -> batched CRM writes.

Posts N signed events for M leads to a real gunicorn server, drains them with ONE real RQ
worker, and prints events/s end to end, the number of scorings and CRM batches; then runs
the same events through a naive one-RQ-job-per-event pipeline on the same store and worker,
and prints the ratio. Run: ``.venv/bin/python bench/pipeline.py [--events 2000 --leads 100]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration.embedded_redis import ensure_embedded_redis, stop_embedded_redis  # noqa: E402
from integration.web.intake import sign  # noqa: E402

SECRET = "bench-secret"
KINDS = ["page_view", "page_view", "page_view", "email_open", "email_click", "content_download", "form_submit"]


def make_events(n: int, m: int, tag: str) -> list[dict]:
    now = datetime.now(UTC)
    events = []
    for i in range(n):
        lead = i % m
        kind = KINDS[i % len(KINDS)]
        event = {"id": f"{tag}-{i}", "type": kind, "email": f"buyer{lead}@company{lead}.example",
                 "crm": "hubspot", "crm_id": str(10_000 + lead),
                 "occurred_at": (now - timedelta(minutes=(n - i) * 7)).isoformat(),
                 "properties": {"url": f"https://example.com/blog/post-{i % 13}"}}
        if kind == "content_download":
            event["properties"]["asset"] = "blog"
        if kind == "form_submit":
            event["properties"]["fields"] = {"job_title": "Head of Operations", "employees": 250, "country": "DE"}
        events.append(event)
    return events


def post_all(base: str, events: list[dict], batch: int = 500) -> None:
    with requests.Session() as http:
        for start in range(0, len(events), batch):
            body = json.dumps(events[start:start + batch]).encode()
            response = http.post(f"{base}/webhooks/events", data=body, timeout=60,
                                 headers={"X-Leadloop-Signature": sign(body, SECRET),
                                          "Content-Type": "application/json"})
            response.raise_for_status()


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its live children, in MB."""
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def wait_until(predicate, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("pipeline did not drain")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--leads", type=int, default=50)
    parser.add_argument("--worker", choices=["fork", "simple"], default="fork",
                        help="RQ's forking Worker (production default) or SimpleWorker")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="llb-"))
    redis_url = os.environ.get("REDIS_URL") or ensure_embedded_redis(work / "redis")
    env = {**os.environ, "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{work / 'bench.db'}"),
           "REDIS_URL": redis_url, "LEADLOOP_EVENTS_SECRETS": SECRET, "CRM_WRITE_MODE": "shadow",
           "LEADLOOP_INSTANCE_DIR": str(work), "LEADLOOP_FLUSH_DELAY": "1", "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT)}
    os.environ.update(env)
    from integration import services
    from integration.store.migrate import upgrade
    from integration.store.models import Event, OutboxWrite, ScoreRecord

    svc = services.Services.build()
    services.install(svc)
    if svc.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with svc.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(svc.engine)
    svc.redis.flushdb()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    web = subprocess.Popen([str(bin_dir / "gunicorn"), "-c", "python:integration.web.gunicorn_config",
                            "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT), "wsgi:app"], env=env,
                           start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker_cmd = [sys.executable, "-m", "integration.cli", "worker"] + (["--simple"] if args.worker == "simple" else [])
    base = f"http://127.0.0.1:{port}"

    def count(stmt):
        with svc.sessions() as session:
            return session.scalar(stmt)

    unprocessed = select(func.count()).select_from(Event).where(Event.processed_at.is_(None))
    pending_writes = select(func.count()).select_from(OutboxWrite).where(OutboxWrite.status == "pending")
    worker = None
    try:
        wait_until(lambda: _ready(base), 60)
        worker = subprocess.Popen(worker_cmd, env=env, cwd=ROOT, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        events = make_events(args.events, args.leads, "c")
        t0 = time.perf_counter()
        post_all(base, events)
        wait_until(lambda: count(unprocessed) == 0 and count(pending_writes) == 0 and not len(svc.queue))
        coalesced = time.perf_counter() - t0
        web_mb, worker_mb = peak_rss_mb(web.pid), peak_rss_mb(worker.pid)
        scorings = count(select(func.count()).select_from(ScoreRecord))
        batches = count(select(func.count(func.distinct(OutboxWrite.batch_id))).where(OutboxWrite.kind == "update"))
        task_calls = count(select(func.count()).select_from(OutboxWrite).where(OutboxWrite.kind == "task"))

        # Naive: the same intake, then one job per event (the coalesced jobs are discarded).
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait()
        naive_events = make_events(args.events, args.leads, "n")
        for lead in range(args.leads):  # fresh leads for the naive run
            for event in naive_events[lead::args.leads]:
                event["crm_id"] = str(20_000 + lead)
                event["email"] = f"naive{lead}@company{lead}.example"
        t1 = time.perf_counter()
        post_all(base, naive_events)
        svc.queue.empty()
        from bench.naive import pending_event_ids

        with svc.sessions() as session:
            ids = pending_event_ids(session)
        for event_id in ids:
            svc.queue.enqueue("bench.naive.process_event", event_id)
        worker = subprocess.Popen(worker_cmd, env=env, cwd=ROOT, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: count(unprocessed) == 0 and not len(svc.queue))
        naive = time.perf_counter() - t1
        naive_scorings = count(select(func.count()).select_from(ScoreRecord)) - scorings
        naive_batches = count(select(func.count()).select_from(OutboxWrite)
                              .where(OutboxWrite.idempotency_key.like("naive:%")))
    finally:
        for process in (web, worker):
            if process is not None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if not os.environ.get("BENCH_KEEP"):
            stop_embedded_redis(work / "redis")
            shutil.rmtree(work, ignore_errors=True)

    db = "PostgreSQL" if "postgresql" in env["DATABASE_URL"] else "SQLite"
    print(f"pipeline benchmark: {args.events} events for {args.leads} leads, one {args.worker} RQ worker, {db}")
    print(f"  coalescing : {coalesced:7.2f} s  {args.events / coalesced:8.1f} events/s end to end  "
          f"{scorings} scorings  {batches} batched CRM update call(s)  {task_calls} task(s)")
    print(f"  naive      : {naive:7.2f} s  {args.events / naive:8.1f} events/s end to end  "
          f"{naive_scorings} scorings  {naive_batches} CRM update calls")
    print(f"  ratio      : {naive / coalesced:7.1f}x faster with coalescing")
    print(f"  memory     : web (gunicorn master + 2 workers) peak {web_mb:.0f} MB, RQ worker peak {worker_mb:.0f} MB "
          "(coalescing run)")


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=10).status_code == 200
    except requests.RequestException:  # gunicorn accepts before its workers have booted
        return False


if __name__ == "__main__":
    main()
