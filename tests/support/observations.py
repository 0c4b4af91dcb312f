"""Engine runs recorded into a store as the pipeline records them, for the store and measures tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from geofence.engine import Engine
from geofence.events import Event
from geofence.index import FenceIndex
from geofence.params import EngineParams
from ingest.geojson_fences import fences_from_geojson
from services.store import (
    DwellRow,
    Observations,
    Store,
    devices_now,
    devices_table,
    events_table,
    lost_gaps,
    presence_table,
    visits,
)
from services.workload import make_workload
from support.helpers import T0, P, batch, make_engine


@dataclass(frozen=True)
class Recorded:
    """An engine run (a workload or a hand-made track) and the observations of each of its batches."""

    engine: Engine
    batches: list[Observations]
    start: float
    end: float


def engine_run(pings: list[P] | None = None, batch_size: int = 4) -> Recorded:
    """Feed a hand-made track (or, with pings=None, a workload) in batches and flush; one
    Observations per batch: its events and the devices it changed, as the pipeline records them."""
    if pings is None:
        w = make_workload(30, 30, 3 * 3600, seed=11, gaps_per_hour=1.5)
        engine = Engine(FenceIndex(fences_from_geojson(w.fences)), EngineParams())
        cuts = [w.pings.take(slice(i, i + 700)) for i in range(0, len(w.pings), 700)]
        ts = w.pings.ts.tolist()
    else:
        engine = make_engine()
        cuts = [batch(pings[i : i + batch_size]) for i in range(0, len(pings), batch_size)]
        ts = [T0 + p.t for p in pings]
    batches: list[Observations] = []
    for cut in cuts:
        events = engine.process(cut).events
        batches.append(Observations(events, devices_now(engine.checkpoint()[1])))
    events = engine.flush()
    batches.append(Observations(events, devices_now(engine.checkpoint()[1])))
    return Recorded(engine, batches, min(ts), max(ts) + 1.0)


def published(rec: Recorded) -> list[dict[str, Any]]:
    """Every event of the run as published."""
    return [e.to_dict() for obs in rec.batches for e in obs.events if isinstance(e, Event)]


async def record_all(store: Store, rec: Recorded, times: int = 1) -> None:
    for obs in rec.batches:
        for _ in range(times):
            await store.record(obs.events, obs.devices)


def engine_presence(engine: Engine) -> dict[tuple[str, str], float]:
    ids = engine.devices.ids
    return {(str(ids[s]), f): t for s, fences in engine.machine.inside.items() for f, t in fences.items()}


async def stored_presence(store: Store, **filters: Any) -> dict[tuple[str, str], float]:
    return {(p.device_id, f): p.since for f, rows in (await store.presence(**filters)).items() for p in rows}


async def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the query tables (devices without their wall-clock updated_at)."""
    d = devices_table.c
    queries = {
        "events": sa.select(events_table).order_by(events_table.c.seq),
        "visits": sa.select(visits).order_by(*visits.primary_key.columns),
        "presence": sa.select(presence_table).order_by(*presence_table.primary_key.columns),
        "lost_gaps": sa.select(lost_gaps).order_by(*lost_gaps.primary_key.columns),
        "devices": sa.select(*(c for c in devices_table.c if c.name != "updated_at")).order_by(d.device_id),
    }
    async with store.read() as conn:
        return {name: [tuple(r) for r in (await conn.execute(q)).all()] for name, q in queries.items()}


def by_key(rows: list[DwellRow]) -> dict[tuple[Any, ...], DwellRow]:
    return {(r.fence_id, r.device_id, r.bucket): r for r in rows}


def track(t0: int, t1: int, inside: tuple[int, int], where: str = "a", device: str = "d1", **kw: Any) -> list[P]:
    """A ping every 60 s from t0 to t1 (seconds after T0), in `where` for inside[0] <= t < inside[1]."""
    return [P(t, where if inside[0] <= t < inside[1] else "out", device, **kw) for t in range(t0, t1 + 1, 60)]


def officers() -> list[P]:
    """d1 (PC1, Alpha 1) stays in A; d2 (PC2, Bravo 2) goes into A and B; d3 stays out."""
    one = {"officer_id": "PC1", "callsign": "Alpha 1"}
    two = {"officer_id": "PC2", "callsign": "Bravo 2", "source": "tetra"}
    pings = [P(t, "a", "d1", extras=one) for t in range(0, 601, 60)]
    pings += [P(t, "out" if t < 120 else "ab", "d2", extras=two) for t in range(0, 601, 60)]
    pings += [P(t, "out", "d3") for t in range(0, 601, 60)]
    return sorted(pings, key=lambda p: p.t)
