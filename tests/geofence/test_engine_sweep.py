"""The batch sweep (geofence/sweep.py, debounce_s = 0) against the per-ping walk it replaces.

The property tests compare events with the reference model as multisets and per device; here
the two engine paths must agree exactly: the whole event list in order (replay writes it as is),
dwell and device totals to the bit, and snapshots byte for byte (dict order included), on
streams with many devices, overlapping fences, uncertain fixes, signal losses, duplicates,
pings out of order, random batch splits, restores from snapshots and a fence removed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from support.helpers import square_fence

import geofence.engine as engine_module
from geofence.engine import Engine
from geofence.events import Event
from geofence.fences import Fence
from geofence.index import FenceIndex
from geofence.params import EngineParams
from geofence.pings import PingBatch

T0 = 1_790_000_000.0
EXTRAS: list[dict[str, Any] | None] = [None, None, None, {"officer_id": "o-1", "callsign": "K1"}]


def fences() -> list[Fence]:
    """Six 0.001 deg squares in a row, each overlapping the next, ids not in position order."""
    return [square_fence(f"f{(7 * i) % 6}", 0.0006 * i, 0.0) for i in range(6)]


def stream(seed: int, lateness: float) -> PingBatch:
    """Twelve devices hopping about the fences, with noise, poor fixes, long silences and repeats,
    sorted by ts then shuffled within lateness."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, float, float, float, float, dict[str, Any] | None]] = []
    for d in range(12):
        ts = T0 + float(rng.integers(0, 60))
        for _ in range(int(rng.integers(5, 60))):
            ts += float(rng.choice([1.0, 7.5, 20.0, 40.0, 400.0]))
            lon = (
                float(rng.uniform(-0.0005, 0.004)) if rng.random() < 0.4 else 0.0006 * int(rng.integers(0, 6)) + 0.0005
            )
            acc = float(rng.choice([np.nan, 5.0, 100.0, 150.0]))
            rows.append((f"u{(5 * d) % 12}", ts, 0.0005 + float(rng.normal(0, 0.0002)), lon, acc, EXTRAS[d % 4]))
            if rng.random() < 0.05:
                rows.append(rows[-1])  # a duplicate
    rows.sort(key=lambda r: r[1])
    jitter = rng.uniform(0, lateness, len(rows)) if lateness else np.zeros(len(rows))
    order = np.argsort(np.array([r[1] for r in rows]) + jitter, kind="stable")
    rows = [rows[i] for i in order.tolist()]
    return PingBatch.from_columns(*(list(c) for c in zip(*rows, strict=True)))  # type: ignore[arg-type]


def run(pings: PingBatch, params: EngineParams, cuts: list[int]) -> tuple[list[Event], Any, Any, list[str]]:
    """Events, totals and a snapshot after each batch; restored from a snapshot now and then, and
    fence f2 removed after the second batch."""
    engine = Engine(FenceIndex(fences(), version=1), params)
    events: list[Event] = []
    snapshots: list[str] = []
    for k, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, len(pings)], strict=True)):
        if k % 3 == 2:
            engine = Engine.restore(json.loads(json.dumps(engine.snapshot())), engine.index, params)
        if k == 2:
            events += engine.set_index(FenceIndex([f for f in fences() if f.id != "f2"], version=2))
        events += engine.process(pings.take(slice(lo, hi))).events
        snapshots.append(json.dumps(engine.snapshot()))
    events += engine.flush()
    snapshots.append(json.dumps(engine.snapshot()))
    return events, engine.dwell_totals(), engine.device_totals(), snapshots


@pytest.mark.parametrize("seed", range(12))
def test_sweep_gives_exactly_the_events_totals_and_snapshots_of_the_per_ping_walk(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1000 + seed)
    params = EngineParams(
        signal_timeout_s=float(rng.choice([60.0, 300.0])), max_lateness_s=float(rng.choice([0.0, 30.0]))
    )
    pings = stream(seed, params.max_lateness_s)
    cuts = sorted(rng.choice(len(pings), size=int(rng.integers(1, 12)), replace=False).tolist())
    swept = run(pings, params, cuts)
    monkeypatch.setattr(engine_module, "sweep", lambda *args, **kwargs: None)  # the walk for every batch
    walked = run(pings, params, cuts)
    assert len(swept[0]) > 50
    assert swept[0] == walked[0]
    assert [type(e.reason) for e in swept[0]] == [type(e.reason) for e in walked[0]]
    assert swept[1:] == walked[1:]
