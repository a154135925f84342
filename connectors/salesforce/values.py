"""Salesforce values as the payloads carry them: record ids, numbers, booleans and date-times.

Read by the outbound-message and Flow parsers (``webhook.py``, ``records.py``) and the client.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from connectors.base import PayloadError

#: Salesforce record ids: 15 (case-sensitive) or 18 (case-safe) alphanumerics.
SALESFORCE_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")

_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id18(record_id: str) -> str:
    """Return the 18-character (case-safe) form of a 15- or 18-character Salesforce id.

    Each suffix character encodes which of five id characters are upper-case letters, so the
    same record always gets the same key whichever form a sender used.
    """
    if len(record_id) != 15:
        return record_id
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(record_id[start:start + 5]) if "A" <= char <= "Z")
        suffix += _ID_SUFFIX[bits]
    return record_id + suffix


def to_int(value: Any) -> int:
    """Return a whole number from JSON or XML text; ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError("expected an integer")


def to_float(value: Any) -> float:
    """Return a number from JSON or XML text; ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected a number")
    return float(value)


def to_bool(value: Any) -> bool:
    """Return a boolean from JSON or XML text (``true``/``false``); ``ValueError`` otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError('expected true or false')


def parse_datetime(value: Any, where: str) -> datetime:
    """Return an aware UTC date-time; ``PayloadError`` naming ``where`` otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{where}: expected an ISO-8601 date-time")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadError(f"{where}: expected an ISO-8601 date-time") from None
    # Salesforce always sends UTC ("...Z"); a bare value is read as UTC, never as local time.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
