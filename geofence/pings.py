"""A batch of pings in columnar form: the unit the engine works on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]

#: Optional ping fields carried through unchanged to events and presence.
EXTRA_FIELDS: tuple[str, ...] = (
    "officer_id",
    "callsign",
    "status",
    "source",
    "speed_mps",
    "heading_deg",
)


@dataclass(frozen=True, slots=True)
class PingBatch:
    """Validated pings, one array per field, in arrival order.

    ts is event time in epoch seconds (UTC); accuracy_m is NaN where unknown.
    extras holds, per ping, a mapping of the optional carried fields or None.
    """

    device_id: ObjArray
    ts: FloatArray
    lat: FloatArray
    lon: FloatArray
    accuracy_m: FloatArray
    extras: ObjArray = field(default_factory=lambda: np.empty(0, dtype=object))

    def __post_init__(self) -> None:
        n = len(self.ts)
        for name in ("device_id", "lat", "lon", "accuracy_m"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"PingBatch column {name} has {len(getattr(self, name))} rows, ts has {n}")
        if len(self.extras) not in (0, n):
            raise ValueError(f"PingBatch extras has {len(self.extras)} rows, ts has {n}")

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_columns(
        cls,
        device_id: Sequence[str] | ObjArray,
        ts: Sequence[float] | FloatArray,
        lat: Sequence[float] | FloatArray,
        lon: Sequence[float] | FloatArray,
        accuracy_m: Sequence[float] | FloatArray | None = None,
        extras: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> PingBatch:
        """Build a batch from plain sequences (accuracy defaults to unknown)."""
        n = len(ts)
        dev = np.empty(n, dtype=object)
        dev[:] = list(device_id)
        acc = np.full(n, np.nan) if accuracy_m is None else np.asarray(accuracy_m, dtype=np.float64)
        ext = np.empty(0 if extras is None else n, dtype=object)
        if extras is not None:
            ext[:] = list(extras)
        return cls(
            device_id=dev,
            ts=np.asarray(ts, dtype=np.float64),
            lat=np.asarray(lat, dtype=np.float64),
            lon=np.asarray(lon, dtype=np.float64),
            accuracy_m=acc,
            extras=ext,
        )

    def take(self, idx: IntArray | slice) -> PingBatch:
        """The rows at idx, as a new batch."""
        return PingBatch(
            device_id=self.device_id[idx],
            ts=self.ts[idx],
            lat=self.lat[idx],
            lon=self.lon[idx],
            accuracy_m=self.accuracy_m[idx],
            extras=self.extras[idx] if len(self.extras) else self.extras,
        )
