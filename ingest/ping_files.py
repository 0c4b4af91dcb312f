"""Ping files of any format, and folders of them merged in time order: the input of ``hotspots replay``.

Formats, by extension (case-insensitive): ``.csv`` (``ingest.csv_pings``), ``.gpx``
(``ingest.gpx``), ``.nmea`` and ``.log`` (``ingest.nmea``), ``.pei`` (``ingest.pei``). A file
with another extension is sniffed by its first bytes: ``<`` GPX, ``$``/``!`` NMEA, a
``+CTSDSR``/``AT`` line PEI, else CSV. GPX and NMEA carry no device id: it is the file's stem
(``radio-17.gpx`` is device ``radio-17``) unless one is given; CSV rows and PEI reports name
their own.

A folder is every file in it (not below it) of a known extension, in name order, merged into one
stream in time order, streamed: each file is read a chunk at a time, and rows are let out,
sorted by time (ties in file order, then line order), up to the earliest "latest time read"
among the files not yet finished: a file in time order, as recordings are, has nothing earlier
to come. A file out of time order loses no row: what arrives behind the rows already let out
meets the engine's lateness rules, as a live feed would.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geofence.pings import IntArray, PingBatch
from ingest.csv_pings import CsvChunk, RowError, read_ping_csv
from ingest.fixes import FixChunk
from ingest.gpx import read_gpx
from ingest.nmea import read_nmea
from ingest.pei import read_pei
from ingest.ping_message import ParsedPings, Reject

__all__ = ["EXTENSIONS", "PingChunk", "PingFiles", "PingFilesError", "merge_by_time", "parse_nmea_body", "read_pings"]

EXTENSIONS = {".csv": "csv", ".gpx": "gpx", ".nmea": "nmea", ".log": "nmea", ".pei": "pei"}


class PingFilesError(ValueError):
    """A folder without ping files."""


@dataclass(frozen=True, slots=True)
class PingChunk:
    """Good rows of the stream, each with its file (an index into PingFiles.names) and line, and refused lines."""

    batch: PingBatch
    files: IntArray
    lines: IntArray
    errors: list[tuple[int, RowError]] = field(default_factory=list)


class PingFiles:
    """A file or a folder of ping files, iterated as PingChunks (module docstring)."""

    def __init__(self, path: Path, device_id: str | None = None) -> None:
        if path.is_dir():
            self.paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
            if not self.paths:
                raise PingFilesError(f"{path}: no ping files ({', '.join(EXTENSIONS)}) in this folder")
        else:
            self.paths = [path]
        self.names = [str(p) for p in self.paths]
        self.readers = [read_pings(p, device_id) for p in self.paths]  # opened (and headers checked) now

    def __iter__(self) -> Iterator[PingChunk]:
        if len(self.readers) == 1:
            for c in self.readers[0]:
                files = np.zeros(len(c.batch), dtype=np.int64)
                yield PingChunk(c.batch, files, c.lines, [(0, e) for e in c.errors])
            return
        yield from merge_by_time(self.readers)


def read_pings(path: Path, device_id: str | None = None) -> Iterator[CsvChunk]:
    """One ping file of any format as chunks (module docstring); the format's errors raise as its reader's."""
    kind = EXTENSIONS.get(path.suffix.lower()) or _sniff(path)
    if kind == "csv":
        return read_ping_csv(path)
    if kind == "pei":
        return read_pei(path)
    device = device_id or path.stem
    fixes = read_gpx(path, device) if kind == "gpx" else read_nmea(path, device)
    return (_from_fixes(c) for c in fixes)


def parse_nmea_body(body: bytes, device_id: str) -> ParsedPings:
    """NMEA sentences POSTed by a device: its fixes, and a Reject (index = line - 1) per refused line.

    InputError for a bad device id, NmeaError when the body is not line-based text.
    """
    chunks = [_from_fixes(c) for c in read_nmea(io.BytesIO(body), device_id)]
    rejects = [Reject(e.line - 1, None, e.reason) for c in chunks for e in c.errors]
    return ParsedPings(_concat([c.batch for c in chunks]), rejects)


def _from_fixes(chunk: FixChunk) -> CsvChunk:
    return CsvChunk(chunk.to_ping_batch(), chunk.lines, chunk.errors)


def _sniff(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return "csv"  # the CSV reader says why it cannot be read
    if head.startswith(b"<"):
        return "gpx"
    if head[:1] in (b"$", b"!"):
        return "nmea"
    return "pei" if b"+CTSDSR" in head or head.upper().startswith(b"AT") else "csv"


def _concat(batches: list[PingBatch]) -> PingBatch:
    if not batches:
        return PingBatch.from_columns([], [], [], [], extras=[])
    extras = [b.extras if len(b.extras) else np.full(len(b), None, dtype=object) for b in batches]
    return PingBatch(
        device_id=np.concatenate([b.device_id for b in batches]),
        ts=np.concatenate([b.ts for b in batches]),
        lat=np.concatenate([b.lat for b in batches]),
        lon=np.concatenate([b.lon for b in batches]),
        accuracy_m=np.concatenate([b.accuracy_m for b in batches]),
        extras=np.concatenate(extras),
    )


def merge_by_time(readers: list[Iterator[CsvChunk]]) -> Iterator[PingChunk]:
    """The files' rows in time order (ties in file order), one chunk of some file read at a time."""
    n = len(readers)
    latest = np.full(n, -np.inf)  # the latest time read from each file; +inf once it is finished
    held: list[PingChunk] = []
    want = list(range(n))  # files to read a chunk of next
    while True:
        errors: list[tuple[int, RowError]] = []
        for f in want:
            chunk = next(readers[f], None)
            if chunk is None:
                latest[f] = np.inf
                continue
            errors += [(f, e) for e in chunk.errors]
            if len(chunk.batch):
                latest[f] = max(latest[f], float(chunk.batch.ts.max()))
                held.append(PingChunk(chunk.batch, np.full(len(chunk.batch), f, dtype=np.int64), chunk.lines))
        until = latest.min()
        pool = PingChunk(
            _concat([h.batch for h in held]),
            np.concatenate([h.files for h in held]) if held else np.empty(0, dtype=np.int64),
            np.concatenate([h.lines for h in held]) if held else np.empty(0, dtype=np.int64),
        )
        order = np.lexsort((pool.lines, pool.files, pool.batch.ts))
        ready = order[pool.batch.ts[order] <= until]
        rest = np.sort(order[pool.batch.ts[order] > until])
        yield PingChunk(pool.batch.take(ready), pool.files[ready], pool.lines[ready], errors)
        held = [PingChunk(pool.batch.take(rest), pool.files[rest], pool.lines[rest])] if len(rest) else []
        if until == np.inf:
            return
        want = np.flatnonzero(latest == until).tolist()
