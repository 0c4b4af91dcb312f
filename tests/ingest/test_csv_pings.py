"""Tests for the streaming ping CSV reader used by ``hotspots replay``."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from geofence.pings import PingBatch
from ingest.csv_pings import CsvChunk, CsvError, RowError, read_ping_csv, write_ping_csv

HEADER = "device_id,timestamp,lat,lon,accuracy_m"
YEARS = "must be in the years 1970-9998 UTC (epoch in seconds, not milliseconds)"
T0 = datetime(2026, 11, 21, 22, 3, tzinfo=UTC).timestamp()


def _write(tmp_path: Path, text: str | bytes, name: str = "pings.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _read_all(path: Path, batch_rows: int = 65536) -> tuple[list[CsvChunk], PingBatch, list[RowError]]:
    chunks = list(read_ping_csv(path, batch_rows=batch_rows))
    batches = [c.batch for c in chunks]
    merged = PingBatch(
        device_id=np.concatenate([b.device_id for b in batches]) if batches else np.empty(0, dtype=object),
        ts=np.concatenate([b.ts for b in batches]) if batches else np.empty(0),
        lat=np.concatenate([b.lat for b in batches]) if batches else np.empty(0),
        lon=np.concatenate([b.lon for b in batches]) if batches else np.empty(0),
        accuracy_m=np.concatenate([b.accuracy_m for b in batches]) if batches else np.empty(0),
        extras=np.concatenate([b.extras for b in batches]) if batches else np.empty(0, dtype=object),
    )
    return chunks, merged, [e for c in chunks for e in c.errors]


def test_read_ping_csv_clean_file_returns_exact_values(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f"{HEADER}\n"
        "ISSI-1,2026-11-21T22:03:00Z,51.501234,-0.123456,12.5\n"
        "ISSI-2,2026-11-21T22:03:01.25Z,-33.9,151.2,\n"
        "ISSI-1,2026-11-21T22:03:02Z,90,-180,0\n",
    )
    _, batch, errors = _read_all(path)
    assert errors == []
    assert batch.device_id.tolist() == ["ISSI-1", "ISSI-2", "ISSI-1"]
    assert batch.ts.tolist() == [T0, T0 + 1.25, T0 + 2]
    assert batch.lat.tolist() == [51.501234, -33.9, 90.0]
    assert batch.lon.tolist() == [-0.123456, 151.2, -180.0]
    assert batch.accuracy_m[0] == 12.5 and math.isnan(batch.accuracy_m[1]) and batch.accuracy_m[2] == 0.0
    assert len(batch.extras) == 0


def test_write_ping_csv_batch_reads_back_identical(tmp_path: Path) -> None:
    original = PingBatch.from_columns(
        ["a", "b", "é-unicode"],
        [T0, T0 + 0.123456, T0 + 7],
        [51.123456789012, -0.1, 1e-7],
        [-0.987654321, 179.999999, 0.0],
        [5.0, float("nan"), 0.25],
    )
    path = tmp_path / "out.csv"
    write_ping_csv(path, original)
    _, batch, errors = _read_all(path)
    assert errors == []
    assert batch.device_id.tolist() == original.device_id.tolist()
    assert batch.ts.tolist() == original.ts.tolist()
    assert batch.lat.tolist() == original.lat.tolist()
    assert batch.lon.tolist() == original.lon.tolist()
    np.testing.assert_array_equal(batch.accuracy_m, original.accuracy_m)


def test_write_ping_csv_extras_read_back_as_mappings(tmp_path: Path) -> None:
    original = PingBatch.from_columns(
        ["a", "b"],
        [T0, T0 + 1],
        [1.0, 2.0],
        [3.0, 4.0],
        extras=[{"callsign": "ALPHA 1", "speed_mps": 3.5}, None],
    )
    path = tmp_path / "out.csv"
    write_ping_csv(path, original)
    assert path.read_text().splitlines()[0] == "device_id,timestamp,lat,lon,accuracy_m,callsign,speed_mps"
    _, batch, _ = _read_all(path)
    assert batch.extras.tolist() == [
        {"callsign": "ALPHA 1", "speed_mps": 3.5},
        {"callsign": None, "speed_mps": None},
    ]


def test_read_ping_csv_iso_offsets_and_epoch_mixed_converted_to_utc(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f"{HEADER}\n"
        "a,2026-11-21T22:03:00Z,1,2,\n"
        "b,2026-11-21T23:03:00+01:00,1,2,\n"
        f"c,{T0:.0f},1,2,\n"
        f"d,{T0 + 0.5},1,2,\n"
        "e,2026-11-21T17:03:00.000250-05:00,1,2,\n"
        "f,2026-11-21 22:03:00+0000,1,2,\n",
    )
    _, batch, errors = _read_all(path)
    assert errors == []
    assert batch.ts.tolist() == [T0, T0, T0, T0 + 0.5, T0 + 0.00025, T0]


def test_read_ping_csv_mixed_batch_values_match_clean_batch(tmp_path: Path) -> None:
    """The per-row fallback must give bit-identical values to the vectorised cast."""
    rows = [
        "2026-11-21T22:03:00.123456Z,51.123456789,-0.1234567891",
        "1795298580.987654,-12.5e-1,0.1",
        "2026-11-21T22:03:00.000001+05:30,1e-3,.5",
    ]
    clean = _write(tmp_path, "device_id,timestamp,lat,lon\n" + "".join(f"x,{r}\n" for r in rows), "clean.csv")
    # Same values, each in a batch with a bad row: every column takes the slow path, and the
    # impossible date sends the ISO rows of the batch to Python's datetime.
    dirty_lines = "".join(f"x,{r}\nbad,2026-02-30T10:00:00Z,x,y\n" for r in rows)
    dirty = _write(tmp_path, "device_id,timestamp,lat,lon\n" + dirty_lines, "dirty.csv")
    _, want, _ = _read_all(clean, batch_rows=1)  # one kind per batch: always the fast path
    _, got, errors = _read_all(dirty, batch_rows=2)
    assert [e.line for e in errors] == [3, 5, 7]
    assert got.ts.tolist() == want.ts.tolist()
    assert got.lat.tolist() == want.lat.tolist()
    assert got.lon.tolist() == want.lon.tolist()


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("b,2026-11-21T22:03:00Z,91.5,2,", "lat: must be between -90 and 90, got 91.5"),
        ("b,2026-11-21T22:03:00Z,1,-180.5,", "lon: must be between -180 and 180, got -180.5"),
        ("b,2026-11-21T22:03:00Z,1,abc,", "lon: must be a number, got 'abc'"),
        ("b,2026-11-21T22:03:00Z,nan,2,", "lat: must be finite, got nan"),
        ("b,2026-11-21T22:03:00Z,,2,", "lat: is required"),
        ("b,2026-11-21 10:00,1,2,", "timestamp: has no UTC offset: '2026-11-21 10:00'"),
        ("b,2026-11-21,1,2,", "timestamp: must be ISO 8601 with a UTC offset or epoch seconds, got '2026-11-21'"),
        ("b,yesterday,1,2,", "timestamp: must be ISO 8601 with a UTC offset or epoch seconds, got 'yesterday'"),
        ("b,2026-02-30T10:00:00Z,1,2,", "timestamp: is not a valid date and time: '2026-02-30T10:00:00Z'"),
        ("b,,1,2,", "timestamp: is required"),
        ("b,1795298580000,1,2,", f"timestamp: {YEARS}, got 1795298580000"),
        (",2026-11-21T22:03:00Z,1,2,", "device_id: is required"),
        ("x" * 65 + ",2026-11-21T22:03:00Z,1,2,", "device_id: must be at most 64 characters, got 65"),
        ("b,2026-11-21T22:03:00Z,1,2,-3", "accuracy_m: must be >= 0, got -3"),
        ("b,2026-11-21T22:03:00Z,1,2,inf", "accuracy_m: must be finite, got inf"),
        ("b,2026-11-21T22:03:00Z,1", "row has 3 fields, header has 5"),
        ("b,2026-11-21T22:03:00Z,1,2,3,4", "row has 6 fields, header has 5"),
    ],
)
def test_read_ping_csv_bad_row_reported_with_line_and_reason(tmp_path: Path, row: str, reason: str) -> None:
    path = _write(
        tmp_path,
        f"{HEADER}\na,2026-11-21T22:03:00Z,1,2,\n{row}\nc,2026-11-21T22:03:01Z,3,4,5\n",
    )
    _, batch, errors = _read_all(path)
    assert errors == [RowError(3, reason)]
    assert batch.device_id.tolist() == ["a", "c"]
    assert batch.lat.tolist() == [1.0, 3.0]


def test_read_ping_csv_device_id_of_64_multibyte_chars_accepted(tmp_path: Path) -> None:
    device = "é" * 64  # 128 bytes, 64 characters
    path = _write(tmp_path, f"{HEADER}\n{device},2026-11-21T22:03:00Z,1,2,\n")
    _, batch, errors = _read_all(path)
    assert errors == []
    assert batch.device_id.tolist() == [device]


def test_read_ping_csv_invalid_utf8_device_id_rejected_per_row(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{HEADER}\nbad\xff,1795298580,1,2,\nok,1795298580,1,2,\n".encode("latin-1"))
    _, batch, errors = _read_all(path)
    assert errors == [RowError(2, "device_id: is not valid UTF-8: 'bad\ufffd'")]
    assert batch.device_id.tolist() == ["ok"]


def test_read_ping_csv_several_bad_fields_joined_in_one_reason(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{HEADER}\n,2026-11-21T22:03:00,95,2,-1\n")
    _, batch, errors = _read_all(path)
    assert len(batch) == 0
    assert errors == [
        RowError(
            2,
            "device_id: is required; timestamp: has no UTC offset: '2026-11-21T22:03:00'; "
            "lat: must be between -90 and 90, got 95; accuracy_m: must be >= 0, got -1",
        )
    ]


def test_read_ping_csv_missing_columns_raises_naming_them_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "device_id,lat,accuracy_m\na,1,2\n")
    with pytest.raises(CsvError) as err:
        read_ping_csv(path)
    message = str(err.value)
    assert "timestamp, lon" in message and str(path) in message and "\n" not in message


def test_read_ping_csv_ts_alias_and_any_column_order_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "lon,unused,TS,Lat,device_id\n2,zzz,2026-11-21T22:03:00Z,1,a\n")
    _, batch, errors = _read_all(path)
    assert errors == []
    assert (batch.device_id.tolist(), batch.ts.tolist(), batch.lat.tolist(), batch.lon.tolist()) == (
        ["a"],
        [T0],
        [1.0],
        [2.0],
    )
    assert math.isnan(batch.accuracy_m[0])


@pytest.mark.parametrize("name", ["missing.csv", "."])
def test_read_ping_csv_unreadable_path_raises_one_line_csv_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(CsvError) as err:
        read_ping_csv(path)
    assert str(err.value).startswith(f"cannot read {path}: ") and "\n" not in str(err.value)


def test_read_ping_csv_empty_file_raises_csv_error(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="no header row"):
        read_ping_csv(_write(tmp_path, ""))


def test_read_ping_csv_header_only_yields_nothing(tmp_path: Path) -> None:
    assert list(read_ping_csv(_write(tmp_path, f"{HEADER}\n"))) == []


def test_read_ping_csv_non_positive_batch_rows_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        read_ping_csv(_write(tmp_path, f"{HEADER}\n"), batch_rows=0)


def test_read_ping_csv_small_batches_keep_line_numbers(tmp_path: Path) -> None:
    lines = [HEADER]
    expected_errors = []
    for i in range(20):
        line_no = len(lines) + 1
        if i % 7 == 3:
            lines.append(f"d{i},2026-11-21T22:03:00Z,1")  # wrong field count: dropped by the parser
            expected_errors.append(RowError(line_no, "row has 3 fields, header has 5"))
        elif i % 5 == 4:
            lines.append(f"d{i},2026-11-21T22:03:00Z,99,2,")
            expected_errors.append(RowError(line_no, "lat: must be between -90 and 90, got 99"))
        elif i == 10:
            lines.append("")  # blank: skipped silently, still a line
        else:
            lines.append(f"d{i},{T0 + i},{i},2,")
    path = _write(tmp_path, "\n".join(lines) + "\n")
    chunks, batch, errors = _read_all(path, batch_rows=3)
    assert all(len(c.batch) <= 3 for c in chunks)
    assert errors == expected_errors
    assert batch.device_id.tolist() == [f"d{i}" for i in range(20) if i % 7 != 3 and i % 5 != 4 and i != 10]
    assert batch.ts.tolist() == [T0 + int(d[1:]) for d in batch.device_id.tolist()]
    _, whole, whole_errors = _read_all(path)
    assert whole_errors == errors and whole.device_id.tolist() == batch.device_id.tolist()


def test_read_ping_csv_long_run_of_malformed_rows_reported_as_it_goes(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{HEADER}\n" + "x,1\n" * 10 + "ok,1795298580,1,2,\n" + "y\n" * 2)
    chunks, batch, errors = _read_all(path, batch_rows=2)
    assert batch.device_id.tolist() == ["ok"]
    assert [e.line for e in errors] == [*range(2, 12), 13, 14]
    assert errors[-1].reason == "row has 1 fields, header has 5"
    assert all(len(c.errors) <= 12 for c in chunks)


def test_read_ping_csv_crlf_and_bom_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, f"\ufeff{HEADER}\r\na,1795298580,1,2,3\r\nb,1795298580,1,2,\r\n".encode())
    _, batch, errors = _read_all(path)
    assert errors == []
    assert batch.device_id.tolist() == ["a", "b"]
    assert batch.accuracy_m[0] == 3.0 and math.isnan(batch.accuracy_m[1])


def test_read_ping_csv_extra_columns_carried_as_extras(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f"{HEADER},callsign,speed_mps,heading_deg,status,colour\n"
        "a,1795298580,1,2,,ALPHA 1,3.5,,on patrol,red\n"
        "b,1795298581,1,2,,,,270,,blue\n"
        "c,1795298582,1,2,,,1.5,90.5,,green\n",
    )
    _, batch, errors = _read_all(path)
    assert errors == []
    assert batch.extras.tolist() == [
        {"callsign": "ALPHA 1", "speed_mps": 3.5, "heading_deg": None, "status": "on patrol"},
        {"callsign": None, "speed_mps": None, "heading_deg": 270.0, "status": None},
        {"callsign": None, "speed_mps": 1.5, "heading_deg": 90.5, "status": None},
    ]


def test_read_ping_csv_extras_of_rejected_rows_dropped_with_them(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f"{HEADER},officer_id\na,1795298580,1,2,,PC 1\nb,1795298580,91,2,,PC 2\nc,1795298580,1,2,,PC 3\n",
    )
    _, batch, errors = _read_all(path)
    assert [e.line for e in errors] == [3]
    assert batch.extras.tolist() == [{"officer_id": "PC 1"}, {"officer_id": "PC 3"}]


def test_read_ping_csv_space_padded_numbers_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{HEADER}\na, 1795298580 , 51.5 ,-0.1, 3\n")
    _, batch, errors = _read_all(path)
    assert errors == []
    assert (batch.ts.tolist(), batch.lat.tolist(), batch.accuracy_m.tolist()) == ([T0], [51.5], [3.0])


def test_read_ping_csv_last_line_without_newline_read(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{HEADER}\na,1795298580,1,2,\nb,1795298581,3,4,5")
    _, batch, errors = _read_all(path, batch_rows=1)
    assert errors == []
    assert batch.device_id.tolist() == ["a", "b"]
    assert batch.accuracy_m[1] == 5.0


def test_read_ping_csv_quoted_values_with_commas_kept(tmp_path: Path) -> None:
    path = _write(tmp_path, f'{HEADER},callsign\n"a,1",1795298580,1,2,,"ALPHA, 1"\n')
    _, batch, errors = _read_all(path)
    assert errors == []
    assert batch.device_id.tolist() == ["a,1"]
    assert batch.extras.tolist() == [{"callsign": "ALPHA, 1"}]


def test_read_ping_csv_line_without_break_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ingest.csv_pings._MAX_LINE_BYTES", 64)
    path = _write(tmp_path, f"{HEADER}\na,1795298580,1,2,\n" + "x" * 200 + "\n")
    chunks = read_ping_csv(path, batch_rows=1)
    with pytest.raises(CsvError, match=r"line 3 has no line break within 64 bytes"):
        list(chunks)


def test_read_ping_csv_carriage_return_only_file_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="header row unreadable"):
        read_ping_csv(_write(tmp_path, "device_id,timestamp,lat,lon\ra,1795298580,1,2\r"))


def test_read_ping_csv_blank_lines_with_one_line_batches_skipped_and_counted(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{HEADER}\n" + "\n" * 100 + "a,1795298580,1,2,\n\nb,1795298580,1,2,-1\n")
    _, batch, errors = _read_all(path, batch_rows=1)
    assert batch.device_id.tolist() == ["a"]
    assert errors == [RowError(104, "accuracy_m: must be >= 0, got -1")]
