"""Fences changing under a running engine: removed fences close visits, new shapes apply next ping."""

from __future__ import annotations

from support.helpers import square_fence

from geofence.engine import Engine
from geofence.index import FenceIndex
from geofence.params import EngineParams
from geofence.pings import PingBatch

INSIDE = (0.0005, 0.0005)  # lat, lon inside the 0.001 deg square at (0, 0)


def pings(*rows: tuple[str, float, tuple[float, float]]) -> PingBatch:
    return PingBatch.from_columns([r[0] for r in rows], [r[1] for r in rows], [r[2][0] for r in rows],
                                  [r[2][1] for r in rows])  # fmt: skip


def test_engine_fence_removed_closes_open_visit_at_last_ping_with_reason() -> None:
    engine = Engine(
        FenceIndex([square_fence("A"), square_fence("B", 0.01, 0.01)], version=1), EngineParams(max_lateness_s=0)
    )
    entered = engine.process(pings(("d1", 0, INSIDE), ("d1", 60, INSIDE))).events
    closed = engine.set_index(FenceIndex([square_fence("B", 0.01, 0.01)], version=2))
    later = engine.process(pings(("d1", 120, INSIDE))).events
    assert [(e.type.value, e.fence_id, e.ts, e.fence_version) for e in entered] == [("enter", "A", 0.0, 1)]
    assert [(e.type.value, e.fence_id, e.ts, e.dwell_s, e.reason.value if e.reason else None) for e in closed] == [
        ("exit", "A", 60.0, 60.0, "fence_removed")
    ]
    assert closed[0].to_dict()["fence_version"] == 2  # the fence set that no longer has A
    assert later == []  # no fence A any more: nothing to enter
    assert engine.dwell_totals()[("d1", "A")] == (1, 60.0)


def test_engine_fence_reshaped_applies_from_next_ping() -> None:
    engine = Engine(FenceIndex([square_fence("A")], version=1), EngineParams(max_lateness_s=0))
    engine.process(pings(("d1", 0, INSIDE)))
    assert engine.set_index(FenceIndex([square_fence("A", 0.005, 0.005)], version=2)) == []  # same id: kept open
    left = engine.process(pings(("d1", 30, INSIDE))).events
    assert [(e.type.value, e.fence_id, e.ts, e.dwell_s, e.fence_version) for e in left] == [
        ("exit", "A", 30.0, 30.0, 2)
    ]
