"""A plain reference `replay`, the yardstick of `make bench`: `python -m bench.reference FENCES PINGS OUT`.

What a straightforward implementation of docs/SEMANTICS.md does: pyarrow reads the whole CSV,
one vectorised shapely STRtree join finds every (ping, fence) pair, then a per-ping Python state
machine applies the rules (uncertain fixes, duplicates, watermark signal loss and restore,
enter/exit with debounce 0) and writes each event as its JSON dict with orjson. It assumes what
the benchmark feeds it: pings in ts order, debounce 0, no carried fields; it is independent of
the engine, so the tests compare the two outputs byte for byte.
"""

from __future__ import annotations

import hashlib
import heapq
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pcsv
import shapely

from ingest.geojson_fences import load_fences

MAX_ACCURACY_M, SIGNAL_TIMEOUT_S, MAX_LATENESS_S = 100.0, 300.0, 30.0


def _ts(t: float) -> str:
    dt = datetime.fromtimestamp(t, tz=UTC)
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds").replace("+00:00", "Z")


def _event(type_: str, device: str, fence: str | None, t: float, lat: float, lon: float, **more: Any) -> bytes:
    key = f"{device}\x1f{fence or ''}\x1f{type_}\x1f{t!r}"
    out: dict[str, Any] = {
        "event_id": hashlib.blake2b(key.encode(), digest_size=16).hexdigest(),
        "type": type_,
        "device_id": device,
        "fence_id": fence,
        "ts": _ts(t),
        "lat": lat,
        "lon": lon,
    }
    out.update(more)
    return orjson.dumps(out) + b"\n"


def reference_replay(fences_path: Path, pings_path: Path, out: BinaryIO) -> int:
    """Events of the pings file against the fences, written to out; returns their number."""
    fences = load_fences(fences_path)
    ids = [f.id for f in fences]
    areas = np.array([f.area for f in fences], dtype=object)
    table = pcsv.read_csv(
        pings_path,
        convert_options=pcsv.ConvertOptions(
            column_types={"device_id": pa.string(), "timestamp": pa.timestamp("ns", tz="UTC")}
        ),
    )
    devices = table["device_id"].to_pylist()
    ts = (table["timestamp"].to_numpy().view(np.int64) // 1000) / 1e6
    lat = table["lat"].to_numpy()
    lon = table["lon"].to_numpy()
    acc = table["accuracy_m"].to_numpy()
    slot_of: dict[str, int] = {}
    slots = np.array([slot_of.setdefault(d, len(slot_of)) for d in devices])
    order = np.lexsort((slots, ts))  # release order: ts, then first-seen device
    pi, fi = shapely.STRtree(areas).query(shapely.points(lon, lat), predicate="intersects")
    pair = np.lexsort((fi, pi))
    pi, fi = pi[pair], fi[pair]
    lo, hi = np.searchsorted(pi, np.arange(len(ts))), np.searchsorted(pi, np.arange(len(ts)), side="right")

    names = list(slot_of)
    last: dict[int, tuple[float, float, float]] = {}  # slot -> last ts, lat, lon
    lost: set[int] = set()
    inside: dict[int, dict[str, float]] = {}
    deadlines: list[tuple[float, int]] = []
    watermark = -np.inf
    events = 0
    buf: list[bytes] = []

    def lose(s: int) -> None:
        t, la, lo_ = last[s]
        for f in sorted(inside.pop(s, {}).items()):
            buf.append(_event("exit", names[s], f[0], t, la, lo_, dwell_s=round(t - f[1], 6), reason="signal_lost"))
        buf.append(_event("signal_lost", names[s], None, t, la, lo_, gap_start=_ts(t)))
        lost.add(s)

    def losses_before(w: float) -> None:
        gone = set()
        while deadlines and deadlines[0][0] < w:
            deadline, s = heapq.heappop(deadlines)
            if s not in lost and last[s][0] + SIGNAL_TIMEOUT_S == deadline:
                gone.add(s)
        for s in sorted(gone):
            lose(s)

    for k in order.tolist():
        s, t, la, lo_ = int(slots[k]), float(ts[k]), float(lat[k]), float(lon[k])
        if s in last and last[s][0] == t:
            continue  # duplicate
        watermark = max(watermark, t - MAX_LATENESS_S)
        losses_before(watermark)
        if s in lost:
            lost.discard(s)
            buf.append(_event("signal_restored", names[s], None, t, la, lo_, gap_s=round(t - last[s][0], 6)))
        last[s] = (t, la, lo_)
        heapq.heappush(deadlines, (t + SIGNAL_TIMEOUT_S, s))
        if acc[k] > MAX_ACCURACY_M:
            continue
        seen = {ids[f] for f in fi[lo[k] : hi[k]].tolist()}
        visits = inside.setdefault(s, {})
        for f in sorted(f for f in visits if f not in seen):
            start = visits.pop(f)
            buf.append(_event("exit", names[s], f, t, la, lo_, dwell_s=round(t - start, 6), reason="left"))
        for f in sorted(f for f in seen if f not in visits):
            visits[f] = t
            buf.append(_event("enter", names[s], f, t, la, lo_))
        if len(buf) > 4096:
            events += len(buf)
            out.write(b"".join(buf))
            buf.clear()
    for s in sorted(x for x in last if x not in lost and last[x][0] + SIGNAL_TIMEOUT_S < watermark):
        lose(s)
    out.write(b"".join(buf))
    return events + len(buf)


if __name__ == "__main__":
    with open(sys.argv[3], "wb") as f:
        reference_replay(Path(sys.argv[1]), Path(sys.argv[2]), f)
