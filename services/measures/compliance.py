"""Plan compliance and the live due list, from the plans, visits and devices in the store.

The rules are geofence/compliance.py's (docs/semantics.md, "Compliance"); this module only
reads what they need: the plans, the visits near their window occurrences (open visits end at
the device's last ping, as for dwell), who made each visit, and the fences' names.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from geofence import compliance as core
from geofence.compliance import ComplianceRow, DueRow, GroupBy, Visits
from geofence.plans import Occurrence, all_occurrences
from services.settings import Settings
from services.store import Store, devices_table, events_table, fences_table, visits
from services.store.assignments import assignment_table
from services.store.plans import list_plans

#: Longer than any window occurrence (under 24 h, plus an hour when the clocks go back).
MAX_WINDOW_S = 26 * 3600.0


async def compliance_rows(
    store: Store,
    settings: Settings,
    start: float,
    end: float,
    *,
    group_by: GroupBy,
    fence_id: str | None = None,
    team: str | None = None,
    as_of: float | None = None,
) -> list[ComplianceRow]:
    """Planned vs delivered for the window occurrences starting in [start, end), grouped.

    Visits are counted as they stand at `as_of` (default now): a window still open has only
    what was delivered so far, and its trailing gap runs to `as_of`.
    """
    grouped = await compliance_groupings(
        store, settings, start, end, (group_by,), fence_id=fence_id, team=team, as_of=as_of
    )
    return grouped[group_by]


async def compliance_groupings(
    store: Store,
    settings: Settings,
    start: float,
    end: float,
    group_bys: Sequence[GroupBy],
    *,
    fence_id: str | None = None,
    team: str | None = None,
    as_of: float | None = None,
) -> dict[GroupBy, list[ComplianceRow]]:
    """compliance_rows grouped each way in `group_bys`, reading the plans and visits once."""
    plans = await list_plans(store, fence_id=fence_id, team=team)
    occs = all_occurrences(plans, settings.timezone, start, end)
    merged = await merged_visits(store, settings, occs)
    now = time.time() if as_of is None else as_of
    return {g: core.compliance_rows(occs, merged, now, g) for g in group_bys}


async def due_list(store: Store, settings: Settings, now: float) -> list[DueRow]:
    """Windows open at `now` whose hot spot is behind the pro-rata plan, most behind first."""
    plans = await list_plans(store)
    occs = [o for o in all_occurrences(plans, settings.timezone, now - MAX_WINDOW_S, now + 1.0) if o.end > now]
    merged = await merged_visits(store, settings, occs)
    async with store.read() as conn:
        names = dict((await conn.execute(sa.select(fences_table.c.fence_id, fences_table.c.name))).all())
    return core.due_rows(occs, merged, now, names)


async def merged_visits(store: Store, settings: Settings, occs: Sequence[Occurrence]) -> Visits:
    """The merged visits of each officer (or device) to the occurrences' fences, around them."""
    if not occs:
        return Visits.of([])
    margin = settings.visit_merge_s  # visits just outside can still merge with ones inside
    lo, hi = min(o.start for o in occs) - margin, max(o.end for o in occs) + margin
    fences = sorted({o.plan.fence_id for o in occs})
    # Store.visits_in: open visits end at the device's last ping (SEMANTICS.md), as for dwell.
    found = store.visits_in(lo, hi, None, None).where(visits.c.fence_id.in_(fences)).subquery()
    c, d, e = found.c, devices_table.c, events_table.c
    # Who made the visit: the officer on its ENTER event (a ping's own officer wins), else the one
    # assigned the device (cut at handovers: A's part before 14:00, B's after), else the device's
    # officer now, else the device itself.
    at_enter = (
        sa.select(e.officer_id)
        .where((e.device_id == c.device_id) & (e.ts == c.enter_ts) & (e.type == "enter") & (e.fence_id == c.fence_id))
        .limit(1)
        .scalar_subquery()
    )
    query = sa.select(c.device_id, at_enter, d.officer_id, c.fence_id, c.enter_ts, c.end_ts).select_from(
        found.outerjoin(devices_table, d.device_id == c.device_id)
    )
    async with store.read() as conn:
        found_rows = (await conn.execute(query)).all()
        table = await assignment_table(store, conn, devices=[r[0] for r in found_rows])
    dev, own, now, fence = (np.array([r[i] for r in found_rows], dtype=object) for i in range(4))
    k, start, end, who = table.officer_spans(
        dev, own.tolist(), np.array([r[4] for r in found_rows], float), np.array([r[5] for r in found_rows], float)
    )
    who = np.where(who == None, np.where(now[k] == None, dev[k], now[k]), who)  # noqa: E711 (elementwise)
    return core.merge_visits(Visits(who, fence[k], start, end), settings.visit_merge_s)
