"""The process-wide services (database, Redis, queue, rules, clock, CRM clients, metrics), built once.

The web app hangs them on ``app.extensions["leadloop"]``; RQ jobs, which run outside any
request, reach the same object through ``current()``. Both are built by ``Services.build``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

import connectors
from connectors.base import Connector, CrmClient, RecordReader
from integration.clock import Clock, system_clock
from integration.config import load_config
from integration.embedded_redis import ensure_embedded_redis
from integration.telemetry import CountedCrmClient, CountedRecordReader, Telemetry
from scoring import Rules, load_rules_file

log = logging.getLogger(__name__)


def make_engine(url: str) -> Engine:
    """Return an engine; SQLite gets WAL and a busy timeout so web and worker can share it.

    Statement parameters never appear in errors or logs (they hold people's data).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below): pysqlite's implicit BEGIN is DEFERRED, and a
            # deferred reader cannot later upgrade to a writer once another writer committed.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            # One writer at a time, decided at BEGIN: SQLite's stand-in for row locks.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No ``pool_pre_ping``: a round trip before every checkout was 14 % of the intake's time. A
    # connection the server dropped fails its statement instead (a 503 the sender retries, or a
    # job RQ retries), and SQLAlchemy then replaces every pooled connection of that age.
    return create_engine(url, pool_size=5, max_overflow=10, pool_recycle=3600, hide_parameters=True)


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite file URL (the default store lives in the instance folder)."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


@dataclass
class Services:
    config: dict[str, Any]
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    queue: Queue
    rules: Rules
    #: The one source of the current time for the web app and the jobs (tests pass their own).
    clock: Clock = system_clock
    #: The metrics this process records (``integration.telemetry``); flushed per request and job.
    telemetry: Telemetry = field(default_factory=lambda: Telemetry(None))
    #: The canonical lead fields that carry sales feedback in the registered CRMs (read once).
    feedback_fields: tuple[str, ...] = field(default_factory=connectors.feedback_field_names)
    #: Sessions in which each statement commits on its own (PostgreSQL; None on SQLite), for the
    #: intake of events whose leads are all known: one look-up, one INSERT (``integration.web.receiver``).
    autocommit_sessions: sessionmaker[Session] | None = None
    _clients: dict[str, CrmClient] = field(default_factory=dict)
    _readers: dict[str, RecordReader] = field(default_factory=dict)

    @classmethod
    def build(cls, config: Mapping[str, Any] | None = None, *, clock: Clock | None = None) -> Services:
        """Build every service from ``config`` (default: the environment). Raises ConfigError,
        RulesError, or RuntimeError when the embedded Redis cannot start."""
        settings = load_config() if config is None else dict(config)
        ensure_sqlite_folder(settings["DATABASE_URL"])
        engine = make_engine(settings["DATABASE_URL"])
        url = settings["REDIS_URL"] or ensure_embedded_redis(settings["LEADLOOP_INSTANCE_DIR"])
        settings["REDIS_URL_EFFECTIVE"] = url
        redis = Redis.from_url(url)
        queue = Queue(settings["LEADLOOP_QUEUE"], connection=redis)
        rules = load_rules_file(settings["LEADLOOP_RULES"], connectors.status_fields())
        for warning in rules.warnings:  # old spellings that still load, each with its rewrite
            log.warning("rules file %s: %s", settings["LEADLOOP_RULES"], warning)
        autocommit = (sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
                      if engine.dialect.name == "postgresql" else None)
        return cls(config=settings, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False),
                   autocommit_sessions=autocommit,
                   redis=redis, queue=queue, rules=rules, clock=clock or system_clock,
                   telemetry=Telemetry.for_url(url))

    def now(self) -> datetime:
        """The current time, aware UTC, from this process's clock."""
        return self.clock()

    @property
    def live_writes(self) -> bool:
        return self.config["CRM_WRITE_MODE"] == "live"

    def connector(self, crm: str) -> Connector:
        """The registered connector named ``crm`` (KeyError for an unknown CRM)."""
        return connectors.registry()[crm]

    def can_read(self, crm: str) -> bool:
        """Whether the CRM's read credentials are configured (otherwise we score what we have)."""
        found = connectors.registry().get(crm)
        return found is not None and found.can_read(self.config)

    def crm_client(self, crm: str) -> CrmClient:
        """Return (and cache) the outbound client of connector ``crm``, its calls counted."""
        if crm not in self._clients:
            client = self.connector(crm).make_client(self.config, self.redis)
            self._clients[crm] = CountedCrmClient(crm, client, self.telemetry)
        return self._clients[crm]


    def record_reader(self, crm: str) -> RecordReader | None:
        """Return (and cache) the CRM's record reader, its calls counted; None when the CRM's
        webhooks carry whole records or its read credentials are not configured."""
        connector = self.connector(crm)
        if connector.make_record_reader is None or not connector.can_read(self.config):
            return None
        if crm not in self._readers:
            reader = connector.make_record_reader(self.config, self.redis)
            self._readers[crm] = CountedRecordReader(crm, reader, self.telemetry)
        return self._readers[crm]


_current: Services | None = None
_current_pid: int | None = None
_lock = threading.Lock()


def install(services: Services) -> None:
    """Make ``services`` the ones jobs in this process use."""
    global _current, _current_pid
    _current, _current_pid = services, os.getpid()


def current() -> Services:
    """Return this process's services, building them from the environment on first use."""
    global _current, _current_pid
    with _lock:
        if _current is None:
            _current, _current_pid = Services.build(), os.getpid()
        elif _current_pid != os.getpid():
            # A forked RQ work horse: never share the parent's pooled DB connections.
            _current.engine.dispose(close=False)
            _current._clients.clear()
            _current_pid = os.getpid()
        return _current
