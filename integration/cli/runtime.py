"""What a ``leadloop`` command runs on: settings, the store, the rules, Redis; built on demand.

A command asks only for what it needs (``lead show`` never starts Redis), every part is checked
when it is first used (a missing schema, an unreachable server: one line, see ``errors``), and
``close`` gives everything back when the command ends, including an embedded Redis the
command started itself.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from integration.cli.errors import SETUP, CliError
from integration.cli.output import note

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from integration.services import Services
    from scoring import Rules

#: Seconds to wait for PostgreSQL to answer a connection before calling it unreachable.
CONNECT_TIMEOUT = "10"


class Runtime:
    """The lazily built parts of one command run (``ctx.obj``)."""

    def __init__(self) -> None:
        self._config: dict[str, Any] | None = None
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._rules: Rules | None = None
        self._services: Services | None = None
        self._schema_checked = False
        #: The instance folder whose embedded Redis this command started (and stops at the end).
        self._embedded_started: str | None = None
        #: The name our Redis connections carry, to tell them from other processes'.
        self.client_name = f"leadloop-cli-{os.getpid()}"
        #: The Redis client in use, to name it in an error.
        self.redis: Any = None

    @property
    def config(self) -> dict[str, Any]:
        """The validated settings (raises ``ConfigError`` naming the variable)."""
        if self._config is None:
            from integration.config import load_config

            config = load_config()
            config["DATABASE_URL"] = _with_connect_timeout(config["DATABASE_URL"])
            self._config = config
        return self._config

    @property
    def database_url(self) -> str | None:
        """The database URL if the settings were read (for naming it in an error)."""
        return self._config["DATABASE_URL"] if self._config else None

    def engine(self, *, check_schema: bool = True) -> Engine:
        """The store's engine; with ``check_schema``, raises ``CliError`` unless it is migrated."""
        if self._engine is None:
            from integration.services import ensure_sqlite_folder, make_engine

            url = self.config["DATABASE_URL"]
            if check_schema:
                _require_sqlite_file(url)
            ensure_sqlite_folder(url)
            self._engine = make_engine(url)
        if check_schema:
            self._check_schema(self._engine)
        return self._engine

    def _check_schema(self, engine: Engine) -> None:
        if not self._schema_checked:
            _require_schema(engine, self.config["DATABASE_URL"])
            self._schema_checked = True

    def sessions(self) -> sessionmaker[Session]:
        """A session factory on the migrated store."""
        if self._sessions is None:
            from sqlalchemy.orm import sessionmaker

            self._sessions = sessionmaker(self.engine(), expire_on_commit=False)
        return self._sessions

    def rules(self) -> Rules:
        """The live rules file (raises ``RulesError`` listing its mistakes)."""
        if self._rules is None:
            from connectors import status_fields
            from scoring import load_rules_file

            self._rules = load_rules_file(self.config["LEADLOOP_RULES"], status_fields())
        return self._rules

    def now(self) -> datetime:
        """The current time, aware UTC."""
        from integration.clock import system_clock

        return system_clock()

    def services(self, *, database: bool = True) -> Services:
        """Everything the jobs use, on a reachable Redis (started here when it is embedded).

        With ``database``, the store must be migrated too. Raises ``CliError``.
        """
        if self._services is None:
            from integration import services

            config = dict(self.config)
            if not config["REDIS_URL"]:
                config["REDIS_URL"] = self._embedded_redis(config["LEADLOOP_INSTANCE_DIR"])
            if database:
                _require_sqlite_file(config["DATABASE_URL"])
            svc = services.Services.build(config)
            self.redis = svc.redis  # names the server if the ping (or a later call) fails
            svc.redis.ping()
            self._services = svc
            if self._engine is not None:
                self._engine.dispose()
            self._engine, self._sessions, self._rules = svc.engine, svc.sessions, svc.rules
        if database:
            self._check_schema(self._services.engine)
        return self._services

    def _embedded_redis(self, folder: str) -> str:
        from integration.embedded_redis import start_embedded_redis

        try:
            url, started = start_embedded_redis(folder)
        except (RuntimeError, OSError) as exc:
            raise CliError(f"cannot start the embedded Redis in {folder}: {exc}") from exc
        if started:
            self._embedded_started = folder
        # Named connections: at the end we can tell whether other processes still use it.
        return f"{url}?client_name={self.client_name}"

    def close(self) -> None:
        """Close connections; stop the embedded Redis this command started if no one else uses it."""
        if self._services is not None:
            self._services.redis.connection_pool.disconnect()
        if self._engine is not None:
            self._engine.dispose()
        if self._embedded_started is not None:
            from integration.embedded_redis import release_embedded_redis

            folder, self._embedded_started = self._embedded_started, None
            others = release_embedded_redis(folder, self.client_name)
            if others:
                note(f"the embedded Redis this command started in {folder} stays up: other processes are "
                     "connected to it (`leadloop stop` stops it)")


#: Hands a command the run's ``Runtime`` (``main`` creates it; ``ensure`` covers click's test runner).
pass_runtime = click.make_pass_decorator(Runtime, ensure=True)


def _with_connect_timeout(url: str) -> str:
    """PostgreSQL URLs get a connect timeout, so a dead host is reported in seconds, not minutes."""
    if not url.startswith("postgresql"):
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if "connect_timeout" in parsed.query:
        return url
    return parsed.update_query_dict({"connect_timeout": CONNECT_TIMEOUT}).render_as_string(hide_password=False)


def _require_sqlite_file(url: str) -> None:
    """A SQLite store that does not exist yet is reported, not silently created empty."""
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise CliError(f"the database has no leadloop tables: run `leadloop db upgrade` "
                       f"(SQLite database {url[len('sqlite:///'):]} does not exist yet)", SETUP)


def _require_schema(engine: Engine, url: str) -> None:
    """Raise ``CliError`` unless the store has leadloop's tables at the current migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, inspect

    from integration.cli.errors import database_place
    from integration.store.migrate import alembic_config

    # Looking must not change anything: our SQLite engine switches the file to WAL on connect.
    probe = create_engine(engine.url) if engine.dialect.name == "sqlite" else engine
    try:
        with probe.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            current = MigrationContext.configure(connection).get_current_revision() if "leads" in tables else None
    finally:
        if probe is not engine:
            probe.dispose()
    if "leads" not in tables:
        raise CliError(f"the database has no leadloop tables: run `leadloop db upgrade` ({database_place(url)})",
                       SETUP)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if current != head:
        raise CliError(f"the database schema is at revision {current or 'none'}, this leadloop needs {head}: "
                       "run `leadloop db upgrade`", SETUP)
