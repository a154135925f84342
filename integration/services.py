"""The process-wide services (database, Redis, queue, rules), built once from the config.

The web app hangs them on ``app.extensions["leadloop"]``; RQ jobs, which run outside any
request, reach the same object through ``current()``. Both are built by ``Services.build``.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from rq import Queue
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from integration.config import load_config
from integration.embedded_redis import ensure_embedded_redis
from scoring import Rules, load_rules_file

log = logging.getLogger(__name__)


def make_engine(url: str) -> Engine:
    """Return an engine; SQLite gets WAL and a busy timeout so web and worker can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

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
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


@dataclass
class Services:
    config: dict[str, Any]
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    queue: Queue
    rules: Rules
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, config: dict[str, Any] | None = None) -> Services:
        """Build every service from ``config`` (default: the environment). Raises ConfigError,
        RulesError, or RuntimeError when the embedded Redis cannot start."""
        config = load_config() if config is None else config
        if config["DATABASE_URL"].startswith("sqlite:///"):
            from pathlib import Path

            Path(config["DATABASE_URL"][len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine = make_engine(config["DATABASE_URL"])
        url = config["REDIS_URL"] or ensure_embedded_redis(config["LEADLOOP_INSTANCE_DIR"])
        config["REDIS_URL_EFFECTIVE"] = url
        redis = Redis.from_url(url)
        queue = Queue(config["LEADLOOP_QUEUE"], connection=redis)
        rules = load_rules_file(config["LEADLOOP_RULES"])
        return cls(config=config, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False),
                   redis=redis, queue=queue, rules=rules)

    @property
    def live_writes(self) -> bool:
        return self.config["CRM_WRITE_MODE"] == "live"

    def crm_client(self, crm: str) -> Any:
        """Return (and cache) the outbound client of connector ``crm``."""
        if crm not in self._clients:
            from connectors import registry

            self._clients[crm] = registry()[crm].make_client(self.config, self.redis)
        return self._clients[crm]


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
