"""Per-(device, fence) visit states: enter/exit with debounce, signal loss, dwell ledger.

The engine calls this only for pings that can change something; every other ping leaves
these states untouched by construction (see engine.py).
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from geofence.devices import DeviceTable
from geofence.events import Event, EventType, ExitReason

_TYPE_ORDER = {EventType.EXIT: 0, EventType.ENTER: 1}
_NO_VISITS: dict[str, float] = {}  # read only


class Fix(NamedTuple):
    """Where and when a device was, with its carried fields."""

    ts: float
    lat: float
    lon: float
    extras: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A state change shown but not yet confirmed: towards inside or outside, since fix."""

    inside: bool
    fix: Fix


class Machine:
    """Open visits and pending candidates of every device, plus the dwell ledger."""

    def __init__(self, devices: DeviceTable, debounce_s: float) -> None:
        self.devices = devices
        self.debounce_s = debounce_s
        self.inside: dict[int, dict[str, float]] = {}  # slot -> fence id -> visit start
        self.cands: dict[int, dict[str, Candidate]] = {}
        self.ledger: dict[int, dict[str, list[float]]] = {}  # slot -> fence -> [visits, closed dwell]
        self.fence_version: int | None = None  # of the index in use, stamped on enter/exit events

    def observe(self, slot: int, observed: Sequence[str], fix: Fix) -> list[Event]:
        """Apply one certain ping showing the device inside exactly the fences observed."""
        current = self.inside.get(slot, _NO_VISITS)
        if self.debounce_s <= 0.0:  # no set, no sort for one change (whole batches take sweep.py)
            changes = [(f, False, fix) for f in current if f not in observed]
            changes += [(f, True, fix) for f in observed if f not in current]
            if len(changes) == 1:
                return [self._transition(slot, changes[0][0], changes[0][1], fix)]
        else:
            changes = self._debounce(slot, current, set(observed), fix)
        if not changes:
            return []
        changes.sort(key=lambda c: (c[2].ts, c[1], c[0]))
        return [self._transition(slot, fence, inside, at) for fence, inside, at in changes]

    def _debounce(self, slot: int, current: dict[str, float], seen: set[str], fix: Fix) -> list[tuple[str, bool, Fix]]:
        cands = self.cands.setdefault(slot, {})
        confirmed: list[tuple[str, bool, Fix]] = []
        for fence in set(current) | seen | set(cands):
            shown = fence in seen
            cand = cands.get(fence)
            if cand is None:
                if shown != (fence in current):
                    cands[fence] = Candidate(shown, fix)
            elif shown != cand.inside:
                del cands[fence]  # the old state again: cancelled
            elif fix.ts - cand.fix.ts >= self.debounce_s:
                del cands[fence]
                confirmed.append((fence, shown, cand.fix))
        self._note_pending(slot)
        return confirmed

    def _note_pending(self, slot: int) -> None:
        cands = self.cands.get(slot)
        if cands:
            self.devices.pending_since[slot] = max(c.fix.ts for c in cands.values())
        else:
            self.cands.pop(slot, None)
            self.devices.pending_since[slot] = math.nan

    def _transition(self, slot: int, fence: str, inside: bool, at: Fix) -> Event:
        if not inside:
            return self._close(slot, fence, at, ExitReason.LEFT)
        visits = self.inside.get(slot)
        if visits is None:
            visits = self.inside[slot] = {}
        if not visits:
            self.devices.covered_since[slot] = at.ts
        visits[fence] = at.ts
        fences = self.ledger.get(slot)
        if fences is None:
            fences = self.ledger[slot] = {}
        entry = fences.get(fence)
        if entry is None:
            fences[fence] = [1, 0.0]
        else:
            entry[0] += 1
        return Event(
            EventType.ENTER, self.devices.ids[slot], fence, at.ts, at.lat, at.lon, None, None, None, None, at.extras,
            self.fence_version,
        )  # fmt: skip

    def _close(self, slot: int, fence: str, at: Fix, reason: ExitReason) -> Event:
        dev = self.devices
        visits = self.inside[slot]
        dwell = at.ts - visits.pop(fence)
        self.ledger[slot][fence][1] += dwell
        if not visits:
            del self.inside[slot]
            dev.covered_s[slot] += at.ts - dev.covered_since[slot]
            dev.covered_since[slot] = math.nan
        return Event(
            EventType.EXIT, dev.ids[slot], fence, at.ts, at.lat, at.lon, dwell, reason, None, None, at.extras,
            self.fence_version,
        )  # fmt: skip

    def remove_fences(self, slot: int, known: Container[str], last: Fix) -> list[Event]:
        """Fences no longer in the index: open visits end at the last fix, candidates go."""
        events = [
            self._close(slot, f, last, ExitReason.FENCE_REMOVED)
            for f in sorted(self.inside.get(slot, {}))
            if f not in known
        ]
        cands = self.cands.get(slot)
        if cands:
            for f in [f for f in cands if f not in known]:
                del cands[f]
            self._note_pending(slot)
        return events

    def lose(self, slot: int, last: Fix) -> list[Event]:
        """Signal lost: close open visits at the last fix, drop candidates, report the loss."""
        events = [self._close(slot, f, last, ExitReason.SIGNAL_LOST) for f in sorted(self.inside.get(slot, {}))]
        if slot in self.cands:
            del self.cands[slot]
            self.devices.pending_since[slot] = math.nan
        device_id = str(self.devices.ids[slot])
        events.append(
            Event(
                EventType.SIGNAL_LOST,
                device_id,
                None,
                last.ts,
                last.lat,
                last.lon,
                gap_start=last.ts,
                extras=last.extras,
            )
        )
        return events

    def open_visits(self, slot: int) -> dict[str, float]:
        return self.inside.get(slot, {})
