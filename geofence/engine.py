"""The geofence engine: a batch of pings in, enter/exit/signal events out.

Hot path, per batch: the reorder stage releases pings in event-time order; one vectorised
index query finds every (ping, fence) pair. With debounce_s = 0 (the default) the visit
states then move for the whole batch at once, events as columns (sweep.py). Otherwise numpy
marks the few pings that can change a visit state (a different set of fences from the
device's previous certain ping, a signal gap, a pending debounce) and only those go through
the per-device Machine in Python. Per-device columns move for the whole batch at once.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geofence.devices import DeviceTable
from geofence.events import Event, EventType
from geofence.index import FenceIndex
from geofence.machine import Candidate, Fix, Machine
from geofence.params import EngineParams
from geofence.pings import FloatArray, IntArray, PingBatch
from geofence.reorder import NEG_INF, Held, ReorderStage
from geofence.sweep import sweep

SNAPSHOT_VERSION = 1


@dataclass(slots=True)
class Counters:
    """Running counts of what happened to pings and which events came out."""

    pings: int = 0
    applied: int = 0
    uncertain: int = 0
    duplicate: int = 0
    late: int = 0
    events: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Losses:
    """Signal losses found in a batch: position of the ping that proves each, device slot,
    and the batch index of the device's last ping before it (-1: a ping of an earlier batch)."""

    at: IntArray
    slot: IntArray
    fix: IntArray


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Events a batch produced, and the batch indices of pings not applied."""

    events: list[Event]
    late: IntArray
    duplicate: IntArray


class Engine:
    """Streaming geofence matcher over one ordered stream (one Kafka partition, one file)."""

    def __init__(self, index: FenceIndex, params: EngineParams | None = None) -> None:
        self.params = params or EngineParams()
        self.index = index
        self.devices = DeviceTable()
        self.reorder = ReorderStage(self.devices, self.params.max_lateness_s)
        self.machine = Machine(self.devices, self.params.debounce_s)
        self.machine.fence_version = index.version
        self.watermark = NEG_INF
        self.counters = Counters()
        self.dirty: set[int] = set()  # device slots changed since the last checkpoint()

    # ------------------------------------------------------------------ stream input

    def process(self, batch: PingBatch, now: float | None = None) -> BatchResult:
        """Take a batch in arrival order; `now` (live only) lets the wall clock move time."""
        slots = self.devices.slots(batch.device_id)
        self.dirty.update(np.unique(slots).tolist())
        extras = batch.extras if len(batch.extras) else np.full(len(batch), None, dtype=object)
        arrival = self.reorder.arrive(Held(slots, batch.ts, batch.lat, batch.lon, batch.accuracy_m, extras), now=now)
        self.counters.pings += len(batch)
        self.counters.late += len(arrival.late)
        self.counters.duplicate += len(arrival.duplicate)
        events = self._apply(arrival.released, now)
        return BatchResult(events, arrival.late, arrival.duplicate)

    def advance(self, now: float) -> list[Event]:
        """Let the wall clock move the watermark while no pings arrive (live only)."""
        return self.process(PingBatch.from_columns([], [], [], []), now=now).events

    def flush(self) -> list[Event]:
        """End of a finite input: release everything held, in order; open visits stay open."""
        self.reorder.max_ts = math.inf
        released = self.reorder.arrive(Held.empty()).released
        self.reorder.max_ts = float(np.nanmax(self.devices.latest_seen[: len(self.devices)], initial=NEG_INF))
        return self._apply(released, None, final=True)

    def set_index(self, index: FenceIndex) -> list[Event]:
        """Swap in a new fence snapshot; the next batch sees only the new fences.

        Visits in fences the new snapshot lacks end with EXIT reason fence_removed at the
        device's last ping (the last evidence of it being there). A changed geometry needs
        nothing here: the device's next ping is matched against the new shape.
        """
        self.index = index
        self.machine.fence_version = index.version
        events: list[Event] = []
        for s in sorted(set(self.machine.inside) | set(self.machine.cands)):
            events += self.machine.remove_fences(s, index.position, self._last_fix(s))
            self.dirty.add(s)
        for e in events:
            self.counters.events[e.type.value] += 1
        return events

    # ------------------------------------------------------------------ state machine

    def _apply(self, r: Held, now: float | None, final: bool = False) -> list[Event]:
        """Released pings through the state machine. Losses are found whenever the watermark is
        looked at: at each released ping (inside _apply_released), at a wall-clock tick, and
        once more at the end of a finite input."""
        p = self.params
        dev = self.devices
        w0 = self.watermark if now is None else max(self.watermark, now - p.max_lateness_s)
        events: list[Event] = []
        if len(r):
            events = self._apply_released(r, w0)
            self.watermark = max(w0, float(r.ts.max()) - p.max_lateness_s)
        else:
            self.watermark = w0
        if final or (not len(r) and now is not None):
            n = len(dev)
            gone = np.flatnonzero(~dev.lost[:n] & (dev.last_ts[:n] + p.signal_timeout_s < self.watermark))
            for s in gone.tolist():  # in first-seen order
                events += self.machine.lose(s, self._last_fix(s))
            dev.lost[gone] = True
            self.dirty.update(gone.tolist())
        for type_, n in Counter(e.type for e in events).items():  # per type, not per event: cheap
            self.counters.events[type_.value] += n
        return events

    def _last_fix(self, slot: int) -> Fix:
        d = self.devices
        return Fix(float(d.last_ts[slot]), float(d.last_lat[slot]), float(d.last_lon[slot]), d.extras[slot])

    def _apply_released(self, r: Held, w0: float) -> list[Event]:
        p = self.params
        dev = self.devices
        m = len(r)
        slot, ts = r.slot, r.ts
        certain = ~(r.acc > p.max_accuracy_m)
        w_before = np.maximum(w0, np.maximum.accumulate(ts) - p.max_lateness_s)

        # Each ping's previous ping of the same device, in this batch (index) or before it (-1).
        order = np.argsort(slot, kind="stable")
        s_sorted = slot[order]
        starts = np.ones(m, dtype=bool)
        starts[1:] = s_sorted[1:] != s_sorted[:-1]
        prev = np.full(m, -1, dtype=np.int64)
        prev[order[1:]] = np.where(starts[1:], -1, order[:-1])
        has_prev = prev >= 0
        prev_ts = np.where(has_prev, ts[prev], dev.last_ts[slot])
        was_lost = ~has_prev & dev.lost[slot]
        with np.errstate(invalid="ignore"):
            newly_lost = ~was_lost & (w_before > prev_ts + p.signal_timeout_s)
        lost_before = was_lost | newly_lost

        # Which fences each certain ping is in: one index query for the batch.
        ci = np.flatnonzero(certain)
        pi, fi = self.index.match(r.lon[ci], r.lat[ci])
        pk = ci[pi]

        # Per-device columns for every ping, at once.
        ends = np.flatnonzero(np.append(starts[1:], True))
        last = order[ends]
        last_slots = slot[last]
        gap = np.nan_to_num(ts - prev_ts)  # 0 for a device's first ping ever
        active = np.where(lost_before, 0.0, gap)
        np.add.at(dev.active_s, slot, active)
        np.add.at(dev.lost_s, slot, np.where(lost_before, gap, 0.0))
        np.add.at(dev.pings, slot, 1)
        self.counters.applied += m
        self.counters.uncertain += int(m - len(ci))

        # Where in the batch each loss happens: the first ping that lifts W past last_ts + timeout.
        n = len(dev)
        last_idx = np.full(n, -1, dtype=np.int64)
        last_idx[last_slots] = last
        last_t = dev.last_ts[:n].copy()
        last_t[last_slots] = ts[last]
        alive = ~dev.lost[:n]
        alive[last_slots] = True
        with np.errstate(invalid="ignore"):
            cross = np.maximum(np.searchsorted(w_before, last_t + p.signal_timeout_s, side="right"), last_idx + 1)
        trailing = np.flatnonzero(alive & (cross < m))
        gaps = np.flatnonzero(newly_lost)
        gap_at = np.maximum(np.searchsorted(w_before, prev_ts[gaps] + p.signal_timeout_s, side="right"), prev[gaps] + 1)
        losses = Losses(
            np.concatenate((gap_at, cross[trailing])),
            np.concatenate((slot[gaps], trailing)),
            np.concatenate((prev[gaps], last_idx[trailing])),
        )
        events = None
        if p.debounce_s == 0 and not self.machine.cands:  # the per-ping walk gives the same events, slower
            loss_cols = (losses.at, losses.slot, losses.fix)
            events = sweep(self.machine, r, certain, pk, fi, loss_cols, lost_before, prev_ts, self.index.ids,
                           self.index.position)  # fmt: skip
        if events is None:
            count = np.bincount(pk, minlength=m)
            interesting = lost_before | self._changed(r, certain, order, starts, lost_before, pk, fi, count)
            events = self._walk(r, np.flatnonzero(interesting), losses, prev_ts, lost_before, certain, pk, fi)
        dev.last_ts[last_slots] = ts[last]
        dev.last_lat[last_slots] = r.lat[last]
        dev.last_lon[last_slots] = r.lon[last]
        dev.last_acc[last_slots] = r.acc[last]
        dev.extras[last_slots] = r.extras[last]
        dev.lost[last_slots] = False
        dev.lost[trailing] = True
        self.dirty.update(last_slots.tolist())
        self.dirty.update(trailing.tolist())
        return events

    def _changed(
        self,
        r: Held,
        certain: np.ndarray,
        order: IntArray,
        starts: np.ndarray,
        lost_before: np.ndarray,
        pk: IntArray,
        fi: IntArray,
        count: IntArray,
    ) -> np.ndarray:
        """Certain pings whose fence set may differ from the device's visit state."""
        m = len(r)
        nf = max(len(self.index), 1)
        changed = np.zeros(m, dtype=bool)
        # Certain pings grouped by device, in release order; losses counted along the group.
        c_order = order[certain[order]]
        if not len(c_order):
            return changed
        c_slot = r.slot[c_order]
        c_start = np.ones(len(c_order), dtype=bool)
        c_start[1:] = c_slot[1:] != c_slot[:-1]
        prevc = np.full(m, -1, dtype=np.int64)
        prevc[c_order[1:]] = np.where(c_start[1:], -1, c_order[:-1])
        # A loss between a certain ping and the previous one resets the state: recheck.
        losses = np.cumsum(lost_before[order])
        loss_at = np.empty(m, dtype=np.int64)
        loss_at[order] = losses
        group_first = order[np.flatnonzero(starts)]
        base = np.empty(m, dtype=np.int64)
        base_vals = loss_at[group_first] - lost_before[group_first]
        base[order] = np.repeat(base_vals, np.diff(np.append(np.flatnonzero(starts), m)))
        c = c_order
        has = prevc[c] >= 0
        ref_losses = np.where(has, loss_at[np.maximum(prevc[c], 0)], base[c])
        changed[c[loss_at[c] > ref_losses]] = True
        # Against the previous certain ping in the batch: different count or a missing pair.
        inb = c[has]
        changed[inb[count[inb] != count[prevc[inb]]]] = True
        keys = pk * nf + fi
        want = prevc[pk] * nf + fi
        ok = prevc[pk] >= 0
        found = np.zeros(len(pk), dtype=bool)
        if len(keys):
            at = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
            found = keys[at] == want
        changed[pk[ok & ~found]] = True
        # The first certain ping of each device: against its visit state before the batch.
        first = c[~has]
        visits = self.machine.inside
        pos = self.index.position
        first_lo = np.searchsorted(pk, first).tolist()
        for k, s, n, lo in zip(first.tolist(), r.slot[first].tolist(), count[first].tolist(), first_lo, strict=True):
            state = visits.get(s)
            if state is None:
                changed[k] = n > 0
            elif len(state) != n or {pos.get(f, -1) for f in state} != set(fi[lo : lo + n].tolist()):
                changed[k] = True
        if self.params.debounce_s > 0:
            changed |= self._in_debounce_window(r, c_order, c_start, prevc, changed)
        return changed

    def _in_debounce_window(
        self, r: Held, c_order: IntArray, c_start: np.ndarray, prevc: IntArray, changed: np.ndarray
    ) -> np.ndarray:
        """Certain pings that may confirm or cancel a pending candidate."""
        m = len(r)
        d = self.params.debounce_s
        n = len(c_order)
        positions = np.arange(n)
        group_start = np.maximum.accumulate(np.where(c_start, positions, 0))
        marks = np.maximum.accumulate(np.where(changed[c_order], positions, -1))
        pending = self.devices.pending_since[r.slot[c_order]]
        last_change = np.where(marks >= group_start, r.ts[c_order[np.maximum(marks, 0)]], pending)
        change_at = np.full(m, np.nan)
        change_at[c_order] = last_change
        out = np.zeros(m, dtype=bool)
        k = c_order
        pc = prevc[k]
        has = pc >= 0
        with np.errstate(invalid="ignore"):
            window = np.where(has, r.ts[np.maximum(pc, 0)] < change_at[np.maximum(pc, 0)] + d, ~np.isnan(pending))
        out[k[window]] = True
        return out

    def _walk(
        self,
        r: Held,
        idx: IntArray,
        losses: Losses,
        prev_ts: FloatArray,
        lost_before: np.ndarray,
        certain: np.ndarray,
        pk: IntArray,
        fi: IntArray,
    ) -> list[Event]:
        """The per-device state machine, in stream order: the pings that can change a state,
        and each signal loss just before the ping that lifted the watermark past it."""
        dev = self.devices
        events: list[Event] = []
        fence_ids = self.index.ids[fi].tolist()
        bounds = np.searchsorted(pk, np.concatenate((idx, idx + 1)))
        los, his = bounds[: len(idx)].tolist(), bounds[len(idx) :].tolist()
        order = np.lexsort((losses.slot, losses.at))
        loss_rows = list(
            zip(losses.at[order].tolist(), losses.slot[order].tolist(), losses.fix[order].tolist(), strict=True)
        )
        loss_rows.append((len(r) + 1, -1, -1))  # sentinel
        li = 0
        observe = self.machine.observe
        rows = zip(
            idx.tolist(), r.slot[idx].tolist(), r.ts[idx].tolist(), r.lat[idx].tolist(), r.lon[idx].tolist(),
            r.extras[idx].tolist(), certain[idx].tolist(), lost_before[idx].tolist(), los, his, strict=True,
        )  # fmt: skip
        for k, s, t, lat, lon, extras, sure, lost, lo, hi in [
            *rows,
            (len(r), -1, 0.0, 0.0, 0.0, None, False, False, 0, 0),
        ]:
            while loss_rows[li][0] <= k:
                _, ls, j = loss_rows[li]
                last = (
                    Fix(float(r.ts[j]), float(r.lat[j]), float(r.lon[j]), r.extras[j]) if j >= 0 else self._last_fix(ls)
                )
                events += self.machine.lose(ls, last)
                li += 1
            if s < 0:
                break
            if lost:
                gap = t - float(prev_ts[k])
                events.append(
                    Event(EventType.SIGNAL_RESTORED, str(dev.ids[s]), None, t, lat, lon, gap_s=gap, extras=extras)
                )
            if sure:
                events += observe(s, fence_ids[lo:hi], Fix(t, lat, lon, extras))
        return events

    # ------------------------------------------------------------------ results

    def dwell_totals(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(device, fence) -> (visits, dwell_s); open visits count up to the last ping."""
        dev = self.devices
        out: dict[tuple[str, str], tuple[int, float]] = {}
        for s, fences in self.machine.ledger.items():
            visits_open = self.machine.open_visits(s)
            for fence, (visits, dwell) in fences.items():
                start = visits_open.get(fence)
                if start is not None:
                    dwell += float(dev.last_ts[s]) - start
                out[(str(dev.ids[s]), fence)] = (int(visits), float(dwell))
        return out

    def device_totals(self) -> dict[str, dict[str, float]]:
        """Per device: active, inside (union of visits), outside and lost seconds."""
        dev = self.devices
        out: dict[str, dict[str, float]] = {}
        for s in range(len(dev)):
            inside = float(dev.covered_s[s])
            if not math.isnan(dev.covered_since[s]):
                inside += float(dev.last_ts[s] - dev.covered_since[s])
            active = float(dev.active_s[s])
            out[str(dev.ids[s])] = {
                "active_s": active,
                "inside_s": inside,
                "outside_s": active - inside,
                "lost_s": float(dev.lost_s[s]),
                "pings": float(dev.pings[s]),
            }
        return out

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> dict[str, Any]:
        """All state as plain JSON-serialisable data, keyed per device."""
        stream = self._stream_state()
        stream["devices"] = self._device_records(range(len(self.devices)))
        return stream

    def checkpoint(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The stream-wide state, and the records of the devices changed since the last call.

        Together with every earlier checkpoint's device records this is a full snapshot, so a
        live pipeline writes only what changed.
        """
        dirty = sorted(self.dirty)
        self.dirty.clear()
        return self._stream_state(), self._device_records(dirty)

    def _device_records(self, slots: Iterable[int]) -> dict[str, dict[str, Any]]:
        dev = self.devices
        slots = list(slots)
        rows = dev.rows(slots)
        for s in slots:
            rec = rows[str(dev.ids[s])]
            rec["inside"] = dict(self.machine.inside.get(s, {}))
            rec["candidates"] = {
                f: {"inside": c.inside, "ts": c.fix.ts, "lat": c.fix.lat, "lon": c.fix.lon, "extras": c.fix.extras}
                for f, c in self.machine.cands.get(s, {}).items()
            }
            rec["ledger"] = {f: [int(v), float(d)] for f, (v, d) in self.machine.ledger.get(s, {}).items()}
        return rows

    def _stream_state(self) -> dict[str, Any]:
        dev = self.devices
        held = self.reorder.held()
        c = self.counters
        return {
            "version": SNAPSHOT_VERSION,
            "watermark": _finite(self.watermark),
            "max_ts": _finite(self.reorder.max_ts),
            "held": {
                "device_id": [str(dev.ids[s]) for s in held.slot.tolist()],
                "ts": held.ts.tolist(),
                "lat": held.lat.tolist(),
                "lon": held.lon.tolist(),
                "accuracy_m": [None if math.isnan(a) else a for a in held.acc.tolist()],
                "extras": list(held.extras),
            },
            "counters": {
                "pings": c.pings,
                "applied": c.applied,
                "uncertain": c.uncertain,
                "duplicate": c.duplicate,
                "late": c.late,
                "events": dict(c.events),
            },
        }

    @classmethod
    def restore(cls, snap: dict[str, Any], index: FenceIndex, params: EngineParams | None = None) -> Engine:
        """An engine that continues exactly where the snapshot's engine stopped."""
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported engine snapshot version {snap.get('version')!r}")
        engine = cls(index, params)
        engine.watermark = _unfinite(snap["watermark"])
        engine.reorder.max_ts = _unfinite(snap["max_ts"])
        for device_id, rec in snap["devices"].items():
            s = engine.devices.load(device_id, rec)
            if rec["inside"]:
                engine.machine.inside[s] = {f: float(t) for f, t in rec["inside"].items()}
            if rec["candidates"]:
                engine.machine.cands[s] = {
                    f: Candidate(bool(c["inside"]), Fix(float(c["ts"]), float(c["lat"]), float(c["lon"]), c["extras"]))
                    for f, c in rec["candidates"].items()
                }
            if rec["ledger"]:
                engine.machine.ledger[s] = {f: [int(v), float(d)] for f, (v, d) in rec["ledger"].items()}
        h = snap["held"]
        if h["ts"]:
            slots = engine.devices.slots(np.array(h["device_id"], dtype=object))
            ts = np.array(h["ts"], dtype=np.float64)
            order = np.argsort(ts, kind="stable")
            extras = np.empty(len(ts), dtype=object)
            extras[:] = h["extras"]
            acc = np.array([np.nan if a is None else a for a in h["accuracy_m"]], dtype=np.float64)
            held = Held(slots, ts, np.array(h["lat"]), np.array(h["lon"]), acc, extras)
            engine.reorder.chunks = [held.take(order)]
        c = snap["counters"]
        engine.counters = Counters(
            c["pings"], c["applied"], c["uncertain"], c["duplicate"], c["late"], Counter(c["events"])
        )
        return engine


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _unfinite(x: float | None) -> float:
    return NEG_INF if x is None else float(x)
