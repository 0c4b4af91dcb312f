"""Signal-loss report: per device its gaps, and losses counted per shift and per local ISO week.

Built on officer_time's shifts, so a gap longer than `shift_break_s` is a *break* between
shifts (listed, never counted as lost), a shorter one a *loss*, and a gap still open is listed
with no end. A loss counts in the shift, week and range where it starts; its seconds are
clipped to the range and split at week boundaries. A device is flagged for *repeated loss*
when one of its shifts has at least `min_losses` losses starting in the range.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from geofence.events import EventType
from services.measures.local_weeks import week_of
from services.measures.officer_time import GapKind, OfficerTime, officer_time, per_officer
from services.store import Store, events_table


@dataclass(frozen=True, slots=True)
class LossGap:
    """A gap with the device's last known position (that of its SIGNAL_LOST event)."""

    start: float
    end: float | None  # None while still lost
    length_s: float | None
    kind: GapKind
    lat: float | None
    lon: float | None


@dataclass(frozen=True, slots=True)
class PeriodLoss:
    """Losses of one shift, or of one local ISO week (then `week` is its label, e.g. "2026-W47")."""

    start: float
    end: float
    losses: int
    lost_s: float
    week: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceLoss:
    device_id: str
    officer_id: str | None
    callsign: str | None
    losses: int
    lost_s: float
    longest_s: float  # longest loss starting in the range, whole
    repeated: bool
    gaps: tuple[LossGap, ...]
    shifts: tuple[PeriodLoss, ...]
    weeks: tuple[PeriodLoss, ...]


def _weeks(officer: OfficerTime, lo: float, hi: float, tz: str) -> tuple[PeriodLoss, ...]:
    """Losses of the officer per local ISO week overlapping [lo, hi), in week order."""
    acc: dict[str, list[float]] = {}
    bounds: dict[str, tuple[float, float]] = {}
    for g in officer.gaps:
        if g.kind != "loss" or g.end is None:
            continue
        a, b = max(g.start, lo), min(g.end, hi)
        week = week_of(g.start if g.start >= lo else lo, tz)
        counted = lo <= g.start < hi
        while a < b or counted:
            bounds[week.label] = (week.start, week.end)
            entry = acc.setdefault(week.label, [0, 0.0])
            entry[0] += int(counted)
            entry[1] += max(0.0, min(b, week.end) - a)
            counted = False
            a = week.end
            week = week_of(week.end, tz)
    return tuple(PeriodLoss(*bounds[w], int(n), s, week=w) for w, (n, s) in sorted(acc.items()))


async def _positions(store: Store, officers: list[OfficerTime]) -> dict[tuple[str, float], tuple[float, float]]:
    """(device, gap start) -> (lat, lon) of the SIGNAL_LOST events that opened the officers' gaps."""
    starts = [g.start for o in officers for g in o.gaps]
    if not starts:
        return {}
    e = events_table.c
    query = sa.select(e.device_id, e.ts, e.body).where(
        (e.type == EventType.SIGNAL_LOST.value)
        & e.device_id.in_([o.device_id for o in officers if o.gaps])
        & (e.ts >= min(starts))
        & (e.ts <= max(starts))
    )
    async with store.read() as conn:
        rows = (await conn.execute(query)).all()
    return {(r.device_id, r.ts): (float(r.body["lat"]), float(r.body["lon"])) for r in rows}


async def signal_loss(
    store: Store,
    lo: float,
    hi: float,
    *,
    shift_break_s: float,
    min_losses: int,
    tz: str,
    device_id: str | None = None,
) -> list[DeviceLoss]:
    """Every device active in [lo, hi) (or one), with its gaps, losses per shift and week, and flag;
    one row per officer who carried it (officer_time.per_officer)."""
    officers = per_officer(await officer_time(store, lo, hi, shift_break_s, device_id=device_id), lo, hi)
    return await losses_of(store, officers, lo, hi, min_losses=min_losses, tz=tz)


async def losses_of(
    store: Store, officers: list[OfficerTime], lo: float, hi: float, *, min_losses: int, tz: str
) -> list[DeviceLoss]:
    """The signal-loss report of officer_time's answer for [lo, hi)."""
    where = await _positions(store, officers)
    out: list[DeviceLoss] = []
    for o in officers:
        gaps = tuple(
            LossGap(
                g.start,
                g.end,
                None if g.end is None else g.end - g.start,
                g.kind,
                *where.get((o.device_id, g.start), (None, None)),
            )
            for g in o.gaps
        )
        counted = [g.length_s for g in gaps if g.kind == "loss" and g.length_s is not None and lo <= g.start < hi]
        shifts = tuple(PeriodLoss(s.start, s.end, s.losses, s.lost_s) for s in o.shifts)
        out.append(
            DeviceLoss(
                device_id=o.device_id,
                officer_id=o.officer_id,
                callsign=o.callsign,
                losses=len(counted),
                lost_s=o.total("lost_s"),
                longest_s=max(counted, default=0.0),
                repeated=any(s.losses >= min_losses for s in o.shifts),
                gaps=gaps,
                shifts=shifts,
                weeks=_weeks(o, lo, hi, tz),
            )
        )
    return out
