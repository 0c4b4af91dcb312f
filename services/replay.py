"""`hotspots replay`: pings (CSV, GPX, NMEA, PEI, or a folder of them) and GeoJSON fences in, events and dwell out.

The pings (``ingest.ping_files``: formats, device ids, how a folder is merged in time order)
are fed to the same Engine as the live pipeline, in stream order, one chunk at a time, so
memory holds a chunk per file plus the per-device state however long the files are. Replay
equals live: rows are checked by the same input rules (ingest.rules), a ping naming an unknown
fence_id is refused as the matcher refuses it, and events are the same bytes (Event.to_json).
"""

from __future__ import annotations

import csv
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from geofence.engine import Engine
from geofence.events import Event, events_jsonl
from geofence.index import FenceIndex
from geofence.params import EngineParams
from geofence.pings import IntArray
from ingest.geojson_fences import load_fences
from ingest.ping_files import PingFiles
from ingest.rules import unknown_fence, unknown_fence_rows

Report = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    rows: int
    bad_rows: int
    applied: int
    uncertain: int
    duplicate: int
    late: int
    events: int
    seconds: float

    def line(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        return (
            f"replayed {self.rows} rows: {self.applied} applied ({self.uncertain} uncertain), "
            f"{self.duplicate} duplicate, {self.late} late, {self.bad_rows} bad; "
            f"{self.events} events in {self.seconds:.2f} s ({rate:,.0f} rows/s)"
        )


def write_events(events: list[Event], out: BinaryIO) -> None:
    """Events as JSON lines, the bytes the live pipeline writes for them (Event.to_json)."""
    if events:
        out.write(events_jsonl(events))


def replay(
    fences_path: Path,
    pings_path: Path,
    params: EngineParams,
    events_out: BinaryIO,
    report: Report,
    dwell_out: Path | None = None,
    devices_out: Path | None = None,
    partitions: int = 1,
    device_id: str | None = None,
) -> ReplaySummary:
    """Run the engine over a pings file or folder; bad and late rows are reported with file and line.

    device_id: of the GPX and NMEA files (default: each file's stem).

    With partitions > 1 the devices are split as Kafka's default partitioner splits a topic of
    that many partitions, each with its own engine (and event time), exactly as the live
    matcher runs: the same input then gives the same events offline and live.
    """
    started = time.perf_counter()
    gc.freeze()  # the modules' objects never die: spare the collector walking them (~0.2 s a run)
    fences = load_fences(fences_path)
    for fence in fences:
        for warning in fence.warnings:
            report(f"warning: {warning}")
    index = FenceIndex(fences)
    engines = [Engine(index, params) for _ in range(partitions)]
    partition_of: dict[str, int] = {}
    rows = bad = events = 0
    source = PingFiles(pings_path, device_id)
    names = source.names
    for chunk in source:
        rows += len(chunk.batch) + len(chunk.errors)
        bad += len(chunk.errors)
        for f, error in chunk.errors:
            report(f"{names[f]}:{error.line}: {error.reason}")
        pings, files, lines = chunk.batch, chunk.files, chunk.lines
        unknown = unknown_fence_rows(pings.extras.tolist(), index.position) if len(pings.extras) else []
        if unknown:  # refused as live refuses them (dead-letter there, a bad row here)
            bad += len(unknown)
            for i in unknown:
                report(f"{names[files[i]]}:{lines[i]}: {unknown_fence(pings.extras[i]['fence_id'])}")
            keep = np.setdiff1d(np.arange(len(pings)), unknown)
            pings, files, lines = pings.take(keep), files[keep], lines[keep]
        for engine, rows_of_engine in _split(pings.device_id, engines, partition_of):
            batch = pings if rows_of_engine is None else pings.take(rows_of_engine)
            result = engine.process(batch)
            for i in result.late.tolist():
                row = i if rows_of_engine is None else int(rows_of_engine[i])
                report(
                    f"{names[files[row]]}:{lines[row]}: late: more than {params.max_lateness_s:g} s behind the "
                    f"latest ping of device {batch.device_id[i]!r}, not applied"
                )
            write_events(result.events, events_out)
            events += len(result.events)
    for engine in engines:
        final = engine.flush()
        write_events(final, events_out)
        events += len(final)
    if dwell_out is not None:
        write_dwell(engines, dwell_out)
    if devices_out is not None:
        write_device_totals(engines, devices_out)
    counts = [e.counters for e in engines]
    return ReplaySummary(
        rows, bad, sum(c.applied for c in counts), sum(c.uncertain for c in counts),
        sum(c.duplicate for c in counts), sum(c.late for c in counts), events, time.perf_counter() - started,
    )  # fmt: skip


def partition_for(device_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a message keyed by device_id."""
    from aiokafka.partitioner import murmur2  # only with --partitions: aiokafka costs ~25 ms to import

    return int(murmur2(device_id.encode()) & 0x7FFFFFFF) % partitions


def _split(
    device_ids: np.ndarray, engines: list[Engine], partition_of: dict[str, int]
) -> list[tuple[Engine, IntArray | None]]:
    """Each engine with the rows of its partition (None: all rows, the one-partition case)."""
    if len(engines) == 1:
        return [(engines[0], None)]
    n = len(engines)
    parts = np.fromiter(
        (partition_of.setdefault(d, partition_for(d, n)) for d in device_ids.tolist()), np.int64, len(device_ids)
    )
    return [(engines[p], np.flatnonzero(parts == p)) for p in range(n)]


def write_dwell(engines: list[Engine], path: Path) -> None:
    """device_id,fence_id,visits,dwell_s over the whole input, sorted for easy diffing."""
    totals = {k: v for e in engines for k, v in e.dwell_totals().items()}
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["device_id", "fence_id", "visits", "dwell_s"])
        for (device, fence), (visits, dwell) in sorted(totals.items()):
            w.writerow([device, fence, visits, f"{dwell:.3f}"])


def write_device_totals(engines: list[Engine], path: Path) -> None:
    """Per device: pings and seconds active, inside any fence, outside all fences, lost."""
    totals = {k: v for e in engines for k, v in e.device_totals().items()}
    cols = ["pings", "active_s", "inside_s", "outside_s", "lost_s"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["device_id", *cols])
        for device, t in sorted(totals.items()):
            w.writerow([device, int(t["pings"]), *(f"{t[c]:.3f}" for c in cols[1:])])
