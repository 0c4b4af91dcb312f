"""Two-way feedback: officers flag what is wrong, supervisors reply, close, and confirm GPS reports.

A `gps_wrong` report with a stated position ("I am standing here") opens a calibration check of
the radio over the reported time (services/measures/calibration.py), as a draft: the matcher
captures the radio's fixes in that window like any check's. A supervisor who confirms it
applies the buffer those fixes recommend to the hot spot, so the guidance's case of a track
200 m off becomes: the officer reports, the supervisor confirms, the buffer is applied.
"""

from __future__ import annotations

import time

from services.access.roles import Principal
from services.errors import Conflict, Invalid, NotFound
from services.measures import calibration
from services.measures.calibration import BufferChange
from services.measures.me import officer_scope
from services.settings import Settings
from services.store import Store
from services.store.feedback import Feedback, add_feedback, get_feedback, update_feedback

#: A gps_wrong report's check covers this long either side of the reported time: the officer
#: stood there a few minutes, and the fixes around then show where the radio put them.
CHECK_HALF_WINDOW_S = 600.0
#: Calibration check notes are at most 500 characters (api/schemas/calibration.py).
NOTE_MAX = 500


async def submit(
    store: Store,
    settings: Settings,
    who: Principal,
    *,
    kind: str,
    text: str,
    fence_id: str | None,
    device_id: str | None,
    lat: float | None,
    lon: float | None,
    at: float | None,
) -> Feedback:
    """Store a report; Invalid names the field at fault. An officer may only name its own radios."""
    if (lat is None) != (lon is None):
        raise Invalid("give lat and lon together (where you are standing), or neither", "lon")
    if fence_id is not None and fence_id not in {f.id for f in (await store.load_fences())[0]}:
        raise Invalid(f"unknown hot spot {fence_id!r}", "fence_id")
    team = None
    if who.officer_id is not None:
        scope = await officer_scope(store, who.officer_id, time.time() if at is None else at)
        team, mine = scope.team, [d.device_id for d in scope.devices]
        if device_id is None and len(mine) == 1:
            device_id = mine[0]
        elif device_id is not None and device_id not in mine:
            raise Invalid("not a radio you carry", "device_id")
    check_id = None
    if kind == "gps_wrong" and lat is not None and lon is not None:
        if device_id is None:
            raise Invalid("a GPS report with a position needs the radio it is about", "device_id")
        when = time.time() if at is None else at
        made = await calibration.register_check(
            store, settings, device_id=device_id, lat=lat, lon=lon, start_ts=when - CHECK_HALF_WINDOW_S,
            end_ts=when + CHECK_HALF_WINDOW_S, note=f"reported: {text}"[:NOTE_MAX], created_by=who.key_id,
        )  # fmt: skip
        check_id = made.check.check_id
    return await add_feedback(
        store, key_id=who.key_id, officer_id=who.officer_id, team=team, kind=kind, text=text, fence_id=fence_id,
        device_id=device_id, lat=lat, lon=lon, at_ts=at, check_id=check_id,
        check_state=None if check_id is None else "draft",
    )  # fmt: skip


async def _found(store: Store, feedback_id: int) -> Feedback:
    found = await get_feedback(store, feedback_id)
    if found is None:
        raise NotFound(f"no feedback {feedback_id}")
    return found


async def reply(store: Store, who: Principal, feedback_id: int, text: str) -> Feedback:
    """Answer a report (the officer sees it on /me); a later reply replaces the earlier one."""
    await _found(store, feedback_id)
    done = await update_feedback(store, feedback_id, reply=text, replied_at=time.time(), replied_by=who.key_id)
    assert done is not None
    return done


async def close(store: Store, who: Principal, feedback_id: int) -> Feedback:
    """Close a report (closing a closed one keeps its first closing)."""
    found = await _found(store, feedback_id)
    if found.closed_at is not None:
        return found
    done = await update_feedback(store, feedback_id, closed_at=time.time(), closed_by=who.key_id)
    assert done is not None
    return done


async def confirm(
    store: Store, settings: Settings, feedback_id: int, fence_ids: list[str] | None, quantile: int
) -> tuple[Feedback, BufferChange]:
    """Apply the buffer the report's check recommends (its radio's fixes in its window) to the hot
    spots given, or the report's; Conflict when the report opened no check or it is applied."""
    found = await _found(store, feedback_id)
    if found.check_id is None or found.check_state != "draft":
        raise Conflict(f"feedback {feedback_id} has no draft GPS check to confirm")
    check = await calibration.get_check(store, found.check_id)
    if check is None:
        raise Conflict(f"the calibration check {found.check_id} of feedback {feedback_id} is gone")
    targets = fence_ids or ([found.fence_id] if found.fence_id is not None else [])
    if not targets:
        raise Invalid("the report names no hot spot: give the fences to apply the buffer to", "fence_ids")
    change = await calibration.apply_buffer(
        store, settings, fence_ids=targets, quantile=quantile, buffer_m=None, device_id=check.device_id,
        since=check.start_ts, until=check.end_ts,
    )  # fmt: skip
    done = await update_feedback(store, feedback_id, check_state="applied")
    assert done is not None
    return done, change
