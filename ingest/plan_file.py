"""Reading patrol plans: a plan document (YAML or JSON file, or an API body) into Plans.

Every error names the field, the plan and, for windows, the window; ids and names follow the
input rules (ingest.rules). The values and the window arithmetic are geofence.plans'.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any

import yaml

from geofence.plans import DAY_NAMES, Loc, Plan, PlanError, Window, zone
from ingest.rules import ID

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_PLAN_KEYS = frozenset(
    {"plan_id", "fence_id", "team", "target_pct", "min_visit_min", "target_visit_min", "max_gap_min",
     "windows", "timezone"}
)  # fmt: skip
_WINDOW_KEYS = frozenset({"days", "start", "end", "visits"})
#: Longest visit length or gap a plan may name (a day), and most visits per window.
MAX_MINUTES = 24 * 60.0
MAX_VISITS = 1000


class PlanFileError(ValueError):
    """A plans file that cannot be used; the message is one line."""


def load_plan_file(path: str | Path) -> list[Plan]:
    """Every plan in a YAML (.yaml/.yml) or JSON file, checked (not yet against the fences)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanFileError(f"cannot read plans file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise PlanFileError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    try:
        return parse_plans(doc)
    except PlanError as exc:
        raise PlanFileError(f"{path}: {exc}") from None


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
    """An id or name by the id rule; blank counts as missing."""
    reason = ID.reason(value.strip() if isinstance(value, str) and not value.strip() else value)
    if reason is not None:
        raise PlanError(loc, f"{who}: {reason}")
    return str(value)


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
