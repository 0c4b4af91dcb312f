"""ISO weeks and days in local time (the timezone setting): the periods a stocktake covers.

A week runs from Monday 00:00 to the next Monday 00:00 local time, so a week holding a DST
change is 167 or 169 hours long; each day likewise runs midnight to midnight local time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

_WEEK = re.compile(r"(\d{4})-W(\d{2})")
_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
#: Days a report may name: those of the timestamp rule's years (ingest/rules.py TIMESTAMP), so the
#: day before and the week before stay inside datetime's range.
FIRST_YEAR, LAST_YEAR = 1970, 9998


@dataclass(frozen=True, slots=True)
class LocalDay:
    day: date
    start: float  # epoch seconds of local midnight
    end: float  # epoch seconds of the next local midnight


@dataclass(frozen=True, slots=True)
class LocalWeek:
    label: str  # ISO week, e.g. "2026-W47"
    timezone: str
    days: tuple[LocalDay, ...]  # Monday to Sunday

    @property
    def start(self) -> float:
        return self.days[0].start

    @property
    def end(self) -> float:
        return self.days[-1].end


def _midnight(day: date, tz: ZoneInfo) -> float:
    return datetime.combine(day, time(0), tzinfo=tz).timestamp()


def _week(monday: date, tz_name: str) -> LocalWeek:
    tz = ZoneInfo(tz_name)
    year, number, _ = monday.isocalendar()
    dates = [monday + timedelta(days=i) for i in range(8)]
    days = tuple(LocalDay(d, _midnight(d, tz), _midnight(n, tz)) for d, n in pairwise(dates))
    return LocalWeek(f"{year}-W{number:02d}", tz_name, days)


def parse_week(text: str, tz_name: str) -> LocalWeek:
    """The ISO week `YYYY-Www` in the timezone; ValueError saying what is wrong otherwise."""
    match = _WEEK.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"week {text!r} is not an ISO week like 2026-W47")
    try:
        return _week(date.fromisocalendar(int(match[1]), int(match[2]), 1), tz_name)
    except (ValueError, OverflowError):  # week 0 or 54, year 0, the last week of year 9999
        raise ValueError(f"week {text!r} does not exist (ISO years have 52 or 53 weeks)") from None


def local_day(day: date, tz_name: str) -> LocalDay:
    """The local calendar day, midnight to midnight in the timezone."""
    tz = ZoneInfo(tz_name)
    return LocalDay(day, _midnight(day, tz), _midnight(day + timedelta(days=1), tz))


def parse_day(text: str, tz_name: str) -> LocalDay:
    """The local day `YYYY-MM-DD` in the timezone; ValueError saying what is wrong otherwise."""
    match = _DAY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"date {text!r} is not a date like 2026-11-21")
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise ValueError(f"date {text!r} does not exist") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"date {text!r} must be in the years {FIRST_YEAR}-{LAST_YEAR}")
    return local_day(day, tz_name)


def day_of(ts: float, tz_name: str) -> LocalDay:
    """The local day holding the instant ts."""
    return local_day(datetime.fromtimestamp(ts, ZoneInfo(tz_name)).date(), tz_name)


def week_of(ts: float, tz_name: str) -> LocalWeek:
    """The local ISO week holding the instant ts."""
    local = datetime.fromtimestamp(ts, ZoneInfo(tz_name)).date()
    return _week(local - timedelta(days=local.weekday()), tz_name)


def local_text(ts: float, tz_name: str) -> str:
    """An instant as local wall-clock time, to the minute: what a sergeant reads in a report."""
    return datetime.fromtimestamp(ts, ZoneInfo(tz_name)).strftime("%Y-%m-%d %H:%M")
