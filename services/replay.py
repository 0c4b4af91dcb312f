"""`hotspots replay`: a CSV of pings and a GeoJSON of fences in, events and dwell out.

The file is fed to the same Engine as the live pipeline, in file order, one chunk at a
time, so memory holds one chunk plus the per-device state however long the file is.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from geofence.engine import Engine
from geofence.events import Event
from geofence.index import FenceIndex
from geofence.params import EngineParams
from ingest.csv_pings import read_ping_csv
from ingest.geojson_fences import load_fences

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


def write_events(events: list[Event], out: TextIO) -> None:
    if events:
        out.write("".join(json.dumps(e.to_dict(), separators=(",", ":")) + "\n" for e in events))


def replay(
    fences_path: Path,
    pings_path: Path,
    params: EngineParams,
    events_out: TextIO,
    report: Report,
    dwell_out: Path | None = None,
    devices_out: Path | None = None,
) -> ReplaySummary:
    """Run the engine over a pings file; bad and late rows are reported with line numbers."""
    started = time.perf_counter()
    fences = load_fences(fences_path)
    for fence in fences:
        for warning in fence.warnings:
            report(f"warning: {warning}")
    engine = Engine(FenceIndex(fences), params)
    rows = bad = events = 0
    for chunk in read_ping_csv(pings_path):
        rows += len(chunk.batch) + len(chunk.errors)
        bad += len(chunk.errors)
        for error in chunk.errors:
            report(f"{pings_path}:{error.line}: {error.reason}")
        result = engine.process(chunk.batch)
        for i in result.late.tolist():
            report(
                f"{pings_path}:{chunk.lines[i]}: late: more than {params.max_lateness_s:g} s behind the latest ping "
                f"of device {chunk.batch.device_id[i]!r}, not applied"
            )
        write_events(result.events, events_out)
        events += len(result.events)
    final = engine.flush()
    write_events(final, events_out)
    events += len(final)
    if dwell_out is not None:
        write_dwell(engine, dwell_out)
    if devices_out is not None:
        write_device_totals(engine, devices_out)
    c = engine.counters
    return ReplaySummary(rows, bad, c.applied, c.uncertain, c.duplicate, c.late, events, time.perf_counter() - started)


def write_dwell(engine: Engine, path: Path) -> None:
    """device_id,fence_id,visits,dwell_s over the whole input, sorted for easy diffing."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["device_id", "fence_id", "visits", "dwell_s"])
        for (device, fence), (visits, dwell) in sorted(engine.dwell_totals().items()):
            w.writerow([device, fence, visits, f"{dwell:.3f}"])


def write_device_totals(engine: Engine, path: Path) -> None:
    """Per device: pings and seconds active, inside any fence, outside all fences, lost."""
    cols = ["pings", "active_s", "inside_s", "outside_s", "lost_s"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["device_id", *cols])
        for device, totals in sorted(engine.device_totals().items()):
            w.writerow([device, int(totals["pings"]), *(f"{totals[c]:.3f}" for c in cols[1:])])
