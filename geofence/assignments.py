"""Who carried which device when: assignments as per-device interval arrays, resolved in numpy.

A radio's ping names only its ISSI; an assignment says that officer X (callsign, team) carried
device D over [valid_from, valid_to) (valid_to None: until further notice). One device's
assignments never overlap (the store refuses it), so a (device, time) has at most one.

Every measure that shows or counts officers asks `AssignmentTable.resolve` for the row valid at
each (device, ts) at once, and cuts spans at handovers with `split`, so a radio handed from A to
B at 14:00 gives A everything before and B everything after in every figure. A record's own
officer (a ping that named one) wins over the assignment: `attribute` is that rule, in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Devices = Sequence[str] | npt.NDArray[np.object_]


@dataclass(frozen=True, slots=True)
class Assignment:
    """Officer `officer_id` carried `device_id` over [valid_from, valid_to) (epoch seconds)."""

    assignment_id: str
    device_id: str
    officer_id: str
    callsign: str | None
    team: str | None
    valid_from: float
    valid_to: float | None  # None: open-ended

    @property
    def end(self) -> float:
        return np.inf if self.valid_to is None else self.valid_to

    def overlaps(self, other: Assignment) -> bool:
        """Same device and a common instant ([from, to) half-open: back-to-back is not an overlap)."""
        return self.device_id == other.device_id and self.valid_from < other.end and other.valid_from < self.end


@dataclass(frozen=True, slots=True)
class Who:
    """Who a record is attributed to: officer, callsign and team (any may be None)."""

    officer_id: str | None
    callsign: str | None
    team: str | None


def attribute(own_officer: str | None, own_callsign: str | None, assigned: Assignment | None) -> Who:
    """The precedence rule: a record that names an officer or callsign keeps its own pair (team
    from the assignment only when it names the same officer); else the assignment's officer."""
    if own_officer is not None or own_callsign is not None:
        same = assigned is not None and assigned.officer_id == own_officer
        return Who(own_officer, own_callsign, assigned.team if same and assigned is not None else None)
    if assigned is None:
        return Who(None, None, None)
    return Who(assigned.officer_id, assigned.callsign, assigned.team)


def _rank_keys(codes: IntArray, times: FloatArray, all_times: FloatArray) -> npt.NDArray[np.int64]:
    """(device code, time) as one sortable integer: the time's rank among all_times, shifted by
    device, so a search cannot cross from one device into another (ranks lose no precision)."""
    return codes.astype(np.int64) * (len(all_times) + 1) + np.searchsorted(all_times, times).astype(np.int64)


class AssignmentTable:
    """An immutable snapshot of assignments, sorted by (device, valid_from), for vectorised lookups."""

    def __init__(self, assignments: Sequence[Assignment]) -> None:
        self.rows = sorted(assignments, key=lambda a: (a.device_id, a.valid_from))
        self._devices = np.array(sorted({a.device_id for a in self.rows}), dtype=str)
        self._code = np.searchsorted(self._devices, np.array([a.device_id for a in self.rows], dtype=str))
        self._from = np.array([a.valid_from for a in self.rows], dtype=np.float64)
        self._to = np.array([a.end for a in self.rows], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.rows)

    def _codes(self, device_ids: Devices) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """Each device's code and whether it has any assignment."""
        devices = np.array(list(device_ids), dtype=str)
        if not len(self._devices):
            return np.zeros(len(devices), np.intp), np.zeros(len(devices), bool)
        code = np.minimum(np.searchsorted(self._devices, devices), len(self._devices) - 1)
        return code, self._devices[code] == devices

    def resolve(self, device_ids: Devices, ts: Sequence[float] | FloatArray) -> IntArray:
        """Per (device, ts): the index into `rows` of the assignment valid then, -1 if none."""
        t = np.asarray(ts, dtype=np.float64)
        code, known = self._codes(device_ids)
        if not len(self.rows) or not len(t):
            return np.full(len(t), -1, np.intp)
        times = np.unique(np.concatenate((self._from, t)))
        j = np.searchsorted(_rank_keys(self._code, self._from, times), _rank_keys(code, t, times), "right") - 1
        jj = np.maximum(j, 0)
        ok = known & (j >= 0) & (self._code[jj] == code) & (t < self._to[jj])
        return np.where(ok, j, -1).astype(np.intp)

    def at(self, device_id: str, ts: float) -> Assignment | None:
        """The assignment of one device at one instant."""
        k = int(self.resolve([device_id], [ts])[0])
        return None if k < 0 else self.rows[k]

    def split(
        self, device_ids: Devices, starts: FloatArray, ends: FloatArray
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """Spans cut at their device's handovers (every valid_from and finite valid_to strictly
        inside): (span index, start, end) of each piece, by span then time."""
        starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
        n = len(starts)
        bounds = np.concatenate((self._from, self._to[np.isfinite(self._to)]))
        bcode = np.concatenate((self._code, self._code[np.isfinite(self._to)]))
        if not n or not len(bounds):
            return np.arange(n, dtype=np.intp), starts, ends
        code, known = self._codes(device_ids)
        times = np.unique(np.concatenate((bounds, starts, ends)))
        bkey, once = np.unique(_rank_keys(bcode, bounds, times), return_index=True)  # A's end = B's start: one cut
        bounds = bounds[once]
        first = np.searchsorted(bkey, _rank_keys(code, starts, times), "right")
        last = np.searchsorted(bkey, _rank_keys(code, ends, times), "left")
        cuts = np.where(known, np.maximum(last - first, 0), 0)
        index = np.repeat(np.arange(n, dtype=np.intp), cuts + 1)
        nth = np.arange(len(index)) - np.repeat(np.cumsum(cuts + 1) - (cuts + 1), cuts + 1)
        at = first[index] + nth  # the bound ending piece nth (when nth < cuts)
        piece_start = np.where(nth == 0, starts[index], bounds[np.minimum(at - 1, len(bounds) - 1)])
        piece_end = np.where(nth == cuts[index], ends[index], bounds[np.minimum(at, len(bounds) - 1)])
        return index, piece_start, piece_end

    def handovers(self, device_id: str) -> list[float]:
        """The instants the device's assignments start or end, sorted: where its attribution can change."""
        code, known = self._codes([device_id])
        if not known[0]:
            return []
        first, last = np.searchsorted(self._code, [code[0], code[0] + 1])
        return sorted({t for a in self.rows[first:last] for t in (a.valid_from, a.valid_to) if t is not None})

    def officer_spans(
        self, device_ids: Devices, own: Sequence[str | None], starts: FloatArray, ends: FloatArray
    ) -> tuple[IntArray, FloatArray, FloatArray, npt.NDArray[np.object_]]:
        """Spans (visits) given to officers: (span index, start, end, officer or None), by span then time.

        A span whose record names an officer (`own`) is that officer's, whole; the others are cut
        at their device's handovers and each piece is the officer's assigned at its start.
        """
        devices = np.asarray(list(device_ids), dtype=object)
        named = np.array([o is not None for o in own], dtype=bool)
        free = np.flatnonzero(~named)
        idx, a, b = self.split(devices[free], np.asarray(starts)[free], np.asarray(ends)[free])
        idx = free[idx]
        k = self.resolve(devices[idx], a)
        officers = np.array([a.officer_id for a in self.rows] + [None], dtype=object)
        kept = np.flatnonzero(named)
        index = np.concatenate((kept, idx))
        order = np.lexsort((np.concatenate((np.asarray(starts)[kept], a)), index))
        who = np.concatenate((np.array(own, dtype=object)[kept], officers[k]))
        return (
            index[order],
            np.concatenate((np.asarray(starts, np.float64)[kept], a))[order],
            np.concatenate((np.asarray(ends, np.float64)[kept], b))[order],
            who[order],
        )
