"""Officer time per shift: minutes inside hot spots, outside them, and lost (no signal).

The night-time-economy measure. A *shift* is a device's continuous activity: it starts at the
device's first ping or at the end of a signal-loss gap longer than `shift_break_s`, and ends
at its last ping or at the start of such a gap. A gap that long is a *break* (radio off
between shifts), not lost time; shorter gaps are *losses* inside the shift.

A shift's officer is the one on its first event that names one (a ping's own officer wins),
else the one assigned the device then (geofence/assignments.py), else the device's officer as
last recorded. A handover ends a shift too: a radio handed from A to B at 14:00 without a gap
gives A a shift up to 14:00 and B one from 14:00 (the same officer on both sides: one shift).

Within a shift, per docs/semantics.md "Dwell totals": lost = its losses, inside = the union
of the device's visits (overlapping fences once, open visits up to the last ping), outside =
the shift's length - lost - inside. Visits never span a gap (signal loss ends them), so each
visit lies in one shift. Every figure is clipped to the queried range; a shift keeps its
whole start and end so a shift crossing the range's edge can be recognised. Summed over a
device's shifts, inside and outside equal the engine's `device_totals`, and lost plus breaks
equals its lost_s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Literal

import numpy as np
import sqlalchemy as sa

from geofence.assignments import Assignment, attribute
from geofence.events import EventType
from geofence.intervals import measure, union
from services.store import Store, devices_table, events_table, lost_gaps, opt_float, visits
from services.store.assignments import assignment_table
from services.store.tables import assignments_table

GapKind = Literal["loss", "break", "open"]
#: Events that name who carried the device (an EXIT repeats its ENTER's officer).
_WHO_EVENTS = [EventType.ENTER.value, EventType.SIGNAL_LOST.value, EventType.SIGNAL_RESTORED.value]


@dataclass(frozen=True, slots=True)
class Gap:
    """A signal-loss gap: a loss within a shift, a break between shifts, or open (still lost)."""

    start: float
    end: float | None
    kind: GapKind


@dataclass(frozen=True, slots=True)
class Shift:
    """One shift; its figures (seconds) are clipped to the queried range, start and end are not."""

    start: float
    end: float
    inside_s: float
    outside_s: float
    lost_s: float
    losses: int  # signal losses of the shift starting in the range
    officer_id: str | None = None
    callsign: str | None = None
    team: str | None = None  # of the device's assignment, when it names the shift's officer

    @property
    def active_s(self) -> float:
        return self.inside_s + self.outside_s


@dataclass(frozen=True, slots=True)
class OfficerTime:
    """A device over a range: its shifts and its gaps in the range; officer as last recorded."""

    device_id: str
    officer_id: str | None
    callsign: str | None
    shifts: tuple[Shift, ...]
    gaps: tuple[Gap, ...]  # every gap overlapping the range, in time order
    break_s: float  # time of the range inside breaks

    def total(self, name: Literal["inside_s", "outside_s", "lost_s", "active_s"]) -> float:
        return sum(float(getattr(s, name)) for s in self.shifts)


def _overlap(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def shift_spans(first_ts: float, last_ts: float, breaks: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The shifts of a device active from first_ts to last_ts, cut out by the breaks (start, end)."""
    spans: list[tuple[float, float]] = []
    start = first_ts
    for b_start, b_end in sorted(breaks):
        if b_start >= start:
            spans.append((start, b_start))
        start = max(start, b_end)
    if last_ts >= start:
        spans.append((start, last_ts))
    return spans


def device_shifts(
    lo: float,
    hi: float,
    first_ts: float,
    last_ts: float,
    gaps: list[Gap],
    visits: list[tuple[float, float]],
    edges: tuple[float | None, float | None] = (None, None),
    cuts: Sequence[float] = (),
) -> list[Shift]:
    """The shifts overlapping [lo, hi) of one device, and their figures within it.

    gaps: the device's gaps overlapping the range, in time order; visits: (enter, end)
    overlapping it; edges: the end of its last break before lo and the start of its first
    break after hi, if any; cuts: its handovers, which end a shift as well. Losses lie within
    shifts and visits between gaps, so each one is measured against the shift windows as a
    whole, in numpy.
    """
    breaks = [(g.start, g.end) for g in gaps if g.kind == "break" and g.end is not None]
    if edges[0] is not None:
        breaks.append((-math.inf, edges[0]))
    if edges[1] is not None:
        breaks.append((edges[1], math.inf))
    pieces = [p for s, e in shift_spans(first_ts, last_ts, breaks) for p in _cut(s, e, cuts)]
    spans = [(s, e, c) for s, e, c in pieces if s < hi and (e > lo or s >= lo)]
    if not spans:
        return []
    start, end, at_cut = np.array(spans).T
    a, b = np.maximum(start, lo), np.minimum(end, hi)
    v = np.array(visits, dtype=float).reshape(-1, 2)
    inside = measure(*union(v[:, 0], v[:, 1]), a, b)
    loss = np.array([(g.start, g.end) for g in gaps if g.kind == "loss"], dtype=float).reshape(-1, 2)
    lost = measure(loss[:, 0], loss[:, 1], a, b)
    # A loss starting at a handover is the next shift's; one starting at a shift's last ping, its own.
    through = np.where(at_cut > 0, np.searchsorted(loss[:, 0], end, "left"), np.searchsorted(loss[:, 0], end, "right"))
    counted_to = np.minimum(through, np.searchsorted(loss[:, 0], hi, "left"))
    losses = np.maximum(counted_to - np.searchsorted(loss[:, 0], a, "left"), 0)
    outside = (b - a) - lost - inside
    return [
        Shift(float(s), float(e), float(i), float(o), float(x), int(n))
        for s, e, i, o, x, n in zip(start, end, inside, outside, lost, losses, strict=True)
    ]


def _cut(start: float, end: float, cuts: Sequence[float]) -> list[tuple[float, float, float]]:
    """[start, end] cut at the instants strictly inside it: (start, end, 1.0 if it ends at a cut)."""
    inner = [c for c in cuts if start < c < end]
    edges = [start, *inner, end]
    return [(a, b, float(i < len(inner))) for i, (a, b) in enumerate(pairwise(edges))]


async def officer_time(
    store: Store,
    lo: float,
    hi: float,
    shift_break_s: float,
    *,
    device_id: str | None = None,
    officer_id: str | None = None,
) -> list[OfficerTime]:
    """Per device active in [lo, hi) (optionally one device), its shifts; by device id.

    With `officer_id`, only the shifts that officer carried the device, and the losses in them.
    """
    d, g, e = devices_table.c, lost_gaps.c, events_table.c
    dev_q = sa.select(d.device_id, d.officer_id, d.callsign, d.first_ts, d.last_ts).where(
        (d.first_ts < hi) & (d.last_ts >= lo)
    )
    named = e.type.in_(_WHO_EVENTS) & e.officer_id.is_not(None) & (e.ts >= lo) & (e.ts < hi)
    if device_id is not None:
        dev_q = dev_q.where(d.device_id == device_id)
    if officer_id is not None:
        a = assignments_table.c
        carried = sa.select(e.device_id).where(named & (e.officer_id == officer_id))
        assigned = sa.select(a.device_id).where(
            (a.officer_id == officer_id) & (a.valid_from < hi) & (a.valid_to.is_(None) | (a.valid_to > lo))
        )
        dev_q = dev_q.where((d.officer_id == officer_id) | d.device_id.in_(carried) | d.device_id.in_(assigned))
    ids = dev_q.with_only_columns(d.device_id).scalar_subquery()
    who_q = (
        sa.select(e.device_id, e.ts, e.officer_id, e.callsign)
        .where(e.device_id.in_(ids) & named)
        .order_by(e.device_id, e.ts)
    )
    is_break = (g.end_ts - g.start_ts) > shift_break_s
    gap_q = (
        sa.select(g.device_id, g.start_ts, g.end_ts)
        .where(g.device_id.in_(ids) & (g.start_ts < hi) & ((g.end_ts > lo) | g.end_ts.is_(None)))
        .order_by(g.device_id, g.start_ts)
    )
    before_q = (
        sa.select(g.device_id, sa.func.max(g.end_ts))
        .where(g.device_id.in_(ids) & (g.end_ts <= lo) & is_break)
        .group_by(g.device_id)
    )
    after_q = (
        sa.select(g.device_id, sa.func.min(g.start_ts))
        .where(g.device_id.in_(ids) & (g.start_ts >= hi) & is_break)
        .group_by(g.device_id)
    )
    visit_q = store.visits_in(lo, hi, None, device_id).where(visits.c.device_id.in_(ids))
    async with store.read() as conn:
        devices = (await conn.execute(dev_q.order_by(d.device_id))).all()
        gap_rows = (await conn.execute(gap_q)).all()
        before = {dev: end for dev, end in (await conn.execute(before_q)).all()}
        after = {dev: start for dev, start in (await conn.execute(after_q)).all()}
        visit_rows = (await conn.execute(visit_q)).all()
        who_rows = (await conn.execute(who_q)).all()
        table = await assignment_table(store, conn, devices=[row.device_id for row in devices])
    gaps: dict[str, list[Gap]] = {}
    for dev, start, end in gap_rows:
        kind: GapKind = "open" if end is None else "break" if end - start > shift_break_s else "loss"
        gaps.setdefault(dev, []).append(Gap(start, end, kind))
    spans: dict[str, list[tuple[float, float]]] = {}
    for row in visit_rows:
        spans.setdefault(row.device_id, []).append((row.enter_ts, row.end_ts))
    who: dict[str, list[tuple[float, str, str | None]]] = {}
    for row in who_rows:
        who.setdefault(row.device_id, []).append((row.ts, row.officer_id, row.callsign))
    pieces = {
        row.device_id: device_shifts(
            lo, hi, row.first_ts, row.last_ts, gaps.get(row.device_id, []), spans.get(row.device_id, []),
            (opt_float(before.get(row.device_id)), opt_float(after.get(row.device_id))),
            table.handovers(row.device_id),
        )
        for row in devices
    }  # fmt: skip
    # One lookup for every shift and device: the assignment at each shift's start and last ping.
    keys = [(r.device_id, r.last_ts) for r in devices] + [(dev, s.start) for dev, ss in pieces.items() for s in ss]
    found = table.resolve([k[0] for k in keys], [k[1] for k in keys]).tolist()
    held = [table.rows[k] if k >= 0 else None for k in found]
    at_last, at_start = held[: len(devices)], iter(held[len(devices) :])
    out: list[OfficerTime] = []
    for i, row in enumerate(devices):
        dev = row.device_id
        dev_gaps = gaps.get(dev, [])
        starts = [next(at_start) for _ in pieces[dev]]
        shifts = carried_by(pieces[dev], who.get(dev, []), (row.officer_id, row.callsign), starts)
        last = attribute(row.officer_id, row.callsign, at_last[i])
        break_s = sum(_overlap(x.start, x.end, lo, hi) for x in dev_gaps if x.kind == "break" and x.end is not None)
        if officer_id is not None:  # that officer's shifts, their losses; breaks belong to no one
            shifts = [s for s in shifts if s.officer_id == officer_id]
            dev_gaps = [x for x in dev_gaps if x.kind != "break" and any(s.start <= x.start <= s.end for s in shifts)]
            break_s = 0.0
            if not shifts:
                continue
        out.append(OfficerTime(dev, last.officer_id, last.callsign, tuple(shifts), tuple(dev_gaps), break_s))
    return out


def carried_by(
    shifts: list[Shift],
    named: list[tuple[float, str, str | None]],
    default: tuple[str | None, str | None],
    held: Sequence[Assignment | None] = (),
) -> list[Shift]:
    """Each shift with the officer (and callsign) of its first event naming one, else its
    assignment (`held[i]`, valid at shift i's start), else `default`; then a handover's two
    sides carried by the same officer are one shift again.

    named: (ts, officer_id, callsign) of the device's events, in ts order.
    """
    ts = np.array([n[0] for n in named], dtype=float)
    out: list[Shift] = []
    for i, s in enumerate(shifts):
        k = int(np.searchsorted(ts, s.start, side="left"))
        assigned = held[i] if i < len(held) else None
        if k < len(named) and ts[k] <= s.end:
            who = attribute(named[k][1], named[k][2], assigned)
        elif assigned is not None:
            who = attribute(None, None, assigned)
        else:
            who = attribute(*default, None)
        s = replace(s, officer_id=who.officer_id, callsign=who.callsign, team=who.team)
        p = out[-1] if out else None
        if (
            p is not None
            and p.end == s.start
            and (p.officer_id, p.callsign, p.team) == (s.officer_id, s.callsign, s.team)
        ):
            s = replace(s, start=p.start, inside_s=p.inside_s + s.inside_s, outside_s=p.outside_s + s.outside_s,
                        lost_s=p.lost_s + s.lost_s, losses=p.losses + s.losses)  # fmt: skip
            out.pop()
        out.append(s)
    return out


def per_officer(found: Sequence[OfficerTime], lo: float, hi: float) -> list[OfficerTime]:
    """Each device's answer split by who carried it: one per (device, officer, callsign), in order
    of their first shift, so a radio handed from A to B counts A's time for A and B's for B.

    A gap goes with the first shift it starts in or at the end of (a loss inside its shift, a
    break or an open gap with the shift it ends); the time of the range in breaks goes with it.
    """
    out: list[OfficerTime] = []
    for o in found:
        keys = list(dict.fromkeys((s.officer_id, s.callsign) for s in o.shifts))
        if len(keys) <= 1:
            out.append(o)
            continue
        owner = [
            next(((s.officer_id, s.callsign) for s in o.shifts if s.start <= g.start <= s.end), None) for g in o.gaps
        ]
        for officer, callsign in keys:
            gaps = tuple(g for g, k in zip(o.gaps, owner, strict=True) if k == (officer, callsign))
            shifts = tuple(s for s in o.shifts if (s.officer_id, s.callsign) == (officer, callsign))
            break_s = sum(_overlap(g.start, g.end, lo, hi) for g in gaps if g.kind == "break" and g.end is not None)
            out.append(OfficerTime(o.device_id, officer, callsign, shifts, gaps, break_s))
    return out
