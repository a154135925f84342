"""The one place the integration layer reads the time (tests move it; scoring never reads it)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """Return the current time, aware UTC."""
    return datetime.now(UTC)
