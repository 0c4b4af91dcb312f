"""Small helpers for the hand-worked engine and fence tests.

Fences are tiny axis-aligned squares given in degrees; tracks are lists of `P` rows with ts as
seconds after T0. `run` feeds a track to a fresh Engine (optionally cut into batches), flushes it
and returns the event dicts a consumer would receive; `brief` turns those dicts into short tuples
with times as seconds after T0, so expected figures can be written by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from geofence.engine import BatchResult, Engine
from geofence.fences import Fence, make_fence
from geofence.index import FenceIndex
from geofence.params import EngineParams
from geofence.pings import PingBatch

#: Start of every hand-made timeline: 2026-11-21 22:00:00 UTC.
T0 = datetime(2026, 11, 21, 22, 0, 0, tzinfo=UTC).timestamp()
#: Metres per degree of latitude (mean Earth radius 6 371 008.8 m x pi / 180).
M_PER_DEG_LAT = 111_195.0
NAN = math.nan


def m_per_deg_lon(lat: float) -> float:
    """Metres per degree of longitude at a latitude (spherical Earth)."""
    return M_PER_DEG_LAT * math.cos(math.radians(lat))


def square_geometry(lon0: float, lat0: float, side: float) -> dict[str, Any]:
    """A GeoJSON Polygon: the axis-aligned square [lon0, lon0+side] x [lat0, lat0+side], degrees."""
    lon1, lat1 = lon0 + side, lat0 + side
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


def square_fence(
    fence_id: str, lon0: float = 0.0, lat0: float = 0.0, side: float = 0.001, buffer_m: float = 0.0
) -> Fence:
    return make_fence(fence_id, square_geometry(lon0, lat0, side), buffer_m=buffer_m)


def fence_a() -> Fence:
    """A: the 0.001 deg square lon [0, 0.001] x lat [0, 0.001] (about 111 m a side)."""
    return square_fence("A", 0.0, 0.0)


def fence_b() -> Fence:
    """B: lon [0.0005, 0.0015] x lat [0, 0.001], overlapping the east half of A."""
    return square_fence("B", 0.0005, 0.0)


#: Named places, (lat, lon), relative to fences A and B.
PLACES: dict[str, tuple[float, float]] = {
    "out": (0.0005, -0.0005),  # west of A, in neither fence
    "a": (0.0005, 0.00025),  # in A only
    "ab": (0.0005, 0.00075),  # in A and in B (the overlap)
    "b": (0.0005, 0.00125),  # in B only
    "far": (0.0005, 0.01),  # about 1 km east of both
}


@dataclass(frozen=True)
class P:
    """One ping: seconds after T0, a place name or (lat, lon), device, accuracy, carried fields."""

    t: float
    where: str | tuple[float, float]
    device: str = "d1"
    acc: float = NAN
    extras: dict[str, Any] | None = field(default=None)

    @property
    def latlon(self) -> tuple[float, float]:
        return PLACES[self.where] if isinstance(self.where, str) else self.where


def batch(pings: Sequence[P]) -> PingBatch:
    return PingBatch.from_columns(
        [p.device for p in pings],
        [T0 + p.t for p in pings],
        [p.latlon[0] for p in pings],
        [p.latlon[1] for p in pings],
        [p.acc for p in pings],
        extras=[p.extras for p in pings],
    )


def make_engine(fences: Sequence[Fence] | None = None, params: EngineParams | None = None) -> Engine:
    return Engine(FenceIndex([fence_a(), fence_b()] if fences is None else fences), params or EngineParams())


def feed(
    engine: Engine, pings: Sequence[P], batch_size: int | None = None
) -> tuple[list[dict[str, Any]], list[BatchResult]]:
    """Feed pings in the given order, in batches of batch_size (all at once when None); no flush."""
    size = batch_size or max(len(pings), 1)
    events: list[dict[str, Any]] = []
    results: list[BatchResult] = []
    for start in range(0, len(pings), size):
        result = engine.process(batch(pings[start : start + size]))
        results.append(result)
        events += [e.to_dict() for e in result.events]
    return events, results


def run(
    pings: Sequence[P],
    params: EngineParams | None = None,
    fences: Sequence[Fence] | None = None,
    batch_size: int | None = None,
) -> tuple[list[dict[str, Any]], Engine]:
    """Feed a whole track to a fresh engine, flush it, return the event dicts and the engine."""
    engine = make_engine(fences, params)
    events, _ = feed(engine, pings, batch_size)
    events += [e.to_dict() for e in engine.flush()]
    return events, engine


def seconds(iso: str) -> float:
    """An event's ISO 8601 ts as seconds after T0."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() - T0


def brief(events: Sequence[dict[str, Any]], device: bool = False) -> list[tuple[Any, ...]]:
    """Events as short tuples, times in seconds after T0.

    enter: ("enter", fence, t); exit: ("exit", fence, t, dwell_s, reason);
    signal_lost: ("signal_lost", t, gap_start); signal_restored: ("signal_restored", t, gap_s).
    With device=True each tuple starts with the device id.
    """
    out: list[tuple[Any, ...]] = []
    for e in events:
        t = seconds(e["ts"])
        if e["type"] == "enter":
            row: tuple[Any, ...] = ("enter", e["fence_id"], t)
        elif e["type"] == "exit":
            row = ("exit", e["fence_id"], t, e["dwell_s"], e["reason"])
        elif e["type"] == "signal_lost":
            row = ("signal_lost", t, seconds(e["gap_start"]))
        else:
            row = ("signal_restored", t, e["gap_s"])
        out.append((e["device_id"], *row) if device else row)
    return out


#: Parameters and an accuracy the hand-worked rule tests share (tests/geofence/test_engine_*.py).
DEBOUNCE_30 = EngineParams(debounce_s=30.0)
NO_LATENESS = EngineParams(max_lateness_s=0.0)
BAD = 500.0  # an accuracy worse than max_accuracy_m (100): an uncertain ping
