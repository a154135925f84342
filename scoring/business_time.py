"""Due times in business time: working hours, weekends and public holidays of a rep's country.

Pure: the start time is an argument and the result depends only on the arguments (and on the
``holidays`` package's calendars, cached per country and year).

Arithmetic is done in UTC between working windows built from local wall-clock times, so a
window that spans a DST change counts the hours that really elapse in it, and the result is
returned in the rep's timezone.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

#: Monday to Friday, as ``date.weekday()`` numbers.
MONDAY_TO_FRIDAY: frozenset[int] = frozenset({0, 1, 2, 3, 4})
#: 09:00 to 17:00 local time.
NINE_TO_FIVE: tuple[time, time] = (time(9), time(17))
#: How far ahead we look for a working day before giving up (a calendar with no working days).
_MAX_DAYS_SEARCHED = 3660


@lru_cache(maxsize=512)
def holiday_dates(country: str, year: int) -> frozenset[date]:
    """Return the public holidays of ``country`` in ``year``.

    ``country`` is an ISO 3166 code, optionally with a subdivision: ``"DE"``, ``"DE-BY"``,
    ``"US-CA"``. Raises ``ValueError`` for a country the ``holidays`` package does not know.
    """
    code, _, subdivision = country.upper().partition("-")
    try:
        calendar = holidays.country_holidays(code, subdiv=subdivision or None, years=year)
    except NotImplementedError as exc:
        raise ValueError(f"no public holiday calendar for country {country!r}") from exc
    return frozenset(calendar)


def is_working_day(day: date, *, country: str | None, workdays: Collection[int] = MONDAY_TO_FRIDAY) -> bool:
    """Return True if ``day`` is one of ``workdays`` and not a public holiday in ``country``."""
    if day.weekday() not in workdays:
        return False
    return country is None or day not in holiday_dates(country, day.year)


def working_day_length(hours: tuple[time, time] = NINE_TO_FIVE) -> timedelta:
    """Return the length of one working day (``closes - opens``), e.g. 8 hours for 09:00-17:00."""
    opens, closes = hours
    return datetime.combine(date.min, closes) - datetime.combine(date.min, opens)


def zone_for(tz: str) -> ZoneInfo:
    """Return the ``ZoneInfo`` for an IANA name; raises ``ValueError`` for an unknown one."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {tz!r}") from exc


def add_business_time(
    start: datetime,
    duration: timedelta,
    *,
    tz: str,
    country: str | None,
    hours: tuple[time, time] = NINE_TO_FIVE,
    workdays: Collection[int] = MONDAY_TO_FRIDAY,
) -> datetime:
    """Return the moment ``duration`` of working time after ``start``, in timezone ``tz``.

    Working time runs from ``hours[0]`` to ``hours[1]`` local time on ``workdays`` that are not
    public holidays in ``country`` (None: no holidays). A start outside working hours counts
    from the next opening; a duration that ends exactly at closing time ends there (not the
    next morning). A zero duration returns ``start`` moved to the next working moment.

    Raises ``ValueError`` for a naive ``start``, a negative duration, ``hours`` that do not
    open before they close, no workdays, or an unknown timezone or country.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    if duration < timedelta(0):
        raise ValueError("duration must not be negative")
    if hours[0] >= hours[1]:
        raise ValueError("working hours must open before they close")
    if not workdays:
        raise ValueError("at least one workday is needed")
    zone = zone_for(tz)
    current = start.astimezone(UTC)
    remaining = duration
    while True:
        opens, closes = _next_window(current, zone, country, hours, workdays)
        begin = max(current, opens)
        available = closes - begin
        if remaining <= available:
            return (begin + remaining).astimezone(zone)
        remaining -= available
        current = closes


def _next_window(
    after: datetime, zone: ZoneInfo, country: str | None, hours: tuple[time, time], workdays: Collection[int]
) -> tuple[datetime, datetime]:
    """Return (opens, closes) in UTC of the first working window that closes after ``after``."""
    day = after.astimezone(zone).date()
    for _ in range(_MAX_DAYS_SEARCHED):
        if is_working_day(day, country=country, workdays=workdays):
            opens = datetime.combine(day, hours[0], tzinfo=zone).astimezone(UTC)
            closes = datetime.combine(day, hours[1], tzinfo=zone).astimezone(UTC)
            if closes > after:
                return opens, closes
        day += timedelta(days=1)
    raise ValueError("no working day found within ten years; check workdays and holidays")
