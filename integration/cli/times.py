"""Times given on the command line (``--since``, ``--until``, ``--at``, ``--before``): one parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scoring.rules_fields import duration_seconds


def parse_time(text: str, now: datetime) -> datetime:
    """The aware UTC time ``text`` names: a duration before ``now`` (``90d``, ``12h``, ``4w``), an
    ISO date (its midnight UTC) or an ISO date and time (no zone: UTC). Raises ``ValueError``."""
    text = text.strip()
    try:
        return now - timedelta(seconds=duration_seconds(text))
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
