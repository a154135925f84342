"""Due times in business time: nights, weekends, public holidays, DST."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from scoring.business_time import add_business_time, holiday_dates, is_working_day, working_day_length

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)


def at(year: int, month: int, day: int, hour: int, minute: int = 0, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


@pytest.mark.parametrize(("start", "duration", "country", "expected"), [
    # Friday 16:30 + 1 working hour: 30 min on Friday, 30 min on Monday.
    (at(2026, 3, 6, 16, 30), H, "DE", at(2026, 3, 9, 9, 30)),
    # Thu 24 Dec 16:30: Christmas Day (Fri 25th) is a holiday in DE, 26th is a Saturday.
    (at(2026, 12, 24, 16, 30), H, "DE", at(2026, 12, 28, 9, 30)),
    # Without a holiday country the 25th is an ordinary Friday.
    (at(2026, 12, 24, 16, 30), H, None, at(2026, 12, 25, 9, 30)),
    # Easter 2026: Good Friday 3 Apr and Easter Monday 6 Apr, so Thursday -> Tuesday.
    (at(2026, 4, 2, 16, 30), H, "DE", at(2026, 4, 7, 9, 30)),
    # Start before opening counts from 09:00.
    (at(2026, 3, 9, 7, 15), H, "DE", at(2026, 3, 9, 10, 0)),
    # Start after closing counts from the next morning.
    (at(2026, 3, 9, 18, 0), H, "DE", at(2026, 3, 10, 10, 0)),
    # Start on a Saturday counts from Monday.
    (at(2026, 3, 7, 11, 0), H, "DE", at(2026, 3, 9, 10, 0)),
    # Ends exactly at closing: stays on that day.
    (at(2026, 3, 9, 16, 0), H, "DE", at(2026, 3, 9, 17, 0)),
    # Longer than a day: 7h Monday + 8h Tuesday + 5h Wednesday.
    (at(2026, 3, 9, 10, 0), 20 * H, "DE", at(2026, 3, 11, 14, 0)),
    # One working day (8h) from Friday 16:00 is Monday 16:00.
    (at(2026, 3, 6, 16, 0), 8 * H, "DE", at(2026, 3, 9, 16, 0)),
    # Two working weeks across Easter: 80h = 10 working days, Good Friday/Easter Monday skipped.
    (at(2026, 3, 30, 9, 0), 80 * H, "DE", at(2026, 4, 14, 17, 0)),
    # Zero duration inside working hours: now; at closing: next opening.
    (at(2026, 3, 9, 11, 0), timedelta(0), "DE", at(2026, 3, 9, 11, 0)),
    (at(2026, 3, 9, 17, 0), timedelta(0), "DE", at(2026, 3, 10, 9, 0)),
    # Subdivision: Epiphany (Tue 6 Jan) is a holiday in Bavaria, not nationwide.
    (at(2026, 1, 5, 16, 30), H, "DE-BY", at(2026, 1, 7, 9, 30)),
    (at(2026, 1, 5, 16, 30), H, "DE", at(2026, 1, 6, 9, 30)),
])
def test_add_business_time_berlin(start: datetime, duration: timedelta, country: str | None,
                                  expected: datetime) -> None:
    due = add_business_time(start, duration, tz="Europe/Berlin", country=country)
    assert due == expected
    assert due.tzinfo == BERLIN
    assert due.isoformat() == expected.isoformat()


def test_start_in_another_timezone_is_converted() -> None:
    # 15:30 UTC on Friday 6 March is 16:30 in Berlin.
    due = add_business_time(datetime(2026, 3, 6, 15, 30, tzinfo=UTC), H, tz="Europe/Berlin", country="DE")
    assert due.isoformat() == "2026-03-09T09:30:00+01:00"


def test_us_observed_independence_day() -> None:
    # 4 July 2026 is a Saturday; the holiday is observed on Friday 3 July.
    due = add_business_time(at(2026, 7, 2, 16, 30, zone=NEW_YORK), H, tz="America/New_York", country="US")
    assert due.isoformat() == "2026-07-06T09:30:00-04:00"


@pytest.mark.parametrize(("start", "expected_iso"), [
    # Spring forward on Sunday 29 March: Friday 16:00 (+01:00) + 2h -> Monday 10:00 (+02:00).
    (at(2026, 3, 27, 16, 0), "2026-03-30T10:00:00+02:00"),
    # Fall back on Sunday 25 October.
    (at(2026, 10, 23, 16, 0), "2026-10-26T10:00:00+01:00"),
])
def test_dst_change_over_the_weekend(start: datetime, expected_iso: str) -> None:
    due = add_business_time(start, 2 * H, tz="Europe/Berlin", country="DE")
    assert due.isoformat() == expected_iso


def test_dst_change_inside_working_hours_counts_real_hours() -> None:
    # A 01:00-05:00 shift on every day; on 29 March 02:00 jumps to 03:00, so the window holds 3h.
    night_shift = {"tz": "Europe/Berlin", "country": None, "hours": (time(1), time(5)),
                   "workdays": frozenset(range(7))}
    start = at(2026, 3, 29, 1, 0)
    assert add_business_time(start, 3 * H, **night_shift).isoformat() == "2026-03-29T05:00:00+02:00"
    assert add_business_time(start, 3.5 * H, **night_shift).isoformat() == "2026-03-30T01:30:00+02:00"


def test_custom_hours_and_workdays() -> None:
    # Sunday-to-Thursday week, 08:00-16:00 in Dubai.
    due = add_business_time(datetime(2026, 3, 5, 15, 0, tzinfo=ZoneInfo("Asia/Dubai")), 2 * H,
                            tz="Asia/Dubai", country=None, hours=(time(8), time(16)),
                            workdays=frozenset({6, 0, 1, 2, 3}))
    assert due.isoformat() == "2026-03-08T09:00:00+04:00"  # Thursday 15:00 -> Sunday 09:00


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"start": datetime(2026, 3, 9, 10)}, "start must be timezone-aware"),
    ({"duration": -H}, "duration must not be negative"),
    ({"tz": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ({"country": "XX"}, "no public holiday calendar for country 'XX'"),
    ({"hours": (time(17), time(9))}, "working hours must open before they close"),
    ({"workdays": frozenset()}, "at least one workday is needed"),
])
def test_bad_arguments(kwargs: dict, message: str) -> None:
    arguments = {"start": at(2026, 3, 9, 10), "duration": H, "tz": "Europe/Berlin", "country": "DE", **kwargs}
    start, duration = arguments.pop("start"), arguments.pop("duration")
    with pytest.raises(ValueError, match=message):
        add_business_time(start, duration, **arguments)


def test_holiday_calendars_are_cached_per_country_and_year() -> None:
    holiday_dates.cache_clear()
    for _ in range(3):
        add_business_time(at(2026, 12, 24, 16, 30), H, tz="Europe/Berlin", country="DE")
    info = holiday_dates.cache_info()
    assert info.misses == 1
    assert info.hits >= 2


def test_helpers() -> None:
    assert working_day_length((time(9), time(17))) == 8 * H
    assert working_day_length((time(8, 30), time(12))) == 3.5 * H
    assert not is_working_day(datetime(2026, 12, 25).date(), country="DE")
    assert is_working_day(datetime(2026, 12, 25).date(), country=None)
    assert not is_working_day(datetime(2026, 12, 27).date(), country=None)  # Sunday
