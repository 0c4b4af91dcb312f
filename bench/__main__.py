"""`make bench`: throughput and memory of the hot paths, printed as figures.

Targets (2-core machine): engine >= 1,000,000 pings/s on pre-parsed batches, whole
`replay` >= 400,000 pings/s including CSV parsing, < 2 KB of engine state per device.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bench.api import bench_api
from bench.decoders import main as bench_decoders
from bench.live import bench_live
from bench.pipeline import bench_pipeline
from bench.replay import bench_replay_targets
from geofence.engine import Engine
from geofence.index import FenceIndex
from geofence.params import EngineParams
from ingest.csv_pings import write_ping_csv
from ingest.geojson_fences import fences_from_geojson
from services.replay import replay
from services.workload import Workload, make_workload

BATCH = 65_536
HOURS = 3


def _engine_rate(w: Workload, index: FenceIndex, params: EngineParams, repeats: int = 3) -> tuple[float, int]:
    """Best of a few runs: pings/s through a fresh engine, and the events it made."""
    best, events = 0.0, 0
    for _ in range(repeats):
        engine = Engine(index, params)
        started = time.perf_counter()
        events = 0
        for i in range(0, len(w.pings), BATCH):
            events += len(engine.process(w.pings.take(slice(i, i + BATCH))).events)
        events += len(engine.flush())
        best = max(best, len(w.pings) / (time.perf_counter() - started))
    return best, events


def bench_engine() -> None:
    print("engine, pre-parsed batches of", BATCH, "pings (best of 3)")
    for n_fences, debounce in ((2_000, 0.0), (2_000, 30.0), (10_000, 0.0)):
        w = make_workload(n_fences, 600, HOURS * 3600)
        started = time.perf_counter()
        index = FenceIndex(fences_from_geojson(w.fences))
        build = time.perf_counter() - started
        rate, events = _engine_rate(w, index, EngineParams(debounce_s=debounce))
        print(
            f"  {n_fences:>6} fences  600 devices  {HOURS} h  debounce {debounce:>4.0f} s: {len(w.pings):>7} pings  "
            f"{events:>6} events  index built in {build * 1000:.0f} ms  {rate:>12,.0f} pings/s"
        )


def bench_replay() -> None:
    print("hotspots replay, whole command (CSV parse + engine + events JSONL + dwell CSV)")
    w = make_workload(2_000, 600, HOURS * 3600)
    with tempfile.TemporaryDirectory() as tmp:
        fences = Path(tmp, "fences.geojson")
        pings = Path(tmp, "pings.csv")
        fences.write_text(json.dumps(w.fences))
        write_ping_csv(pings, w.pings)
        best = None
        for _ in range(3):
            with Path(tmp, "events.jsonl").open("w") as out:
                s = replay(fences, pings, EngineParams(), out, lambda _: None, dwell_out=Path(tmp, "dwell.csv"))
            best = s if best is None or s.seconds < best.seconds else best
        assert best is not None
        size = pings.stat().st_size / 1e6
        print(f"  {best.rows} rows ({size:.0f} MB), {best.events} events: {best.rows / best.seconds:,.0f} pings/s")


def bench_memory() -> None:
    print("memory")
    n_devices = 20_000
    w = make_workload(2_000, n_devices, 1800, interval_s=30.0, seed=11)
    index = FenceIndex(fences_from_geojson(w.fences))
    gc.collect()
    tracemalloc.start()
    engine = Engine(index, EngineParams())
    for i in range(0, len(w.pings), BATCH):
        engine.process(w.pings.take(slice(i, i + BATCH)))
    engine.flush()
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ledger = sum(len(f) for f in engine.machine.ledger.values())
    print(
        f"  engine state after {len(w.pings)} pings of {n_devices} devices: {current / 1e6:.1f} MB = "
        f"{current / n_devices:,.0f} bytes per device (incl. {ledger} dwell-ledger rows)"
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this benchmark process: {peak_mb:.0f} MB")


def main() -> int:
    np.seterr(all="ignore")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}")
    bench_engine()
    bench_replay()
    bench_replay_targets()
    bench_decoders()
    bench_memory()
    bench_pipeline()
    bench_live()
    bench_api()
    return 0


if __name__ == "__main__":
    sys.exit(main())
