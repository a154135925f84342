"""What the benchmarks share: the signed events they post, gunicorn and RQ worker processes, a
store and a Redis to run on, a load generator, memory and percentile readings."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from integration.embedded_redis import ensure_embedded_redis, stop_embedded_redis  # noqa: E402
from integration.web.intake import sign  # noqa: E402

SECRET = "bench-secret"
KINDS = ["page_view", "page_view", "page_view", "email_open", "email_click", "content_download", "form_submit"]
BIN = Path(sys.executable).parent


def make_event(i: int, leads: int, tag: str, occurred_at: datetime) -> dict:
    """Event ``i`` of a stream spread over ``leads`` leads (lead ``i % leads``), id ``tag-i``."""
    lead = i % leads
    kind = KINDS[i % len(KINDS)]
    event = {"id": f"{tag}-{i}", "type": kind, "email": f"buyer{lead}@company{lead}.example",
             "crm": "hubspot", "crm_id": str(10_000 + lead), "occurred_at": occurred_at.isoformat(),
             "properties": {"url": f"https://example.com/blog/post-{i % 13}"}}
    if kind == "content_download":
        event["properties"]["asset"] = "blog"
    if kind == "form_submit":
        event["properties"]["fields"] = {"job_title": "Head of Operations", "employees": 250, "country": "DE"}
    return event


def make_events(n: int, leads: int, tag: str) -> list[dict]:
    now = datetime.now(UTC)
    return [make_event(i, leads, tag, now - timedelta(minutes=(n - i) * 7)) for i in range(n)]


def signed_headers(body: bytes) -> dict[str, str]:
    return {"X-Leadloop-Signature": sign(body, SECRET), "Content-Type": "application/json"}


def post_all(base: str, events: list[dict], batch: int = 500) -> None:
    with requests.Session() as http:
        for start in range(0, len(events), batch):
            body = json.dumps(events[start:start + batch]).encode()
            response = http.post(f"{base}/webhooks/events", data=body, timeout=60, headers=signed_headers(body))
            response.raise_for_status()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float = 900, what: str = "pipeline did not drain") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def ready(base: str, path: str = "/readyz") -> bool:
    try:
        return requests.get(f"{base}{path}", timeout=10).status_code < 500
    except requests.RequestException:  # gunicorn accepts before its workers have booted
        return False


@dataclass
class Bench:
    """A benchmark's environment: settings for child processes and the services built on them."""

    work: Path
    env: dict[str, str]

    @property
    def database(self) -> str:
        return "PostgreSQL" if "postgresql" in self.env["DATABASE_URL"] else "SQLite"


@contextmanager
def bench_environment(**settings: str) -> Iterator[Bench]:
    """A fresh store (``BENCH_DATABASE_URL``'s schema dropped and migrated, or a SQLite file) and
    Redis (``REDIS_URL``'s db flushed, or an embedded one), shadow mode unless ``settings`` say."""
    work = Path(tempfile.mkdtemp(prefix="llb-"))
    redis_url = os.environ.get("REDIS_URL") or ensure_embedded_redis(work / "redis")
    env = {**os.environ, "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{work / 'bench.db'}"),
           "REDIS_URL": redis_url, "LEADLOOP_EVENTS_SECRETS": SECRET, "CRM_WRITE_MODE": "shadow",
           "LEADLOOP_INSTANCE_DIR": str(work), "LEADLOOP_FLUSH_DELAY": "1", "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT), **settings}
    os.environ.update(env)
    try:
        yield Bench(work, env)
    finally:
        if not os.environ.get("BENCH_KEEP"):
            stop_embedded_redis(work / "redis")
            shutil.rmtree(work, ignore_errors=True)


def fresh_store(svc) -> None:
    """Drop and migrate the store, empty Redis."""
    from sqlalchemy import text

    from integration.store.migrate import upgrade

    if svc.engine.dialect.name == "postgresql":
        with svc.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(svc.engine)
    svc.redis.flushdb()


def start_gunicorn(env: dict[str, str], app: str = "wsgi:app", port: int | None = None) -> tuple[subprocess.Popen, str]:
    """gunicorn with leadloop's settings (``integration.web.gunicorn_config``) serving ``app``."""
    port = port or free_port()
    process = subprocess.Popen([str(BIN / "gunicorn"), "-c", "python:integration.web.gunicorn_config",
                                "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT), app], env=env,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    return process, base


def start_worker(env: dict[str, str], *options: str) -> subprocess.Popen:
    """One ``leadloop worker`` process (RQ worker with its scheduler)."""
    return subprocess.Popen([sys.executable, "-m", "integration.cli", "worker", *options], env=env, cwd=ROOT,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(*processes: subprocess.Popen | None) -> None:
    for process in processes:
        if process is None:
            continue
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """Resident memory (``VmHWM``: peak, ``VmRSS``: now) of a process and its live children, in MB."""
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# --- load: single-event signed requests from several processes -------------------------------

def _load_process(base: str, tag: str, leads: int, seconds: float, threads: int, offset: int,
                  out: multiprocessing.Queue) -> None:
    host, port = base.removeprefix("http://").split(":")
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    now = datetime.now(UTC)

    def run(thread: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        # Each connection starts at another lead, so concurrent requests are for different people.
        i, ok, failed = offset + thread * 997, 0, 0
        while time.monotonic() < deadline:
            body = json.dumps([make_event(i, leads, f"{tag}-{thread}", now)]).encode()
            i += 1
            try:
                connection.request("POST", "/webhooks/events", body, signed_headers(body))
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    ok += 1
                else:
                    failed += 1
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
        with lock:
            counts["ok"] += ok
            counts["failed"] += failed

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(counts)


def hammer(base: str, tag: str, *, seconds: float, processes: int = 2, threads: int = 4,
           leads: int = 10_000) -> tuple[float, int]:
    """Post single-event signed requests for ``seconds`` from ``processes`` x ``threads``
    keep-alive connections; return (2xx responses per second, other answers)."""
    out: multiprocessing.Queue = multiprocessing.Queue()
    jobs = [multiprocessing.Process(target=_load_process,
                                    args=(base, f"{tag}-{n}", leads, seconds, threads, n * 4999, out))
            for n in range(processes)]
    for job in jobs:
        job.start()
    results = [out.get() for _ in jobs]
    for job in jobs:
        job.join()
    return sum(r["ok"] for r in results) / seconds, sum(r["failed"] for r in results)
