"""Incremental checkpoints: the stream state plus every checkpoint's changed devices restore the engine."""

from __future__ import annotations

import json
from typing import Any

from geofence.engine import Engine
from geofence.index import FenceIndex
from geofence.params import EngineParams
from geofence.pings import PingBatch
from ingest.geojson_fences import fences_from_geojson
from services.workload import make_workload


def test_engine_incremental_checkpoints_restore_same_events_as_uninterrupted() -> None:
    w = make_workload(30, 25, 3600, seed=5, interval_s=15.0)
    index = FenceIndex(fences_from_geojson(w.fences))
    params = EngineParams(max_lateness_s=20, signal_timeout_s=120)
    uninterrupted = Engine(index, params)
    expected = [
        e.to_dict()
        for i in range(0, len(w.pings), 500)
        for e in uninterrupted.process(w.pings.take(slice(i, i + 500))).events
    ]
    expected += [e.to_dict() for e in uninterrupted.flush()]

    engine = Engine(index, params)
    stored: dict[str, Any] = {}
    devices: dict[str, Any] = {}
    got: list[dict[str, Any]] = []
    for n, i in enumerate(range(0, len(w.pings), 500)):
        got += [e.to_dict() for e in engine.process(w.pings.take(slice(i, i + 500))).events]
        if n % 3 == 2:  # checkpoint every third batch, then carry on from what the store holds
            stream, changed = engine.checkpoint()
            assert len(changed) <= len(engine.devices)
            stored = json.loads(json.dumps(stream))
            devices.update(json.loads(json.dumps(changed)))
            engine = Engine.restore({**stored, "devices": devices}, index, params)
    got += [e.to_dict() for e in engine.flush()]
    assert len(expected) > 100
    assert got == expected


def test_engine_checkpoint_lists_only_changed_devices() -> None:
    w = make_workload(10, 8, 600, seed=2)
    engine = Engine(FenceIndex(fences_from_geojson(w.fences)), EngineParams(max_lateness_s=0))
    engine.process(w.pings)
    _, first = engine.checkpoint()
    assert len(first) == 8
    _, second = engine.checkpoint()
    assert second == {}
    one = w.pings.take(w.pings.device_id == w.pings.device_id[-1])
    later = one.take(slice(len(one) - 1, None))
    engine.process(type(later)(later.device_id, later.ts + 5, later.lat, later.lon, later.accuracy_m))
    _, third = engine.checkpoint()
    assert list(third) == [str(w.pings.device_id[-1])]


def test_engine_checkpoint_includes_devices_changed_by_released_held_pings() -> None:
    # X's two pings are held (lateness 30 s) at the first checkpoint; Y's ping at 100 s releases
    # them, so X enters A. The second checkpoint must carry X, or the restored engine misses X's exit.
    square = {"type": "Polygon", "coordinates": [[[0, 0], [0.001, 0], [0.001, 0.001], [0, 0.001], [0, 0]]]}
    doc = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "id": "A", "properties": {}, "geometry": square}],
    }
    index = FenceIndex(fences_from_geojson(doc))
    params = EngineParams(max_lateness_s=30, signal_timeout_s=600)
    engine = Engine(index, params)
    engine.process(PingBatch.from_columns(["X", "X"], [0, 10], [0.0005, 0.0005], [0.0005, 0.0005]))
    stream, devices = engine.checkpoint()
    enter = engine.process(PingBatch.from_columns(["Y"], [100], [0.0005], [0.01])).events
    stream, changed = engine.checkpoint()
    devices.update(changed)
    restored = Engine.restore(json.loads(json.dumps({**stream, "devices": devices})), index, params)
    restored.process(PingBatch.from_columns(["X"], [200], [0.0005], [0.01]))
    exits = restored.flush()
    assert [(e.type.value, e.device_id, e.ts) for e in enter] == [("enter", "X", 0.0)]
    assert [(e.type.value, e.device_id, e.ts, e.dwell_s) for e in exits] == [("exit", "X", 200.0, 200.0)]
