"""An officer's own view (GET /v1/me): this shift's hot spots, their dosage and the radio's state.

Computed from the same measures as the control room, so the figures agree with them: the due
list is geofence/compliance.py's `due_rows` over the team's plans (what /v1/compliance/due
gives for that team), windows and visits are its credits (merged visits clipped to window
occurrences, services/measures/compliance.py), inside / outside / lost minutes are the officer's
latest shift from services/measures/officer_time.py.

Who the officer is now (its radios and team) is `officer_scope`, from the pings and the
assignments: an officer with no assignment has no known team, and sees every team's plans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from geofence import compliance as core
from geofence.compliance import DueRow
from geofence.plans import Occurrence, Plan, all_occurrences
from services.measures.compliance import MAX_WINDOW_S, merged_visits
from services.measures.local_weeks import week_of
from services.measures.officer_time import Shift, officer_time
from services.settings import Settings
from services.store import Store, StoredDevice, fences_table
from services.store.assignments import list_assignments
from services.store.feedback import Feedback, list_feedback
from services.store.plans import list_plans

#: How far back the officer's current shift is looked for: longer than any shift with overtime.
SHIFT_LOOKBACK_S = 16 * 3600.0
#: Feedback shown on the officer's page: the latest reports and their replies.
FEEDBACK_SHOWN = 20
LENGTHS = ("short", "guideline", "long")


@dataclass(frozen=True, slots=True)
class Scope:
    """Who the officer is now: the devices carried and the team (None: not known)."""

    officer_id: str
    team: str | None
    devices: tuple[StoredDevice, ...]  # as last recorded


async def officer_scope(store: Store, officer_id: str, now: float) -> Scope:
    """Who the officer is at `now`: the radios whose last ping named the officer, and those assigned
    to the officer then whose last ping named no one else (a ping's own officer wins, as in
    geofence/assignments.py `attribute`); the team of the first assignment (by device), if any."""
    assigned = await list_assignments(store, officer_id=officer_id, at=now)
    named = {d.device_id: d for d in await store.devices(officer_id=officer_id)}
    for a in assigned:
        if a.device_id not in named:
            found = await store.device_now(a.device_id)
            if found is not None and found.now.officer_id is None:
                named[a.device_id] = found
    team = next((a.team for a in assigned if a.team is not None), None)
    return Scope(officer_id, team, tuple(named[d] for d in sorted(named)))


@dataclass(frozen=True, slots=True)
class Radio:
    """A device the officer carries, as last seen."""

    device_id: str
    last_ts: float
    age_s: float  # since the last fix
    accuracy_m: float | None
    lost: bool  # the stream declared the signal lost
    poor_fix: bool  # the last fix was less accurate than max_accuracy_m (it changes no state)


@dataclass(frozen=True, slots=True)
class InsideNow:
    """A hot spot the officer is in now, since when, and the plan's visit lengths (None: no plan)."""

    fence_id: str
    fence_name: str | None
    since: float
    min_visit_min: float | None
    target_visit_min: float | None


@dataclass(frozen=True, slots=True)
class VisitFigure:
    """One of the officer's visits (merged as compliance merges them) during a window this period."""

    plan_id: str
    fence_id: str
    fence_name: str | None
    start: float
    end: float  # the exit, or the last ping of a visit still open
    minutes: float  # the whole visit
    window_minutes: float  # its parts inside window occurrences
    min_visit_min: float
    target_visit_min: float
    length: str  # short | guideline | long, by the whole visit against the plan


@dataclass(frozen=True, slots=True)
class WindowFigure:
    """A window occurrence of the period: planned vs delivered by everyone, and the officer's share."""

    plan_id: str
    fence_id: str
    fence_name: str | None
    window_start: float
    window_end: float
    planned_visits: int
    planned_minutes: float
    delivered_visits: int
    delivered_minutes: float
    my_visits: int
    my_minutes: float


@dataclass(frozen=True, slots=True)
class MeFigures:
    officer_id: str
    team: str | None
    as_of: float
    shift: Shift | None  # the officer's latest shift (figures up to as_of)
    period_start: float  # windows and visits are those from here to as_of
    visits_today: int
    qualifying_visits_today: int
    due: list[DueRow]
    windows: list[WindowFigure]
    visits: list[VisitFigure]
    inside_now: list[InsideNow]
    radios: list[Radio]
    feedback: list[Feedback]


async def latest_shift(store: Store, settings: Settings, officer_id: str, now: float) -> Shift | None:
    """The officer's shift that started last (on any device), figures clipped to the lookback."""
    devices = await officer_time(store, now - SHIFT_LOOKBACK_S, now, settings.shift_break_s, officer_id=officer_id)
    shifts = [s for d in devices for s in d.shifts]
    return max(shifts, key=lambda s: (s.start, s.end), default=None)


async def me(store: Store, settings: Settings, officer_id: str, now: float) -> MeFigures:
    """The officer's page at `now`: see the module docstring for where each figure comes from."""
    scope = await officer_scope(store, officer_id, now)
    shift = await latest_shift(store, settings, officer_id, now)
    today = next(d for d in week_of(now, settings.timezone).days if d.start <= now < d.end)
    period_start = min(today.start, now if shift is None else shift.start)
    plans = await list_plans(store, team=scope.team)
    occs = [
        o for o in all_occurrences(plans, settings.timezone, period_start - MAX_WINDOW_S, now + 1.0)
        if o.end > period_start and o.start <= now
    ]  # fmt: skip
    merged = await merged_visits(store, settings, occs)
    async with store.read() as conn:
        names = dict((await conn.execute(sa.select(fences_table.c.fence_id, fences_table.c.name))).all())
    credits = core.credit(occs, merged, now)
    mine = credits.who == officer_id
    q = credits.qualifying
    n = len(occs)

    def per_occ(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(credits.occ[mask], weights=None if weights is None else weights[mask], minlength=n)

    seconds = credits.seconds
    windows = [
        WindowFigure(
            plan_id=o.plan.plan_id, fence_id=o.plan.fence_id, fence_name=names.get(o.plan.fence_id),
            window_start=o.start, window_end=o.end, planned_visits=o.planned_visits,
            planned_minutes=o.planned_minutes, delivered_visits=int(dv), delivered_minutes=float(dm) / 60.0,
            my_visits=int(mv), my_minutes=float(mm) / 60.0,
        )
        for o, dv, dm, mv, mm in zip(
            occs, per_occ(q), per_occ(q, seconds), per_occ(q & mine), per_occ(q & mine, seconds), strict=True
        )
    ]  # fmt: skip
    visits = _visits(occs, merged, credits, mine, names)
    return MeFigures(
        officer_id=officer_id, team=scope.team, as_of=now, shift=shift, period_start=period_start,
        visits_today=sum(v.start >= today.start for v in visits),
        qualifying_visits_today=sum(v.start >= today.start and v.length != "short" for v in visits),
        due=core.due_rows(occs, merged, now, names), windows=windows, visits=visits,
        inside_now=_inside_now(scope, names, plans), radios=_radios(settings, scope, now),
        feedback=(await list_feedback(store, officer_id=officer_id, newest_first=True, limit=FEEDBACK_SHOWN)),
    )  # fmt: skip


def _visits(
    occs: list[Occurrence], merged: core.Visits, credits: core.Credits, mine: np.ndarray, names: dict[str, str | None]
) -> list[VisitFigure]:
    """The officer's merged visits that count in a window occurrence, by start."""
    out = []
    for v in np.unique(credits.visit[mine]).tolist():
        of_visit = mine & (credits.visit == v)
        plan = occs[int(credits.occ[of_visit][0])].plan
        minutes = float(merged.end[v] - merged.start[v]) / 60.0
        length = 0 if minutes < plan.min_visit_min else 1 if minutes <= plan.target_visit_min else 2
        out.append(
            VisitFigure(
                plan_id=plan.plan_id, fence_id=plan.fence_id, fence_name=names.get(plan.fence_id),
                start=float(merged.start[v]), end=float(merged.end[v]), minutes=minutes,
                window_minutes=float(credits.seconds[of_visit].sum()) / 60.0,
                min_visit_min=plan.min_visit_min, target_visit_min=plan.target_visit_min, length=LENGTHS[length],
            )
        )  # fmt: skip
    out.sort(key=lambda v: (v.start, v.fence_id))
    return out


def _inside_now(scope: Scope, names: dict[str, str | None], plans: list[Plan]) -> list[InsideNow]:
    """The hot spots the officer's devices are in now (a visit open), with the plan's visit lengths."""
    plan_of: dict[str, Plan] = {}
    for plan in sorted(plans, key=lambda p: p.plan_id, reverse=True):  # the first plan of a fence wins
        plan_of[plan.fence_id] = plan
    inside: dict[str, float] = {}
    for device in scope.devices:
        if not device.now.lost:
            for fence_id, since in device.now.inside.items():
                inside[fence_id] = min(since, inside.get(fence_id, since))
    return [
        InsideNow(f, names.get(f), since, *((plan_of[f].min_visit_min, plan_of[f].target_visit_min)
                                          if f in plan_of else (None, None)))
        for f, since in sorted(inside.items(), key=lambda kv: kv[1])
    ]  # fmt: skip


def _radios(settings: Settings, scope: Scope, now: float) -> list[Radio]:
    return [
        Radio(
            d.device_id,
            d.now.last_ts,
            max(0.0, now - d.now.last_ts),
            d.now.accuracy_m,
            d.now.lost,
            d.now.accuracy_m is not None and d.now.accuracy_m > settings.max_accuracy_m,
        )
        for d in scope.devices
    ]
