"""Patrol plans: the planned dosage per hot spot and local-time window, and when windows occur.

A plan document (YAML or JSON file, or the body of POST /v1/plans) is checked here into typed,
frozen values; every error names the field, the plan and, for windows, the window. Windows are
local wall-clock times in the plan's time zone, so they move with daylight saving: a 20:00-04:00
window lasts 7 h on the night the clocks go forward and 9 h on the night they go back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Day names of `days`, Monday first (datetime.weekday() order).
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_PLAN_KEYS = frozenset(
    {"plan_id", "fence_id", "team", "target_pct", "min_visit_min", "target_visit_min", "max_gap_min",
     "windows", "timezone"}
)  # fmt: skip
_WINDOW_KEYS = frozenset({"days", "start", "end", "visits"})
#: Longest id accepted (plan and fence ids are keys in the store and in URLs).
MAX_ID_LEN = 128
#: Longest visit length or gap a plan may name (a day), and most visits per window.
MAX_MINUTES = 24 * 60.0
MAX_VISITS = 1000

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


def parse_plans(doc: Any) -> list[Plan]:
    """The plans of a document `{"timezone"?: str, "plans": [plan, ...]}`; plan ids must be unique."""
    if not isinstance(doc, Mapping):
        raise PlanError((), "a plan document must be an object with a 'plans' list")
    extra = set(doc) - {"timezone", "plans"}
    if extra:
        raise PlanError((sorted(extra)[0],), "unknown field (a document has 'timezone' and 'plans')")
    tz = doc.get("timezone")
    if tz is not None:
        _text(tz, ("timezone",), "the document")
        zone(tz)
    items = doc.get("plans")
    if not isinstance(items, list) or not items:
        raise PlanError(("plans",), "must be a non-empty list of plans")
    plans: list[Plan] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and tz is not None and item.get("timezone") is None:
            item = {**item, "timezone": tz}
        plan = parse_plan(item, ("plans", i))
        if plan.plan_id in seen:
            raise PlanError(("plans", i, "plan_id"), f"plan {plan.plan_id!r} appears twice in the document")
        seen.add(plan.plan_id)
        plans.append(plan)
    return plans


def parse_plan(obj: Any, loc: Loc = ()) -> Plan:
    """One plan object, checked; errors name the field at `loc` and the plan."""
    if not isinstance(obj, Mapping):
        raise PlanError(loc, "a plan must be an object")
    plan_id = _text(obj.get("plan_id"), (*loc, "plan_id"), "a plan")
    who = f"plan {plan_id!r}"
    extra = set(obj) - _PLAN_KEYS
    if extra:
        raise PlanError((*loc, sorted(extra)[0]), f"{who}: unknown field")
    fence_id = _text(obj.get("fence_id"), (*loc, "fence_id"), who)
    team = obj.get("team")
    if team is not None:
        team = _text(team, (*loc, "team"), who)
    tz = obj.get("timezone")
    if tz is not None:
        try:
            zone(_text(tz, (*loc, "timezone"), who), (*loc, "timezone"))
        except PlanError as exc:
            raise PlanError(exc.loc, f"{who}: {exc.message}") from None
    target_pct = _number(obj.get("target_pct", 90.0), (*loc, "target_pct"), who, lo=0.0, hi=100.0, lo_open=True)
    min_visit = _number(obj.get("min_visit_min"), (*loc, "min_visit_min"), who, lo=0.0, hi=MAX_MINUTES, lo_open=True)
    target_visit = _number(
        obj.get("target_visit_min", min_visit), (*loc, "target_visit_min"), who, lo=min_visit, hi=MAX_MINUTES
    )
    max_gap = obj.get("max_gap_min")
    if max_gap is not None:
        max_gap = _number(max_gap, (*loc, "max_gap_min"), who, lo=0.0, hi=MAX_MINUTES, lo_open=True)
    windows = obj.get("windows")
    if not isinstance(windows, list) or not windows:
        raise PlanError((*loc, "windows"), f"{who}: must be a non-empty list of windows")
    return Plan(
        plan_id=plan_id, fence_id=fence_id, team=team, target_pct=target_pct, min_visit_min=min_visit,
        target_visit_min=target_visit, max_gap_min=max_gap,
        windows=tuple(_window(w, (*loc, "windows", j), f"{who} window {j}") for j, w in enumerate(windows)),
        timezone=tz,
    )  # fmt: skip


def _window(obj: Any, loc: Loc, who: str) -> Window:
    if not isinstance(obj, Mapping):
        raise PlanError(loc, f"{who}: a window must be an object with days, start, end and visits")
    extra = set(obj) - _WINDOW_KEYS
    if extra:
        raise PlanError((*loc, sorted(extra)[0]), f"{who}: unknown field")
    days = obj.get("days")
    if isinstance(days, str):
        days = [days]
    if not isinstance(days, list) or not days:
        raise PlanError((*loc, "days"), f"{who}: must be a non-empty list of {', '.join(DAY_NAMES)}")
    numbers: set[int] = set()
    for day in days:
        name = day.strip().lower()[:3] if isinstance(day, str) else None
        if name not in DAY_NAMES:
            raise PlanError((*loc, "days"), f"{who}: {day!r} is not a day ({', '.join(DAY_NAMES)})")
        numbers.add(DAY_NAMES.index(name))
    start, end = (_clock(obj.get(k), (*loc, k), who) for k in ("start", "end"))
    if start == end:
        raise PlanError(
            (*loc, "end"),
            f"{who}: end {end:%H:%M} equals start; a window needs a length (end before start crosses midnight)",
        )
    visits = obj.get("visits")
    if isinstance(visits, bool) or not isinstance(visits, int) or not 1 <= visits <= MAX_VISITS:
        raise PlanError((*loc, "visits"), f"{who}: must be a whole number of visits, 1 to {MAX_VISITS}, got {visits!r}")
    return Window(days=tuple(sorted(numbers)), start=start, end=end, visits=visits)


def _text(value: Any, loc: Loc, who: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LEN or "\x00" in value:
        raise PlanError(loc, f"{who}: must be a non-empty string of at most {MAX_ID_LEN} characters, got {value!r}")
    return value


def _number(value: Any, loc: Loc, who: str, *, lo: float, hi: float = math.inf, lo_open: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > hi or value < lo or (lo_open and value == lo):
        bound = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi < math.inf else "")
        raise PlanError(loc, f"{who}: must be a number {bound}, got {value!r}")
    return float(value)


def _clock(value: Any, loc: Loc, who: str) -> time:
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        raise PlanError(loc, f"{who}: must be a local time 'HH:MM' (00:00-23:59), got {value!r}")
    return time(int(match[1]), int(match[2]))


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
