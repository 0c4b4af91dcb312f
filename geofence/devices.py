"""Per-device columns: dense slots so per-device state is read and written as numpy arrays."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat

import numpy as np

from geofence.pings import FloatArray, IntArray, ObjArray

#: Columns kept per device, float64; NaN means "never".
FLOAT_COLUMNS: tuple[str, ...] = (
    "latest_seen",  # greatest ts accepted (reorder stage)
    "last_ts",  # ts of the last applied ping
    "last_lat",
    "last_lon",
    "last_acc",  # accuracy_m of the last applied ping (NaN: unknown): a poor fix is shown to the officer
    "pending_since",  # latest start of a pending debounce candidate
    "active_s",  # time between consecutive applied pings not spanning a loss
    "lost_s",  # time inside signal-loss gaps
    "covered_s",  # finished time inside at least one fence
    "covered_since",  # start of the current inside-anything stretch
)


class DeviceTable:
    """Device ids mapped to dense slots, with one growable array per column."""

    __slots__ = ("_slot", "extras", "ids", "lost", "n", "pings", *FLOAT_COLUMNS)

    latest_seen: FloatArray
    last_ts: FloatArray
    last_lat: FloatArray
    last_lon: FloatArray
    last_acc: FloatArray
    pending_since: FloatArray
    active_s: FloatArray
    lost_s: FloatArray
    covered_s: FloatArray
    covered_since: FloatArray

    def __init__(self, capacity: int = 1024) -> None:
        self._slot: dict[str, int] = {}
        self.n = 0
        self.ids: ObjArray = np.empty(capacity, dtype=object)
        self.lost = np.zeros(capacity, dtype=bool)
        self.pings = np.zeros(capacity, dtype=np.int64)
        self.extras: ObjArray = np.empty(capacity, dtype=object)
        for name in FLOAT_COLUMNS:
            setattr(self, name, np.full(capacity, np.nan))
        self.active_s[:] = 0.0
        self.lost_s[:] = 0.0
        self.covered_s[:] = 0.0

    def __len__(self) -> int:
        return self.n

    def column(self, name: str) -> FloatArray:
        col: FloatArray = getattr(self, name)
        return col

    def slot_of(self, device_id: str) -> int | None:
        return self._slot.get(device_id)

    def slots(self, device_ids: ObjArray) -> IntArray:
        """Slots for a batch of ids, creating new devices in order of first appearance."""
        get = self._slot.get
        slots = np.fromiter(map(get, device_ids, repeat(-1)), dtype=np.int64, count=len(device_ids))
        missing = np.flatnonzero(slots < 0)
        if len(missing):
            fresh = {device_id: self._add(device_id) for device_id in dict.fromkeys(device_ids[missing].tolist())}
            slots[missing] = [fresh[d] for d in device_ids[missing].tolist()]
        return slots

    def _add(self, device_id: str) -> int:
        slot = self._slot.get(device_id)
        if slot is not None:
            return slot
        slot = self.n
        if slot == len(self.ids):
            self._grow(2 * len(self.ids))
        self._slot[device_id] = slot
        self.ids[slot] = device_id
        self.n += 1
        return slot

    def _grow(self, capacity: int) -> None:
        for name in ("ids", "lost", "pings", "extras", *FLOAT_COLUMNS):
            old = getattr(self, name)
            new = np.empty(capacity, dtype=old.dtype)
            if old.dtype == np.float64:
                new[:] = 0.0 if name in ("active_s", "lost_s", "covered_s") else np.nan
            elif old.dtype != object:
                new[:] = 0
            new[: len(old)] = old
            setattr(self, name, new)

    def rows(self, slots: Iterable[int]) -> dict[str, dict[str, object]]:
        """Plain per-device records (JSON-serialisable) for a snapshot.

        Read column by column (a checkpoint takes thousands of devices on the matcher's loop):
        NaN becomes None, numbers Python floats, in the key order of FLOAT_COLUMNS.
        """
        idx = np.fromiter(slots, dtype=np.int64)
        keys = (*FLOAT_COLUMNS, "lost", "pings", "extras")
        cols = [_nums(getattr(self, name)[idx]) for name in FLOAT_COLUMNS]
        cols += [self.lost[idx].tolist(), self.pings[idx].tolist(), self.extras[idx].tolist()]
        ids = [str(d) for d in self.ids[idx].tolist()]
        return dict(zip(ids, (dict(zip(keys, values, strict=True)) for values in zip(*cols, strict=True)), strict=True))

    def load(self, device_id: str, rec: dict[str, object]) -> int:
        """Restore one device from a record made by rows()."""
        slot = self._add(device_id)
        for name in FLOAT_COLUMNS:
            value = rec.get(name)
            getattr(self, name)[slot] = np.nan if value is None else float(value)  # type: ignore[arg-type]
        self.lost[slot] = bool(rec.get("lost", False))
        self.pings[slot] = int(rec.get("pings", 0))  # type: ignore[call-overload]
        self.extras[slot] = rec.get("extras")
        return slot


def _nums(values: FloatArray) -> list[float | None]:
    out: list[float | None] = values.tolist()
    for i in np.flatnonzero(np.isnan(values)).tolist():
        out[i] = None
    return out
