"""How the ``leadloop`` command shows things: JSON, aligned tables, times, counts.

Data goes to stdout, messages to stderr (``note``), so ``--json`` output is only JSON. Text
shown to people keeps its real characters (``−``, ``ü``), never ``\\u2212`` escapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click


def dumps(value: Any, *, indent: int | None = None) -> str:
    """Return ``value`` as JSON with real characters (dates and other objects as strings)."""
    return json.dumps(value, ensure_ascii=False, default=str, indent=indent)


def out(line: str = "") -> None:
    """Write a line of data to stdout."""
    click.echo(line)


def note(line: str) -> None:
    """Write a message for the person at the terminal to stderr."""
    click.echo(line, err=True)


def plural(count: int, word: str, many: str | None = None) -> str:
    """Return ``"1 job"`` / ``"3 jobs"``."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def number(value: float | None) -> str:
    """Return a score or point value without a needless ``.0``; ``-`` for none."""
    return "-" if value is None else f"{value:g}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, indent: str = "") -> list[str]:
    """Return the lines of a table whose columns are aligned (numbers to the right).

    The last column is not padded, so long text there does not drag trailing spaces along.
    """
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(headers[i])] + [len(row[i]) for row in cells]) for i in range(len(headers))]
    numeric = [all(_numeric(row[i]) for row in cells) and bool(cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        parts[-1] = row[-1] if not numeric[-1] else parts[-1]
        return (indent + "  ".join(parts)).rstrip()

    return [line(list(headers))] + [line(row) for row in cells]


def _numeric(cell: str) -> bool:
    return cell.lstrip("+-−#").replace(".", "", 1).isdigit()


def zone_named(name: str | None) -> tzinfo | None:
    """Return the time zone called ``name`` (an IANA name such as ``Europe/Berlin``), or None."""
    if not name or not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def minute(moment: datetime | str | None, zone: tzinfo = UTC, *, named: bool = True) -> str:
    """Return ``moment`` to the minute in ``zone``, e.g. ``2026-11-20 10:04 Europe/Berlin``.

    Accepts aware datetimes and ISO 8601 strings (naive ones are taken as UTC); ``-`` for none,
    the text itself if it is no time.
    """
    if moment is None or moment == "":
        return "-"
    aware = _aware(moment)
    if aware is None:
        return str(moment)
    text = aware.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return f"{text} {zone_name(zone)}" if named else text


def zone_name(zone: tzinfo) -> str:
    """Return the name a person recognises: ``Europe/Berlin``, ``UTC``."""
    return getattr(zone, "key", None) or str(zone)


def iso(moment: datetime | str | None) -> str | None:
    """Return ``moment`` as ISO 8601 to the second (aware; naive taken as UTC), or None."""
    if moment is None or moment == "":
        return None
    aware = _aware(moment)
    return aware.isoformat(timespec="seconds") if aware is not None else str(moment)


def _aware(moment: datetime | str) -> datetime | None:
    """``moment`` as an aware datetime (ISO text parsed, naive taken as UTC); None if it is no time."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def shorten(text: str, width: int) -> str:
    """Return ``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
