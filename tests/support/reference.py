"""A brute-force reference model of the geofence engine, for property tests.

It implements docs/semantics.md literally, one ping at a time, in plain Python: no numpy, no
spatial index, no batching. Containment is `shapely.intersects_xy` on every fence's effective
area. It is slow on purpose; every rule below should be checkable against the doc by eye.

Two stages, as in docs/semantics.md "Arrival, reordering and lateness":

1. Reorder stage (`push`): classify the arriving ping as duplicate, late or accepted; hold
   accepted pings; raise the frontier F = max(accepted ts) - max_lateness_s; release every held
   ping with ts <= F, in (ts, first-seen device) order, into the state machine.
2. State machine (`_apply`): per released ping, advance the watermark W, detect signal losses
   over all devices, restore this device if it was lost, run the debounce rule per fence when
   the ping is certain, and remember the ping as the device's last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import shapely

from geofence.events import Event, EventType, ExitReason
from geofence.fences import Fence
from geofence.params import EngineParams

#: Sort rank of event types among the events one ping produces: EXITs before ENTERs.
_TYPE_RANK = {EventType.EXIT: 0, EventType.ENTER: 1}


@dataclass(frozen=True)
class Ping:
    device_id: str
    ts: float
    lat: float
    lon: float
    accuracy_m: float
    extras: Mapping[str, Any] | None


@dataclass
class DeviceState:
    """Everything the state machine knows about one device."""

    last: Ping | None = None  # the last applied ping
    lost: bool = False
    inside: dict[str, bool] = field(default_factory=dict)  # fence id -> INSIDE?
    candidate: dict[str, Ping] = field(default_factory=dict)  # fence id -> start ping of a pending change
    open_enter_ts: dict[str, float] = field(default_factory=dict)  # fence id -> ENTER ts of the open visit
    closed_visits: list[tuple[str, float, float]] = field(default_factory=list)  # (fence id, enter ts, exit ts)
    enters: dict[str, int] = field(default_factory=dict)  # fence id -> number of ENTERs
    active_s: float = 0.0
    lost_s: float = 0.0


class Reference:
    """The engine of docs/semantics.md, one ping at a time."""

    def __init__(self, fences: list[Fence], params: EngineParams) -> None:
        self.fences = list(fences)
        self.params = params
        self.events: list[Event] = []
        self.duplicate = 0
        self.late = 0
        self.applied = 0
        # Reorder stage.
        self.held: list[Ping] = []
        self.frontier = -math.inf
        self.first_seen: dict[str, int] = {}  # device -> rank of its first arrival
        self.latest_seen: dict[str, float] = {}  # device -> greatest accepted ts
        # State machine.
        self.watermark = -math.inf
        self.devices: dict[str, DeviceState] = {}

    # ------------------------------------------------------------------ reorder stage

    def push(
        self,
        device_id: str,
        ts: float,
        lat: float,
        lon: float,
        accuracy_m: float = math.nan,
        extras: Mapping[str, Any] | None = None,
    ) -> str:
        """Handle one arriving ping; return "duplicate", "late" or "accepted"."""
        ping = Ping(device_id, float(ts), float(lat), float(lon), float(accuracy_m), extras)
        verdict = self._classify(ping)
        if verdict == "duplicate":
            self.duplicate += 1
            return verdict
        if verdict == "late":
            self.late += 1
            return verdict
        if device_id not in self.first_seen:
            self.first_seen[device_id] = len(self.first_seen)
        self.latest_seen[device_id] = max(self.latest_seen.get(device_id, -math.inf), ping.ts)
        self.held.append(ping)
        self.frontier = max(self.frontier, ping.ts - self.params.max_lateness_s)
        self._release(lambda p: p.ts <= self.frontier)
        return verdict

    def _classify(self, ping: Ping) -> str:
        d, ts = ping.device_id, ping.ts
        # Late: more than max_lateness_s behind the device's latest seen ping (even if a repeat).
        if d in self.latest_seen and ts < self.latest_seen[d] - self.params.max_lateness_s:
            return "late"
        # Duplicate: same (device, ts) as a held ping, or as the last ping applied for the device.
        if any(h.device_id == d and h.ts == ts for h in self.held):
            return "duplicate"
        state = self.devices.get(d)
        last = state.last if state is not None else None
        if last is not None and last.ts == ts:
            return "duplicate"
        # Late: older than a ping of the same device that was already applied.
        if last is not None and ts < last.ts:
            return "late"
        return "accepted"

    def _release(self, due: Any) -> None:
        ready = [p for p in self.held if due(p)]
        self.held = [p for p in self.held if not due(p)]
        ready.sort(key=lambda p: (p.ts, self.first_seen[p.device_id]))
        for ping in ready:
            self._apply(ping)

    def finish(self) -> None:
        """End of finite input: release everything held, in ts order; report proven losses."""
        self._release(lambda p: True)
        self._detect_losses()

    # ------------------------------------------------------------------ state machine

    def _apply(self, ping: Ping) -> None:
        self.applied += 1
        self.watermark = max(self.watermark, ping.ts - self.params.max_lateness_s)
        self._detect_losses()
        state = self.devices.setdefault(ping.device_id, DeviceState())
        if state.last is not None:
            gap = ping.ts - state.last.ts
            if state.lost:
                state.lost_s += gap
            else:
                state.active_s += gap
        if state.lost:
            self.events.append(
                Event(
                    type=EventType.SIGNAL_RESTORED,
                    device_id=ping.device_id,
                    fence_id=None,
                    ts=ping.ts,
                    lat=ping.lat,
                    lon=ping.lon,
                    gap_s=ping.ts - state.last.ts,
                    extras=ping.extras,
                )
            )
            state.lost = False
            state.inside = {}
            state.candidate = {}
        certain = math.isnan(ping.accuracy_m) or ping.accuracy_m <= self.params.max_accuracy_m
        if certain:
            self._transitions(state, ping)
        state.last = ping

    def _transitions(self, state: DeviceState, ping: Ping) -> None:
        """The debounce rule for every fence; the confirmed events, sorted, EXITs first."""
        confirmed: list[Event] = []
        for fence in self.fences:
            now_inside = bool(shapely.intersects_xy(fence.area, ping.lon, ping.lat))
            was_inside = state.inside.get(fence.id, False)
            if now_inside == was_inside:
                state.candidate.pop(fence.id, None)  # the old state cancels a pending change
                continue
            start = state.candidate.setdefault(fence.id, ping)
            if ping.ts < start.ts + self.params.debounce_s:
                continue  # not confirmed yet
            del state.candidate[fence.id]
            state.inside[fence.id] = now_inside
            if now_inside:
                state.open_enter_ts[fence.id] = start.ts
                state.enters[fence.id] = state.enters.get(fence.id, 0) + 1
                confirmed.append(self._event(EventType.ENTER, start, fence.id))
            else:
                enter_ts = state.open_enter_ts.pop(fence.id)
                state.closed_visits.append((fence.id, enter_ts, start.ts))
                confirmed.append(
                    self._event(EventType.EXIT, start, fence.id, dwell_s=start.ts - enter_ts, reason=ExitReason.LEFT)
                )
        confirmed.sort(key=lambda e: (e.ts, _TYPE_RANK[e.type], e.fence_id))
        self.events.extend(confirmed)

    def _detect_losses(self) -> None:
        """Every device whose silence the watermark proves, not already lost, becomes lost."""
        for device_id, state in sorted(self.devices.items(), key=lambda item: self.first_seen[item[0]]):
            if state.lost or state.last is None:
                continue
            if not self.watermark > state.last.ts + self.params.signal_timeout_s:
                continue
            last = state.last
            for fence in self.fences:
                if fence.id in state.open_enter_ts:
                    enter_ts = state.open_enter_ts.pop(fence.id)
                    state.closed_visits.append((fence.id, enter_ts, last.ts))
                    self.events.append(
                        self._event(
                            EventType.EXIT,
                            last,
                            fence.id,
                            dwell_s=last.ts - enter_ts,
                            reason=ExitReason.SIGNAL_LOST,
                        )
                    )
            self.events.append(
                Event(
                    type=EventType.SIGNAL_LOST,
                    device_id=device_id,
                    fence_id=None,
                    ts=last.ts,
                    lat=last.lat,
                    lon=last.lon,
                    gap_start=last.ts,
                    extras=last.extras,
                )
            )
            state.lost = True
            state.inside = {}
            state.candidate = {}

    @staticmethod
    def _event(
        type_: EventType,
        ping: Ping,
        fence_id: str,
        dwell_s: float | None = None,
        reason: ExitReason | None = None,
    ) -> Event:
        return Event(
            type=type_,
            device_id=ping.device_id,
            fence_id=fence_id,
            ts=ping.ts,
            lat=ping.lat,
            lon=ping.lon,
            dwell_s=dwell_s,
            reason=reason,
            extras=ping.extras,
        )

    # ------------------------------------------------------------------ dwell totals

    def _visits(self, device_id: str) -> list[tuple[str, float, float]]:
        """All visits of a device; an open visit counts up to the device's last applied ping."""
        state = self.devices[device_id]
        visits = list(state.closed_visits)
        for fence_id, enter_ts in state.open_enter_ts.items():
            visits.append((fence_id, enter_ts, state.last.ts))
        return visits

    def dwell_totals(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(device, fence) -> (visits, dwell_s), for every pair with at least one ENTER."""
        totals: dict[tuple[str, str], tuple[int, float]] = {}
        for device_id, state in self.devices.items():
            for fence_id, count in state.enters.items():
                dwell = sum(end - start for f, start, end in self._visits(device_id) if f == fence_id)
                totals[(device_id, fence_id)] = (count, dwell)
        return totals

    def device_totals(self) -> dict[str, dict[str, float]]:
        """device -> active_s, inside_s (union of visits), outside_s, lost_s."""
        totals: dict[str, dict[str, float]] = {}
        for device_id, state in self.devices.items():
            intervals = sorted((start, end) for _, start, end in self._visits(device_id))
            inside = 0.0
            cur_start, cur_end = None, None
            for start, end in intervals:
                if cur_end is None or start > cur_end:
                    if cur_end is not None:
                        inside += cur_end - cur_start
                    cur_start, cur_end = start, end
                else:
                    cur_end = max(cur_end, end)
            if cur_end is not None:
                inside += cur_end - cur_start
            totals[device_id] = {
                "active_s": state.active_s,
                "inside_s": inside,
                "outside_s": state.active_s - inside,
                "lost_s": state.lost_s,
            }
        return totals
