"""`hotspots replay --pings` on GPS exports and radio logs: GPX, NMEA, PEI files and folders of them.

Each format must give the events the same points give as a CSV, and every bad line is reported
as FILE:LINE: reason while the good ones are kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.lip_frames import lat_raw, lon_raw, short_report

from geofence.events import format_ts
from geofence.pings import PingBatch
from ingest.csv_pings import write_ping_csv
from ingest.lip_records import UNBOUNDED_ACCURACY_M
from ingest.nmea import checksum
from services.cli import main
from services.workload import make_workload

GPX_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">\n<trk><trkseg>\n'


def replay(tmp_path: Path, fences: Path, pings: Path, *extra: str) -> tuple[int, list[dict]]:
    out = tmp_path / f"events-{pings.name}.jsonl"
    code = main(
        ["replay", "--fences", str(fences), "--pings", str(pings), "--out", str(out), "--max-lateness-s", "0", *extra]
    )
    events = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return code, events


def write_gpx(path: Path, pings: PingBatch, bad: str = "") -> None:
    """One device's points as a GPX 1.1 track, accuracy in the hacc extension (metres, exact)."""
    points = []
    for ts, lat, lon, acc in zip(
        pings.ts.tolist(), pings.lat.tolist(), pings.lon.tolist(), pings.accuracy_m.tolist(), strict=True
    ):
        hacc = "" if np.isnan(acc) else f"<extensions><hacc>{acc!r}</hacc></extensions>"
        points.append(f'<trkpt lat="{lat!r}" lon="{lon!r}"><time>{format_ts(ts)}</time>{hacc}</trkpt>\n')
    path.write_text(GPX_HEAD + bad + "".join(points) + "</trkseg></trk></gpx>\n")


def in_time_order(pings: PingBatch) -> PingBatch:
    """The pings by time, ties by device: the order a folder of files merges into."""
    return pings.take(np.lexsort((pings.device_id.astype(str), pings.ts)))


@pytest.fixture
def workload(tmp_path: Path) -> tuple[Path, PingBatch]:
    w = make_workload(6, 4, 3 * 3600, seed=3, interval_s=30.0)
    fences = tmp_path / "fences.geojson"
    fences.write_text(json.dumps(w.fences))
    return fences, in_time_order(w.pings)


def test_replay_folder_of_gpx_gives_the_events_of_the_same_points_as_csv(
    tmp_path: Path, workload: tuple[Path, PingBatch]
) -> None:
    fences, pings = workload
    folder = tmp_path / "tracks"
    folder.mkdir()
    for device in sorted(set(pings.device_id.tolist())):
        write_gpx(folder / f"{device}.gpx", pings.take(np.flatnonzero(pings.device_id == device)))
    (folder / "notes.txt").write_text("not a track")  # ignored: not a ping file
    csv_path = tmp_path / "pings.csv"
    write_ping_csv(csv_path, pings)
    code, from_gpx = replay(tmp_path, fences, folder)
    assert code == 0
    code, from_csv = replay(tmp_path, fences, csv_path)
    assert code == 0
    assert {e["type"] for e in from_csv} >= {"enter", "exit"}
    assert from_gpx == from_csv


def test_replay_folder_reports_bad_points_by_file_and_line_and_keeps_the_rest(
    tmp_path: Path, workload: tuple[Path, PingBatch], capsys: pytest.CaptureFixture[str]
) -> None:
    fences, pings = workload
    folder = tmp_path / "tracks"
    folder.mkdir()
    untimed = '<trkpt lat="51.5" lon="-0.1"></trkpt>\n'  # line 4
    for device in sorted(set(pings.device_id.tolist())):
        write_gpx(folder / f"{device}.gpx", pings.take(np.flatnonzero(pings.device_id == device)), untimed)
    csv_path = tmp_path / "pings.csv"
    write_ping_csv(csv_path, pings)
    code, from_gpx = replay(tmp_path, fences, folder)
    err = capsys.readouterr().err
    assert code == 0
    for device in set(pings.device_id.tolist()):
        assert f"{folder / device}.gpx:4: trkpt has no <time>: cannot be placed in time" in err
    assert from_gpx == replay(tmp_path, fences, csv_path)[1]


def nmea(body: str) -> str:
    return f"${body}*{checksum(body.encode()):02X}\r\n"


def test_replay_nmea_log_device_is_the_file_stem_or_the_device_id_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fences = tmp_path / "fences.geojson"
    square = [[[-0.101, 51.499], [-0.099, 51.499], [-0.099, 51.501], [-0.101, 51.501], [-0.101, 51.499]]]
    fences.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "A"}, "geometry": {"type": "Polygon", "coordinates": square}}
    ]}))  # fmt: skip
    log = tmp_path / "avl-7.nmea"
    log.write_text(
        nmea("GPRMC,120000.00,A,5130.600,N,00006.000,W,0.0,0.0,211126,,,A")  # outside
        + nmea("GPRMC,120010.00,A,5130.000,N,00006.000,W,0.0,0.0,211126,,,A")  # inside A
        + "$GPRMC,120015.00,A,5130.000,N,00006.000,W,0.0,0.0,211126,,,A*00\r\n"  # line 3: bad checksum
        + nmea("GPRMC,120020.00,V,,,,,,,211126,,,N")  # line 4: void
        + nmea("GPRMC,120030.00,A,5130.600,N,00006.000,W,0.0,0.0,211126,,,A")  # outside
    )
    code, events = replay(tmp_path, fences, log)
    err = capsys.readouterr().err
    assert code == 0
    assert [(e["type"], e["device_id"], e["ts"]) for e in events] == [
        ("enter", "avl-7", "2026-11-21T12:00:10Z"),
        ("exit", "avl-7", "2026-11-21T12:00:30Z"),
    ]
    assert f"{log}:3: checksum mismatch: sentence says 00" in err
    assert f"{log}:4: void fix: RMC status V (receiver has no valid position)" in err
    _, events = replay(tmp_path, fences, log, "--device-id", "car-1")
    assert {e["device_id"] for e in events} == {"car-1"}


def test_replay_pei_log_gives_the_events_of_the_same_positions_as_csv(
    tmp_path: Path, workload: tuple[Path, PingBatch], capsys: pytest.CaptureFixture[str]
) -> None:
    fences, pings = workload
    lines, rows = ["AT+CTSP=1,3,130", "OK"], []
    for k, (device, ts, lat, lon) in enumerate(
        zip(pings.device_id.tolist(), pings.ts.tolist(), pings.lat.tolist(), pings.lon.tolist(), strict=True)
    ):
        x, y = lon_raw(lon), lat_raw(lat)
        issi = str(1000 + int(device[1:]))
        lines += [
            f"{format_ts(ts)} +CTSDSR: 12,{issi},0,9999,0,76",
            short_report(x, y, error=1, speed=127, direction=15),
        ]
        rows.append((issi, ts, y * 180 / 2**24, x * 360 / 2**25))
        if k == 5:
            lines += [f"{format_ts(ts)} +CTSDSR: 12,{issi},0,9999,0,76", "0AXYZ"]  # a garbled report
    pei = tmp_path / "radio.pei"
    pei.write_text("\n".join(lines) + "\n")
    csv_path = tmp_path / "same.csv"
    issi, ts, lat, lon = zip(*rows, strict=True)
    write_ping_csv(csv_path, PingBatch.from_columns(issi, ts, lat, lon, [20.0] * len(rows), extras=[None] * len(rows)))
    code, from_pei = replay(tmp_path, fences, pei)
    err = capsys.readouterr().err
    assert code == 0
    bad_line = 2 + 2 * 6 + 1
    assert f"{pei}:{bad_line}: user data is not whole octets of hex: '0AXYZ'" in err
    assert {e["type"] for e in from_pei} >= {"enter", "exit"}
    assert from_pei == replay(tmp_path, fences, csv_path)[1]


def test_replay_pei_report_without_error_bound_moves_no_state(tmp_path: Path) -> None:
    fences = tmp_path / "fences.geojson"
    square = [[[-0.101, 51.499], [-0.099, 51.499], [-0.099, 51.501], [-0.101, 51.501], [-0.101, 51.499]]]
    fences.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "A"}, "geometry": {"type": "Polygon", "coordinates": square}}
    ]}))  # fmt: skip
    inside = short_report(lon_raw(-0.1), lat_raw(51.5), error=7)  # error "not known"
    pei = tmp_path / "radio.pei"
    pei.write_text(f"2026-11-21T12:00:00Z +CTSDSR: 12,1001,0,9999,0,76\n{inside}\n")
    code, events = replay(tmp_path, fences, pei)
    assert (code, events) == (0, [])
    assert UNBOUNDED_ACCURACY_M > 100  # beyond the default max_accuracy_m


def test_replay_folder_without_ping_files_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    fences = tmp_path / "fences.geojson"
    fences.write_text('{"type": "FeatureCollection", "features": []}')
    code, _ = replay(tmp_path, fences, folder)
    assert code == 2
    assert f"{folder}: no ping files" in capsys.readouterr().err
