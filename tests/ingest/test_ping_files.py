"""Ping files of any format and folders of them: formats by extension or first bytes, files merged in time order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from geofence.pings import PingBatch
from ingest.csv_pings import CsvChunk, RowError
from ingest.nmea import checksum
from ingest.ping_files import PingFiles, merge_by_time


def chunk(device: str, times: list[float], first_line: int, errors: list[RowError] | None = None) -> CsvChunk:
    n = len(times)
    batch = PingBatch.from_columns([device] * n, times, [0.0] * n, [0.0] * n)
    return CsvChunk(batch, np.arange(first_line, first_line + n, dtype=np.int64), errors or [])


def merged(*files: list[CsvChunk]) -> tuple[list[tuple[float, int, int]], list[tuple[int, int]]]:
    """(ts, file, line) of every row in stream order, and (file, line) of every error."""
    readers: list[Iterator[CsvChunk]] = [iter(f) for f in files]
    rows, errors = [], []
    for c in merge_by_time(readers):
        rows += list(zip(c.batch.ts.tolist(), c.files.tolist(), c.lines.tolist(), strict=True))
        errors += [(f, e.line) for f, e in c.errors]
    return rows, errors


def test_merge_by_time_interleaves_files_chunk_by_chunk_ties_in_file_order() -> None:
    rows, errors = merged(
        [chunk("a", [1, 3], 2), chunk("a", [5, 7], 4, [RowError(6, "bad")])],
        [chunk("b", [2], 2), chunk("b", [3, 8], 3)],
    )
    assert rows == [(1, 0, 2), (2, 1, 2), (3, 0, 3), (3, 1, 3), (5, 0, 4), (7, 0, 5), (8, 1, 4)]
    assert errors == [(0, 6)]


@pytest.mark.parametrize(
    "files",
    [
        ([chunk("a", [5, 1], 2)], [chunk("b", [2, 3], 2)]),  # a file out of time order
        ([chunk("a", [], 2, [RowError(2, "bad")]), chunk("a", [4], 3)], [chunk("b", [1], 2)]),  # a chunk of errors only
        ([], [chunk("b", [1, 2], 2)]),  # an empty file
    ],
)
def test_merge_by_time_loses_no_row(files: tuple[list[CsvChunk], ...]) -> None:
    rows, _ = merged(*files)
    assert sorted((f, line) for _, f, line in rows) == sorted(
        (k, int(line)) for k, f in enumerate(files) for c in f for line in c.lines
    )


def test_ping_files_unknown_extension_is_sniffed_from_the_first_bytes(tmp_path: Path) -> None:
    body = "GPRMC,120000.00,A,5130.000,N,00006.000,W,0.0,0.0,211126,,,A"
    (tmp_path / "car-7.dat").write_text(f"${body}*{checksum(body.encode()):02X}\r\n")
    gpx = '<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
    (tmp_path / "walk.txt").write_text(
        gpx + '<trkpt lat="51.5" lon="-0.1"><time>2026-11-21T12:00:00Z</time></trkpt></trkseg></trk></gpx>'
    )
    for name, device in (("car-7.dat", "car-7"), ("walk.txt", "walk")):
        [c] = [c for c in PingFiles(tmp_path / name) if len(c.batch)]
        assert c.batch.device_id.tolist() == [device]
