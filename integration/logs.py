"""Logging, configured in one place for every process (web app, worker, cron).

``configure_logging`` sends every record to standard error, as text (the default) or, with
``LOG_FORMAT=json``, as one JSON object per line: ``time``, ``level``, ``logger``, ``message``, and
``request_id`` inside a web request or ``job_id`` inside an RQ job (plus ``exception`` with the
traceback, if any). What leadloop logs names things by endpoint, lead id or job id, never by a
path, a secret or a person's data; the loggers of libraries that would (SQLAlchemy's statement
and row log, the development server's request lines) are kept at WARNING.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from rq import get_current_job

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"
#: The current web request's id (set by the web app for the length of a request).
request_id: ContextVar[str | None] = ContextVar("leadloop_request_id", default=None)
#: Loggers kept at WARNING whatever ``LOG_LEVEL`` says, because below it they would write people's
#: data or secret-bearing paths: SQLAlchemy's engine logs every fetched row at DEBUG (it keeps
#: itself at WARNING unless told otherwise: this makes sure), werkzeug's development server
#: logs each request's path (the Salesforce endpoint's token is part of it), and urllib3 logs each
#: outgoing request's URL at DEBUG (a Slack incoming webhook's URL is its secret).
QUIET_LOGGERS = ("sqlalchemy.engine", "werkzeug", "urllib3")


def current_ids() -> dict[str, str]:
    """The ids that tie a log line to its work: ``request_id`` and/or ``job_id``, when set."""
    ids = {}
    if (rid := request_id.get()) is not None:
        ids["request_id"] = rid
    if (job := get_current_job()) is not None:
        ids["job_id"] = job.id
    return ids


class ContextFilter(logging.Filter):
    """Puts the request and job ids on each record (``record.ids``, and ``record.context`` for text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        record.ids = ids
        record.context = "".join(f" [{name}={value}]" for name, value in ids.items())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "ids", None) or current_ids())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class LeadloopHandler(logging.StreamHandler):
    """leadloop's one handler on the root logger. Without a stream of its own it writes to
    whatever ``sys.stderr`` is when a record comes (gunicorn and pytest replace it)."""

    def __init__(self, stream: IO[str] | None = None):
        super().__init__()
        self._own_stream = stream

    @property
    def stream(self) -> IO[str]:  # type: ignore[override]
        return self._own_stream or sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass  # logging.StreamHandler.__init__ assigns sys.stderr; we look it up at each record


def configure_logging(level: str = "INFO", log_format: str = "text", stream: IO[str] | None = None
                      ) -> logging.Handler:
    """Route every log record of this process through one handler at ``level``, formatted as
    ``log_format`` (``text`` or ``json``); return the handler. Calling it again replaces the
    handler (other handlers on the root logger, e.g. a test's, are left alone).

    Raises ``ValueError`` for an unknown format.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)} (got {log_format!r})")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, LeadloopHandler)]:
        root.removeHandler(old)
    handler = LeadloopHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return handler
