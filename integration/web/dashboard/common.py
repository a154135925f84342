"""What every dashboard page shares: reading its query parameters (a bad one is a 400 with the
reason), the services, CSV answers and the number formats."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from flask import Response, abort, current_app, request

from integration.services import Services

#: Longest text a search box takes (an e-mail address is at most 320 characters).
MAX_TEXT = 320


def services() -> Services:
    return current_app.extensions["leadloop"]


def text_param(name: str, max_length: int = MAX_TEXT) -> str | None:
    """The stripped query parameter ``name`` (None when absent or empty); 400 when too long."""
    value = request.args.get(name, "").strip()
    if len(value) > max_length:
        abort(400, description=f"{name}: at most {max_length} characters")
    if any(ord(c) < 32 for c in value):
        abort(400, description=f"{name}: control characters are not allowed")
    return value or None


def choice_param(name: str, choices: Iterable[str]) -> str | None:
    """The query parameter ``name`` when it is one of ``choices`` (None when absent); 400 otherwise."""
    value = text_param(name, 64)
    allowed = list(choices)
    if value is not None and value not in allowed:
        abort(400, description=f"{name}: must be one of {', '.join(allowed)}")
    return value


def date_param(name: str) -> date | None:
    """The query parameter ``name`` as a ``YYYY-MM-DD`` date (None when absent); 400 otherwise."""
    value = text_param(name, 10)
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        abort(400, description=f"{name}: must be a date like 2026-03-31 (got {value!r})")
    if len(value) != 10 or not 1900 <= day.year <= 2999:
        abort(400, description=f"{name}: must be a date like 2026-03-31 between the years 1900 and 2999")
    return day


def page_param(name: str = "page") -> int:
    """The 1-based page number (1 when absent); 400 unless a whole number from 1 to 100,000."""
    value = text_param(name, 6)
    if value is None:
        return 1
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 100_000:
        abort(400, description=f"{name}: must be a whole number from 1 to 100000")
    return int(value)


@dataclass(frozen=True)
class Window:
    """The dates a page covers as typed, and as UTC bounds: leads first touched from ``since``
    (included) to ``until`` (not included), as ``leadloop report --since/--until`` take them."""

    since: date | None
    until: date | None

    @property
    def since_at(self) -> datetime | None:
        return datetime.combine(self.since, time(), UTC) if self.since else None

    @property
    def until_at(self) -> datetime | None:
        return datetime.combine(self.until, time(), UTC) if self.until else None


def window_params() -> Window:
    """``since`` and ``until`` (both optional); 400 unless ``since`` comes before ``until``."""
    window = Window(date_param("since"), date_param("until"))
    if window.since and window.until and window.since >= window.until:
        abort(400, description="since: must be before until (until is not included)")
    return window


def csv_response(columns: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    """``rows`` under ``columns`` as a CSV download (RFC 4180, UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if value is None else _csv_safe(value) for value in row])
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _csv_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (=, +, -, @) gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def share(value: Any) -> str:
    """``0.1234`` as ``12.3 %``; ``-`` when unknown."""
    return "-" if value is None else f"{float(value) * 100:.1f} %"


def days(value: Any) -> str:
    """``3.25`` as ``3.2 d``; ``-`` when unknown."""
    return "-" if value is None else f"{float(value):.1f} d"


def count(value: Any) -> str:
    """``12345`` as ``12,345``; ``-`` when unknown."""
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".rstrip("0")  # 80.5, 20.25
    return f"{int(value):,}" if isinstance(value, int | float) else str(value)


def cell(value: Any) -> str:
    """A table cell: numbers grouped, shares left as the report gives them, nothing as ``-``."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return count(value)
    if isinstance(value, list | tuple):
        return ", ".join(cell(item) for item in value)
    return str(value)


#: Report columns that hold a share (0..1), shown as a percentage in the HTML tables (the CSV keeps
#: the report's number).
SHARE_SUFFIXES = ("_rate", "_share", "precision")


def report_cell(value: Any, column: str) -> str:
    """A report table's cell: shares (``converted.*``, ``*_rate``, ``*_share``, ``precision``) as
    percentages, the rest as ``cell`` shows them."""
    if isinstance(value, int | float) and not isinstance(value, bool) and (
            column.endswith(SHARE_SUFFIXES) or column.startswith("converted.")):
        return share(value)
    return cell(value)
