"""Patrol plans: the planned dosage per hot spot and local-time window, and when windows occur.

A plan document (YAML or JSON file, or the body of POST /v1/plans) is checked by
ingest.plan_file into these typed, frozen values. Windows are
local wall-clock times in the plan's time zone, so they move with daylight saving: a 20:00-04:00
window lasts 7 h on the night the clocks go forward and 9 h on the night they go back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Day names of `days`, Monday first (datetime.weekday() order).
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Loc = tuple[str | int, ...]


class PlanError(ValueError):
    """A plan document that cannot be accepted; `loc` is the path of the offending field."""

    def __init__(self, loc: Loc, message: str) -> None:
        self.loc = loc
        self.message = message
        super().__init__(f"{dotted(loc)}: {message}" if loc else message)


def dotted(loc: Loc) -> str:
    """A field path as written in the document: plans[0].windows[1].end."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass(frozen=True, slots=True)
class Window:
    """A recurring local-time window; `days` are the weekdays it STARTS on (0 = Monday)."""

    days: tuple[int, ...]
    start: time
    end: time
    visits: int

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": [DAY_NAMES[d] for d in self.days],
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "visits": self.visits,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """The planned dosage of one hot spot (fence): qualifying visits per window occurrence.

    A visit qualifies when it lasts at least `min_visit_min`; visits longer than
    `target_visit_min` are "long" (the 10-15 minute guidance). `timezone` None means the
    service's `timezone` setting.
    """

    plan_id: str
    fence_id: str
    team: str | None
    target_pct: float
    min_visit_min: float
    target_visit_min: float
    max_gap_min: float | None
    windows: tuple[Window, ...]
    timezone: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The plan in document form (parse_plan(to_dict()) gives it back)."""
        out: dict[str, Any] = {
            "plan_id": self.plan_id,
            "fence_id": self.fence_id,
            "team": self.team,
            "target_pct": self.target_pct,
            "min_visit_min": self.min_visit_min,
            "target_visit_min": self.target_visit_min,
            "max_gap_min": self.max_gap_min,
            "windows": [w.to_dict() for w in self.windows],
        }
        if self.timezone is not None:
            out["timezone"] = self.timezone
        return out


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a plan's window, as UTC epoch seconds [start, end)."""

    plan: Plan
    window: int  # index into plan.windows
    start: float
    end: float

    @property
    def planned_visits(self) -> int:
        return self.plan.windows[self.window].visits

    @property
    def planned_minutes(self) -> float:
        """Planned dosage: visits x min_visit_min."""
        return self.planned_visits * self.plan.min_visit_min


def zone(name: str, loc: Loc = ("timezone",)) -> ZoneInfo:
    """The IANA time zone `name`; PlanError naming `loc` if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PlanError(loc, f"unknown time zone {name!r} (an IANA name such as 'Europe/London')") from None


def occurrences(plan: Plan, tz: ZoneInfo, lo: float, hi: float) -> list[Occurrence]:
    """The occurrences of the plan's windows that START in [lo, hi), ordered by start.

    Each occurrence is counted whole in the range it starts in, so consecutive ranges (weeks)
    never share one. Local times go through `tz`: a time the clocks skip (01:30 on the spring
    change) means the same instant as an hour later in summer time, and a time that happens
    twice (01:30 on the autumn change) means the first, summer-time, one. A window wholly inside
    the skipped hour (01:15-02:00 that night) has no occurrence.
    """
    first = datetime.fromtimestamp(lo, tz).date()
    last = datetime.fromtimestamp(hi, tz).date()
    out: list[Occurrence] = []
    day = first
    while day <= last:
        for j, w in enumerate(plan.windows):
            if day.weekday() not in w.days:
                continue
            start = _instant(day, w.start, tz)
            end = _instant(day + timedelta(days=1) if w.crosses_midnight else day, w.end, tz)
            if lo <= start < hi and end > start:  # a window wholly in the hour the clocks skip does not occur
                out.append(Occurrence(plan, j, start, end))
        day += timedelta(days=1)
    out.sort(key=lambda o: (o.start, o.window))
    return out


def _instant(day: date, clock: time, tz: ZoneInfo) -> float:
    return datetime.combine(day, clock, tzinfo=tz).timestamp()


def plan_zone(plan: Plan, default: str) -> ZoneInfo:
    """The zone a plan's windows are read in: its own, else `default` (the timezone setting)."""
    return zone(plan.timezone or default)


def all_occurrences(plans: Sequence[Plan], default_tz: str, lo: float, hi: float) -> list[Occurrence]:
    """Occurrences of every plan starting in [lo, hi), ordered by start, then plan."""
    out = [o for p in plans for o in occurrences(p, plan_zone(p, default_tz), lo, hi)]
    out.sort(key=lambda o: (o.start, o.plan.plan_id, o.window))
    return out
