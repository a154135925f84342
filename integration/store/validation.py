"""What the store accepts, checked at the edge: a bad value is a 400 with its reason, never a
503 from the database or a crash in the worker later.

The limits are the columns' own (``integration.store.models``): a text column's length is read
from its type, so a limit is written once, next to the model. JSON values must be finite
numbers and text without NUL characters or lone surrogates (PostgreSQL refuses both), nested no
deeper than ``MAX_DEPTH``; the activity properties scoring looks up (``asset``, ``url``) must be
text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column
from sqlalchemy.orm import InstrumentedAttribute

from connectors.events import LeadEvent
from integration.store.models import Event, Lead

#: Deepest nesting of a stored JSON value (fields, properties, the raw payload).
MAX_DEPTH = 32
#: The earliest and latest business time we store (before: a broken clock or a parsing slip).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
#: Longest text of an activity property scoring reads (``asset``, ``url``).
MAX_PROPERTY_TEXT = 4096


def text_limit(column: InstrumentedAttribute[Any] | Column[Any]) -> int:
    """The length of a ``String(n)`` column."""
    length = column.type.length
    assert isinstance(length, int), f"{column} is not a String(n) column"
    return length


#: LeadEvent attribute -> the column it is stored in.
EVENT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "source": Event.source, "event_key": Event.event_key, "kind": Event.kind,
    "crm": Lead.crm, "crm_id": Lead.crm_id, "email": Lead.email, "record_id": Event.record_id,
}
#: Lead fields that are copied into a lead column when processed.
FIELD_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "email": Lead.email, "owner_id": Lead.owner_id, "lead_status": Lead.handoff_status,
}
#: The length limits of those columns, read once (``event_problems`` runs for every event received).
EVENT_LIMITS: dict[str, int] = {name: text_limit(column) for name, column in EVENT_COLUMNS.items()}
FIELD_LIMITS: dict[str, int] = {name: text_limit(column) for name, column in FIELD_COLUMNS.items()}
#: Activity properties scoring uses as lookup keys: text only.
TEXT_PROPERTIES = ("asset", "url")


def event_problems(event: LeadEvent) -> list[str]:
    """Every reason the store would refuse ``event`` (or the worker choke on it); [] if none."""
    problems: list[str] = []
    for name, limit in EVENT_LIMITS.items():
        value = getattr(event, name)
        if value is not None:
            problems += _text_problems(name, value, limit)
    if not EARLIEST <= event.occurred_at < LATEST:
        problems.append(f"occurred_at: {event.occurred_at.isoformat()} is outside "
                        f"{EARLIEST.year}-{LATEST.year}")
    for name, limit in FIELD_LIMITS.items():
        value = event.fields.get(name)
        if value is not None:
            problems += _text_problems(f"fields.{name}", str(value), limit)
    for name in TEXT_PROPERTIES:
        value = event.properties.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(f"properties.{name}: must be text")
        elif isinstance(value, str) and len(value) > MAX_PROPERTY_TEXT:
            problems.append(f"properties.{name}: longer than {MAX_PROPERTY_TEXT} characters")
    for name, value in (("fields", event.fields), ("properties", event.properties), ("raw", event.raw)):
        problems += json_problems(name, value)
    return problems


def batch_problems(events: Iterable[LeadEvent]) -> list[str]:
    """Every problem of every event, each prefixed with the event's position in the request."""
    return [f"[{index}].{problem}" for index, event in enumerate(events) for problem in event_problems(event)]


def _text_problems(name: str, value: Any, limit: int) -> list[str]:
    if not isinstance(value, str):
        return [f"{name}: must be text"]
    problems = [f"{name}: longer than {limit} characters"] if len(value) > limit else []
    return problems + _character_problems(name, value)


def _character_problems(name: str, text: str) -> list[str]:
    if "\x00" in text:
        return [f"{name}: contains a NUL character"]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return [f"{name}: contains a lone surrogate (not valid Unicode)"]
    return []


def json_problems(name: str, value: Any) -> list[str]:
    """Problems of a JSON value: depth, non-finite numbers, bad text (keys included); the first
    few, each with its path."""
    problems: list[str] = []
    stack: list[tuple[str, Any, int]] = [(name, value, 0)]
    while stack and len(problems) < 5:
        path, item, depth = stack.pop()
        if depth > MAX_DEPTH:
            problems.append(f"{name}: nested deeper than {MAX_DEPTH} levels")
            break
        if isinstance(item, dict):
            for key, child in item.items():
                problems += _character_problems(f"{path} key", key) if isinstance(key, str) else []
                stack.append((f"{path}.{key}", child, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{index}]", child, depth + 1) for index, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(f"{path}: must be a finite number")
        elif isinstance(item, str):
            problems += _character_problems(path, item)
    return problems
