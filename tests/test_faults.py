"""Fault tests with real processes: a worker killed mid-job, Redis restarted, the database gone.

Each starts the real ``leadloop worker`` / ``leadloop cron`` processes (and, for Redis, a real
``redis-server`` of its own) and checks that no acknowledged event is lost and that the
processes recover by themselves. Waits are bounded by deadlines derived from the documented
recovery times; nothing is timed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from integration.embedded_redis import _executable as redis_server_binary
from integration.pipeline.workers import HEARTBEAT_GRACE_SECONDS, HEARTBEAT_SECONDS
from integration.store.models import Event, OutboxWrite, ScoreRecord
from tests.conftest import drain, post_events, running_app, web_event

SWEEP = 3  # LEADLOOP_SWEEP_SECONDS for these tests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def leadloop(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "integration.cli", *args], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def environment(config: dict[str, Any], **overrides: str) -> dict[str, str]:
    env = {**os.environ, **{k: v for k, v in config.items() if isinstance(v, str)}}
    env.update({"LEADLOOP_SWEEP_SECONDS": str(SWEEP), "LEADLOOP_FLUSH_DELAY": "0", **overrides})
    return env


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


def count(svc: Any, *where: Any, model: Any = Event) -> int:
    with svc.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def unprocessed(svc: Any) -> int:
    return count(svc, Event.processed_at.is_(None))


# --- a worker killed mid-job -----------------------------------------------------------------

def test_a_killed_workers_leads_are_processed_within_two_sweeper_periods(config):
    with running_app(config, LEADLOOP_SWEEP_SECONDS=str(SWEEP)) as app:
        svc, client = app.extensions["leadloop"], app.test_client()
        post_events(client, [web_event(f"k{i}", "content_download", crm="hubspot", crm_id="77",
                                       occurred_at=f"2026-11-20T10:0{i}:00+00:00",
                                       properties={"asset": "pricing-page"}) for i in range(5)])
        with svc.sessions() as session:
            lead_id = session.scalar(text("SELECT id FROM leads"))
        env = environment(config)
        blocker = hold_lead(svc, lead_id)
        first = leadloop(env, "worker")
        try:
            started = StartedJobRegistry(queue=svc.queue)
            wait_until(lambda: started.get_job_ids(), 30, "the first worker starts the job")
            time.sleep(0.5)  # blocked inside the job, waiting for the lead
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # the worker and its work horse die mid-job
            first.wait()
            blocker.rollback()
            blocker.close()
        assert unprocessed(svc) == 5
        second, cron = leadloop(env, "worker"), leadloop(env, "cron")
        try:
            # The abandoned job's heartbeat lapses, then the next sweep retries it at once.
            wait_until(lambda: unprocessed(svc) == 0, HEARTBEAT_SECONDS + HEARTBEAT_GRACE_SECONDS + 2 * SWEEP + 15,
                       "the killed worker's events are processed")
            assert count(svc, model=ScoreRecord) == 1  # exactly once
            assert count(svc, OutboxWrite.kind == "update", model=OutboxWrite) == 1
        finally:
            stop(second)
            stop(cron)


def hold_lead(svc: Any, lead_id: int) -> Any:
    """Hold the lead's row (PostgreSQL) or the database (SQLite) from another connection."""
    connection = svc.engine.connect()
    connection.begin()
    if svc.engine.dialect.name == "postgresql":
        connection.execute(text("SELECT id FROM leads WHERE id = :id FOR UPDATE"), {"id": lead_id})
    return connection


# --- Redis restarted -------------------------------------------------------------------------

@contextlib.contextmanager
def redis_server(port: int) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _pings(port), 10, "redis-server answers")
        yield process
    finally:
        process.kill()
        process.wait()


def _pings(port: int) -> bool:
    try:
        return bool(Redis(port=port, socket_connect_timeout=0.5).ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


def test_worker_and_cron_survive_a_redis_restart_and_the_queue_drains(config):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = environment(config, REDIS_URL=url)
    with redis_server(port) as first_redis:
        worker, cron = leadloop(env, "worker"), leadloop(env, "cron")
        try:
            with running_app(config, REDIS_URL=url, LEADLOOP_SWEEP_SECONDS=str(SWEEP)) as app:
                svc, client = app.extensions["leadloop"], app.test_client()
                post_events(client, [web_event("before", "page_view", email="ada@acme-robotics.com")])
                wait_until(lambda: unprocessed(svc) == 0, 30, "the first event is processed")
                first_redis.kill()
                first_redis.wait()
                # Redis is gone: events are still acknowledged (stored; the sweeper enqueues them).
                answer = post_events(client, [web_event("during", "page_view", email="bo@acme-robotics.com")])
                assert answer.status_code == 200
                time.sleep(2 * SWEEP)
                assert worker.poll() is None and cron.poll() is None, "a process exited with Redis"
                with redis_server(port):
                    post_events(client, [web_event("after", "page_view", email="cy@acme-robotics.com")])
                    wait_until(lambda: unprocessed(svc) == 0, 60, "the queue drains after the restart")
                    assert count(svc, model=ScoreRecord) == 3
                    assert worker.poll() is None and cron.poll() is None
        finally:
            stop(worker)
            stop(cron)


# --- the database gone -----------------------------------------------------------------------

class TcpProxy:
    """A loopback TCP proxy to the database that can be cut and restored (an outage)."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.port = target, free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR on POSIX
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        assert self._listener is not None
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on it; the peer sees the end
            sock.close()
        self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.close()


def test_the_database_gone_is_a_503_and_then_recovery(config, database_url):
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("an outage of a network database; SQLite is a file (CI runs this on PostgreSQL)")
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    with running_app(config, DATABASE_URL=proxied) as app:
        svc, client = app.extensions["leadloop"], app.test_client()
        assert post_events(client, [web_event("db1", "page_view")]).status_code == 200
        proxy.cut()
        down = post_events(client, [web_event("db2", "page_view")])
        assert down.status_code == 503 and down.headers["Retry-After"]
        proxy.start()
        assert post_events(client, [web_event("db2", "page_view")]).status_code == 200
        drain(svc)
        assert {key for (key,) in _event_keys(svc)} == {"db1", "db2"}
        assert unprocessed(svc) == 0


def _event_keys(svc: Any) -> list[tuple[str]]:
    with svc.sessions() as session:
        return list(session.execute(select(Event.event_key)))

