"""The one-line errors of the ``leadloop`` command, and its exit codes.

Exit codes: 0 done; 1 not found, or a failure at run time (a server unreachable, a check that
failed); 2 a usage or setup problem the operator fixes (a bad setting or argument, no schema,
missing credentials, a bad rules file); 130 interrupted; 141 stdout closed early (``| head``).
"""

from __future__ import annotations

import re
from typing import Any

OK, FAILURE, SETUP = 0, 1, 2
INTERRUPTED, CLOSED_PIPE = 130, 141


class CliError(Exception):
    """A failure to report as one line on stderr with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def describe(exc: BaseException, database_url: str | None = None, redis: Any = None) -> CliError | None:
    """Return the one-line error for ``exc``, or None for an exception we cannot explain.

    ``database_url`` and ``redis`` (the client in use) name the server in the message.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

    from integration.config import ConfigError
    from scoring import RulesError

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ConfigError):
        return CliError(f"configuration error: {exc}", SETUP)
    if isinstance(exc, RulesError):
        return CliError(f"rules file error:\n{exc}", SETUP)
    if isinstance(exc, OperationalError | InterfaceError) or (
            isinstance(exc, ProgrammingError) and _missing_table(_driver_cause(exc))):
        return database_error(exc, database_url)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return redis_error(exc, redis)
    return None


# --- the database ----------------------------------------------------------------------------

#: Words in a driver's message that mean the server answered and refused us: a setting to fix.
REFUSALS = ("authentication failed", "does not exist", "no password supplied", "permission denied")


def database_error(exc: Any, database_url: str | None) -> CliError:
    """Name the database and the cause of a driver error: ``cannot reach PostgreSQL at h:p: ...``."""
    where = database_place(database_url)
    cause = _driver_cause(exc)
    if _missing_table(cause):
        return CliError(f"the database lacks leadloop's tables ({cause}): run `leadloop db upgrade`", SETUP)
    if where.startswith("SQLite"):
        return CliError(f"cannot use the {where}: {cause}")
    if any(word in cause.lower() for word in REFUSALS):
        return CliError(f"{where} refused the connection: {cause}", SETUP)
    return CliError(f"cannot reach {where}: {cause}")


def database_place(database_url: str | None) -> str:
    """``PostgreSQL at host:port``, ``SQLite database /path``, or ``the database``."""
    from sqlalchemy.engine import make_url

    if not database_url:
        return "the database"
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database or ':memory:'}"
    host = url.host or url.query.get("host")
    if not host:
        return "PostgreSQL on the local socket"
    if str(host).startswith("/"):
        return f"PostgreSQL at socket {host}"
    return f"PostgreSQL at {host}:{url.port or 5432}"


def _driver_cause(exc: Any) -> str:
    """The driver's reason in a few words: ``connection refused``, ``timeout expired``."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip()
    first = text.splitlines()[0] if text else type(original).__name__
    # psycopg: 'connection failed: connection to server at "h", port p failed: Connection refused'
    first = first.rsplit(" failed: ", 1)[-1]
    first = re.sub(r"^(FATAL|ERROR):\s*", "", first).strip()
    first = re.sub(r"\[Errno -?\d+\]\s*", "", first)
    return (first[:1].lower() + first[1:]) if first[:2] != first[:2].upper() else first


def _missing_table(cause: str) -> bool:
    return "no such table" in cause or ("relation" in cause and "does not exist" in cause)


# --- Redis -----------------------------------------------------------------------------------

def redis_error(exc: Any, connection: Any = None) -> CliError:
    """Name the Redis server and the cause: ``cannot reach Redis at h:p: connection refused``."""
    from redis.exceptions import AuthenticationError

    where = redis_place(connection)
    if isinstance(exc, AuthenticationError):
        return CliError(f"{where} refused the login: {_redis_cause(exc)}", SETUP)
    return CliError(f"cannot reach {where}: {_redis_cause(exc)}")


def redis_place(connection: Any) -> str:
    """``Redis at host:port`` or ``Redis at unix socket /path`` for a client (or ``Redis``)."""
    kwargs = getattr(getattr(connection, "connection_pool", None), "connection_kwargs", None) or {}
    if kwargs.get("path"):
        return f"Redis at unix socket {kwargs['path']}"
    if kwargs.get("host"):
        return f"Redis at {kwargs['host']}:{kwargs.get('port', 6379)}"
    return "Redis"


def _redis_cause(exc: BaseException) -> str:
    for inner in (exc.__cause__, exc.__context__):
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror[:1].lower() + inner.strerror[1:]
    text = str(exc).strip().rstrip(".")
    # redis-py: "Error 111 connecting to 127.0.0.1:1. Connection refused."
    text = text.rsplit(". ", 1)[-1] if text.startswith("Error ") else text
    return (text[:1].lower() + text[1:]) or type(exc).__name__
