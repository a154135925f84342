"""The time, as the integration layer reads it: an explicit dependency, never a global.

``Services`` carries one ``Clock``; the web app and every job read the time through it. Tests
pass their own (``create_app(config, clock=...)``) to move time. Scoring never reads a clock:
time is always an argument there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Anything that returns the current time, aware UTC, when called."""

    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    """The real time, aware UTC."""
    return datetime.now(UTC)
