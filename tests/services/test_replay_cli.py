"""`hotspots replay` as an analyst runs it: files in, events, dwell and one-line errors out."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.helpers import square_geometry
from support.paths import SAMPLES

from geofence.engine import Engine
from geofence.index import FenceIndex
from geofence.params import EngineParams
from ingest.csv_pings import read_ping_csv, write_ping_csv
from ingest.geojson_fences import fences_from_geojson, load_fences
from services.cli import main
from services.workload import make_workload

HEADER = "device_id,timestamp,lat,lon,accuracy_m\n"


def fences_file(tmp_path: Path, geometry: dict | None = None) -> Path:
    path = tmp_path / "fences.geojson"
    feature = {"type": "Feature", "properties": {"id": "A"}, "geometry": geometry or square_geometry(0, 0, 0.001)}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


def replay(tmp_path: Path, fences: Path, pings: Path, *extra: str) -> tuple[int, list[dict]]:
    out = tmp_path / "events.jsonl"
    code = main(["replay", "--fences", str(fences), "--pings", str(pings), "--out", str(out), *extra])
    events = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return code, events


def test_replay_sample_data_writes_events_dwell_and_device_totals(tmp_path: Path) -> None:
    dwell, devices = tmp_path / "d" / "dwell.csv", tmp_path / "devices.csv"
    code, events = replay(
        tmp_path,
        SAMPLES / "fences.geojson",
        SAMPLES / "pings.csv",
        "--dwell-out",
        str(dwell),
        "--devices-out",
        str(devices),
    )
    assert code == 0
    assert {e["type"] for e in events} >= {"enter", "exit"}
    rows = list(csv.DictReader(dwell.read_text().splitlines()))
    assert list(rows[0]) == ["device_id", "fence_id", "visits", "dwell_s"]
    enters = sum(e["type"] == "enter" for e in events)
    assert sum(int(r["visits"]) for r in rows) == enters
    per_device = list(csv.DictReader(devices.read_text().splitlines()))
    assert {r["device_id"] for r in per_device} == {"R00000", "R00001", "R00002", "R00003"}
    for r in per_device:
        assert float(r["inside_s"]) + float(r["outside_s"]) == pytest.approx(float(r["active_s"]), abs=0.01)


def test_replay_generated_stream_equals_engine_on_same_pings(tmp_path: Path) -> None:
    w = make_workload(50, 20, 3600, seed=3)
    fences = tmp_path / "fences.geojson"
    fences.write_text(json.dumps(w.fences))
    pings = tmp_path / "pings.csv"
    write_ping_csv(pings, w.pings)
    code, events = replay(tmp_path, fences, pings)
    engine = Engine(FenceIndex(fences_from_geojson(w.fences)), EngineParams())
    direct = [e.to_dict() for e in [*engine.process(w.pings).events, *engine.flush()]]
    assert code == 0
    assert len(events) > 50
    assert events == json.loads(json.dumps(direct))


def test_replay_bad_rows_reported_with_line_numbers_good_rows_processed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pings = tmp_path / "pings.csv"
    pings.write_text(
        HEADER
        + "d1,2026-11-21T22:00:00Z,0.0005,-0.0005,5\n"  # line 2: outside A
        + "d1,2026-11-21T22:00:10Z,91.5,0.0005,5\n"  # line 3: lat out of range
        + "d1,2026-11-21T22:00:20Z,0.0005,abc,5\n"  # line 4: lon not a number
        + "d1,2026-11-21T22:00:30Z,0.0005,0.0005,5\n"  # line 5: inside A
    )
    code, events = replay(tmp_path, fences_file(tmp_path), pings)
    err = capsys.readouterr().err
    assert code == 0
    assert f"{pings}:3: lat: must be between -90 and 90, got 91.5" in err
    assert f"{pings}:4: lon: must be a number, got 'abc'" in err
    assert [(e["type"], e["ts"]) for e in events] == [("enter", "2026-11-21T22:00:30Z")]
    assert "2 bad" in err


def test_replay_late_ping_reported_with_line_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pings = tmp_path / "pings.csv"
    pings.write_text(HEADER + "d1,100,0,-0.0005,\nd1,200,0,-0.0005,\nd1,150,0,0.0005,\n")
    code, events = replay(tmp_path, fences_file(tmp_path), pings, "--max-lateness-s", "10")
    err = capsys.readouterr().err
    assert code == 0
    assert events == []
    assert f"{pings}:4: late: more than 10 s behind the latest ping of device 'd1', not applied" in err


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        # the pings file does not exist
        (lambda p: (fences_file(p), p / "missing.csv"), "missing.csv"),
        # the CSV lacks the lon column
        (lambda p: (fences_file(p), _write(p / "x.csv", "device_id,timestamp,lat\nd,1,0\n")), "lon"),
        # a bow-tie fence
        (
            lambda p: (
                fences_file(p, {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}),
                _write(p / "x.csv", HEADER),
            ),
            "fence 'A': invalid geometry: Self-intersection",
        ),
        # the fences file is not JSON
        (lambda p: (_write(p / "f.geojson", "{nope"), _write(p / "x.csv", HEADER)), "not valid JSON"),
    ],
)
def test_replay_unusable_input_exits_2_with_one_line_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_input, message: str
) -> None:
    fences, pings = make_input(tmp_path)
    code, _ = replay(tmp_path, fences, pings)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("hotspots: error: ")
    assert message in err
    assert len(err.splitlines()) == 1


def test_replay_engine_flags_override_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # in A at 0 and 20, out at 30, back in at 40: debounce 15 s confirms nothing of the 10 s exit
    pings = _write(
        tmp_path / "p.csv",
        HEADER
        + "".join(
            f"d1,{t},0.0005,{lon},\n" for t, lon in [(0, 0.0005), (20, 0.0005), (30, -1e-3), (40, 5e-4), (60, 0.0005)]
        ),
    )
    monkeypatch.setenv("HOTSPOTS_DEBOUNCE_S", "15")
    _, debounced = replay(tmp_path, fences_file(tmp_path), pings)
    _, flagged = replay(tmp_path, fences_file(tmp_path), pings, "--debounce-s", "0")
    assert [e["type"] for e in debounced] == ["enter"]
    assert [e["type"] for e in flagged] == ["enter", "exit", "enter"]


def test_replay_negative_parameter_rejected_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = replay(tmp_path, fences_file(tmp_path), _write(tmp_path / "p.csv", HEADER), "--debounce-s", "-1")
    assert code == 2
    assert "debounce_s" in capsys.readouterr().err


@pytest.mark.integration  # runs the installed command as a process
def test_hotspots_console_command_installed_and_runs_sample() -> None:
    exe = Path(sys.executable).parent / "hotspots"
    done = subprocess.run(
        [str(exe), "replay", "--fences", str(SAMPLES / "fences.geojson"), "--pings", str(SAMPLES / "pings.csv")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines and all(json.loads(line)["event_id"] for line in lines)
    assert "replayed 1896 rows" in done.stderr


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_replay_ping_naming_unknown_fence_refused_as_live_known_fence_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pings = tmp_path / "pings.csv"
    pings.write_text(
        "device_id,timestamp,lat,lon,fence_id\n"
        "d1,2026-11-21T22:00:00Z,0.0005,0.0005,A\n"  # line 2: names a fence that exists
        "d2,2026-11-21T22:00:00Z,0.0005,0.0005,NOPE\n"  # line 3: live sends this to the DLQ
    )
    code, events = replay(tmp_path, fences_file(tmp_path), pings)
    err = capsys.readouterr().err
    assert code == 0
    assert f"{pings}:3: fence_id: unknown fence 'NOPE'" in err  # the matcher's DLQ reason (ingest.rules)
    assert [(e["type"], e["device_id"]) for e in events] == [("enter", "d1")]
    assert "1 bad" in err


def test_replay_non_ascii_event_bytes_equal_live_serialisation(tmp_path: Path) -> None:
    pings = tmp_path / "pings.csv"
    pings.write_text(
        "device_id,timestamp,lat,lon,officer_id,callsign\nd1,2026-11-21T22:00:00Z,0.0005,0.0005,Zoë Ørsted,Ünit 7\n",
        encoding="utf-8",
    )
    code, _ = replay(tmp_path, fences_file(tmp_path), pings)
    written = (tmp_path / "events.jsonl").read_bytes()
    live = Engine(FenceIndex(load_fences(fences_file(tmp_path))), EngineParams())
    (chunk,) = read_ping_csv(pings)
    assert code == 0
    events = live.process(chunk.batch).events + live.flush()
    assert written == b"".join(e.to_json() + b"\n" for e in events)  # what the live outbox produces
    assert "Zoë Ørsted".encode() in written and b"\\u" not in written  # UTF-8, not escaped
