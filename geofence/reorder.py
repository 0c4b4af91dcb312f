"""The reorder stage: classify arriving pings, hold them, release them in event-time order.

docs/semantics.md "Arrival, reordering and lateness" is the rule this implements. The
batch computation reproduces exactly what a ping-at-a-time stream would do: a held ping
is released at the first arrival that lifts the frontier to its ts (its "wave"), and
releases are ordered by (wave, ts, device slot). Hence batch sizes never change results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geofence.devices import DeviceTable
from geofence.pings import FloatArray, IntArray, ObjArray

NEG_INF = float("-inf")


@dataclass(frozen=True, slots=True)
class Held:
    """Pings held or released, by column; slot is the device's DeviceTable slot."""

    slot: IntArray
    ts: FloatArray
    lat: FloatArray
    lon: FloatArray
    acc: FloatArray
    extras: ObjArray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, idx: IntArray | slice) -> Held:
        return Held(self.slot[idx], self.ts[idx], self.lat[idx], self.lon[idx], self.acc[idx], self.extras[idx])

    @staticmethod
    def concat(parts: list[Held]) -> Held:
        if not parts:
            return Held.empty()
        if len(parts) == 1:
            return parts[0]
        return Held(*(np.concatenate([getattr(p, c) for p in parts]) for c in Held.__slots__))

    @staticmethod
    def empty() -> Held:
        f = np.empty(0)
        return Held(np.empty(0, dtype=np.int64), f, f, f, f, np.empty(0, dtype=object))


@dataclass(frozen=True, slots=True)
class Arrival:
    """What the reorder stage made of one batch: rejects (batch indices) and releases."""

    late: IntArray
    duplicate: IntArray
    released: Held


def _grouped_running_max(group: IntArray, values: FloatArray) -> FloatArray:
    """Running max of values within each group, rows already sorted by group (stable)."""
    if bool(np.all((np.diff(values) >= 0) | (group[1:] != group[:-1]))):
        return values  # already rising within each group: the usual case of input in time order
    n = len(values)
    rank = np.empty(n, dtype=np.int64)
    by_value = np.argsort(values, kind="stable")
    rank[by_value] = np.arange(n)
    _, starts = np.unique(group, return_index=True)
    group_no = np.zeros(n, dtype=np.int64)
    group_no[starts[1:]] = 1
    group_no = np.cumsum(group_no)
    keys = np.maximum.accumulate(group_no * n + rank)
    result: FloatArray = values[by_value][keys - group_no * n]
    return result


def _stream_order(wave: IntArray, ts: FloatArray, slot: IntArray) -> IntArray:
    """The permutation sorting rows by (wave, ts, slot). Input in time order is usually sorted
    but for devices tied on ts; then one stable sort of (tie group, slot) packed in an int64
    is several times faster than a lexsort of the three keys."""
    dw, dt = np.diff(wave), np.diff(ts)
    if bool(np.all((dw > 0) | ((dw == 0) & (dt >= 0)))):
        tie_group = np.concatenate(([0], np.cumsum((dw != 0) | (dt != 0))))
        order: IntArray = np.argsort(tie_group * (int(slot.max()) + 1) + slot, kind="stable")
        return order
    return np.lexsort((slot, ts, wave))


def _in_order(wave: IntArray, ts: FloatArray, slot: IntArray) -> bool:
    """Whether rows are already sorted by (wave, ts, slot): then no sort is needed."""
    dw, dt, ds = np.diff(wave), np.diff(ts), np.diff(slot)
    return bool(np.all((dw > 0) | ((dw == 0) & ((dt > 0) | ((dt == 0) & (ds >= 0))))))


class ReorderStage:
    """Holds accepted pings until the stream frontier passes them."""

    def __init__(self, devices: DeviceTable, max_lateness_s: float) -> None:
        self.devices = devices
        self.lateness = max_lateness_s
        self.max_ts = NEG_INF  # greatest accepted ts (or wall clock), the frontier's base
        self.chunks: list[Held] = []  # each sorted by ts

    @property
    def frontier(self) -> float:
        return self.max_ts - self.lateness

    def held(self) -> Held:
        return Held.concat(self.chunks)

    def arrive(self, batch: Held, now: float | None = None) -> Arrival:
        """Classify a batch in arrival order and release what the frontier has passed."""
        if now is not None:
            self.max_ts = max(self.max_ts, now)
        n = len(batch)
        dev = self.devices
        ts, slot = batch.ts, batch.slot
        m_after = np.maximum.accumulate(ts) if n else ts
        m_after = np.maximum(m_after, self.max_ts)
        f_after = m_after - self.lateness
        f_before = np.empty(n)
        if n:
            f_before[0] = self.max_ts - self.lateness
            f_before[1:] = f_after[:-1]

        # Latest accepted ts of the device before each arrival, within the batch and before it.
        by_slot = np.argsort(slot, kind="stable")
        s_sorted = slot[by_slot]
        running = _grouped_running_max(s_sorted, ts[by_slot]) if n else ts
        prior = np.empty(n)
        prior[:] = NEG_INF
        if n > 1:
            same = s_sorted[1:] == s_sorted[:-1]
            prior[1:] = np.where(same, running[:-1], NEG_INF)
        latest_before = np.empty(n)
        latest_before[by_slot] = np.fmax(prior, dev.latest_seen[s_sorted])
        latest_before = np.nan_to_num(latest_before, nan=NEG_INF)

        # A ping newer than everything seen of its device is always accepted.
        suspects = np.flatnonzero(ts <= latest_before)
        accepted = np.ones(n, dtype=bool)
        late: list[int] = []
        dup: list[int] = []
        # The same ts as the device's latest accepted ping (applied or held): a duplicate.
        same = ts[suspects] == latest_before[suspects]
        if same.any():
            dup = suspects[same].tolist()
            accepted[suspects[same]] = False
            suspects = suspects[~same]
        if len(suspects):
            self._judge(batch, suspects, latest_before, f_before, accepted, late, dup)

        acc_idx = np.flatnonzero(accepted)
        if len(acc_idx):
            np.fmax.at(dev.latest_seen, slot[acc_idx], ts[acc_idx])
            self.max_ts = max(self.max_ts, float(ts[acc_idx].max()))
        released = self._release(batch, acc_idx, f_after)
        return Arrival(np.array(late, dtype=np.int64), np.sort(np.array(dup, dtype=np.int64)), released)

    def _judge(
        self,
        batch: Held,
        suspects: IntArray,
        latest_before: FloatArray,
        f_before: FloatArray,
        accepted: np.ndarray,
        late: list[int],
        dup: list[int],
    ) -> None:
        """Per ping, in arrival order, for the few pings not newer than their device's latest."""
        dev = self.devices
        ts, slot = batch.ts, batch.slot
        wanted = np.unique(slot[suspects])
        held = self.held()
        mask = np.isin(held.slot, wanted)
        held_ts: dict[int, list[float]] = {}
        for s, t in zip(held.slot[mask].tolist(), held.ts[mask].tolist(), strict=True):
            held_ts.setdefault(s, []).append(t)
        earlier: dict[int, list[float]] = {}  # accepted pings of those devices earlier in the batch
        in_batch = np.flatnonzero(np.isin(slot[: int(suspects[-1])], wanted))
        pos = 0
        for i in suspects.tolist():
            while pos < len(in_batch) and in_batch[pos] < i:
                j = int(in_batch[pos])
                if accepted[j]:
                    earlier.setdefault(int(slot[j]), []).append(float(ts[j]))
                pos += 1
            s, t = int(slot[i]), float(ts[i])
            known = (*earlier.get(s, ()), *held_ts.get(s, ()))
            # What the frontier had released before i arrived counts as applied, the rest as held.
            applied = max([x for x in known if x <= f_before[i]], default=NEG_INF)
            applied = max(applied, float(np.nan_to_num(dev.last_ts[s], nan=NEG_INF)))
            if t < latest_before[i] - self.lateness or t < applied:
                late.append(i)
            elif t == applied or any(x == t for x in known if x > f_before[i]):
                dup.append(i)
            else:
                continue
            accepted[i] = False

    def _release(self, batch: Held, acc_idx: IntArray, f_after: FloatArray) -> Held:
        """Release every held or new ping the frontier has passed, in stream order."""
        n = len(batch)
        f_end = self.frontier
        parts: list[Held] = []
        waves: list[IntArray] = []
        kept: list[Held] = []
        for chunk in self.chunks:
            k = int(np.searchsorted(chunk.ts, f_end, side="right"))
            if k:
                part = chunk.take(slice(0, k))
                parts.append(part)
                waves.append(np.searchsorted(f_after, part.ts, side="left") if n else np.zeros(k, dtype=np.int64))
            if k < len(chunk):
                kept.append(chunk.take(slice(k, None)))
        new = batch.take(acc_idx)
        if len(new):
            wave = np.maximum(acc_idx, np.searchsorted(f_after, new.ts, side="left"))
            out = wave >= n
            if out.any():
                rest = new.take(np.flatnonzero(out))
                kept.append(rest.take(np.argsort(rest.ts, kind="stable")))
            go = np.flatnonzero(~out)
            parts.append(new.take(go))
            waves.append(wave[go])
        self.chunks = kept
        if not parts:
            return Held.empty()
        released = Held.concat(parts)
        wave_all = np.concatenate(waves)
        if _in_order(wave_all, released.ts, released.slot):  # the usual case of input in time order
            return released
        return released.take(_stream_order(wave_all, released.ts, released.slot))
