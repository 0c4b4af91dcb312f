"""Incidents: reading CSV (the real Camden crimes and bad rows), the store, outcomes per hot spot, the CLI."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import shapely
import sqlalchemy as sa
from support.helpers import T0
from support.incidents import BAD_CSV, BAD_CSV_ERRORS, CAMDEN, DAY, HAND_INCIDENTS, hand_fences
from support.paths import SAMPLES

from ingest.geojson_fences import load_fences
from ingest.incidents_csv import (
    CsvError,
    Incident,
    IncidentError,
    parse_incident_records,
    read_incident_csv,
)
from services.cli import main
from services.measures.incidents import before_during, incidents_table, outcome_counts, store_incidents
from services.store import Store

SAMPLE_FENCES = SAMPLES / "fences.geojson"
JUNE_2019 = datetime(2019, 6, 1, tzinfo=UTC).timestamp()
JULY_2019 = datetime(2019, 7, 1, tzinfo=UTC).timestamp()


def camden_rows() -> list[dict[str, str]]:
    with CAMDEN.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------- reading


def test_read_camden_every_row_month_only_at_start_of_june_utc() -> None:
    rows = camden_rows()
    parsed = read_incident_csv(CAMDEN)
    assert (parsed.rows, len(parsed.incidents), parsed.errors) == (len(rows), len(rows), [])
    assert len(rows) == 4075  # as the data README says
    assert {i.incident_id for i in parsed.incidents} == {r["crime_id"] for r in rows}
    assert {i.category for i in parsed.incidents} == {r["category"] for r in rows}
    assert len({i.category for i in parsed.incidents}) == 14
    first = parsed.incidents[0]
    assert first == Incident("75265998", "crime", JUNE_2019, JULY_2019, 51.529117, -0.126199, "Anti-social behaviour")
    assert {(i.ts, i.ts_end, i.precision) for i in parsed.incidents} == {(JUNE_2019, JULY_2019, "month")}


def test_read_bad_rows_named_by_physical_line_and_good_rows_kept(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    parsed = read_incident_csv(path, "call")
    assert [(e.line, e.field, e.reason) for e in parsed.errors] == BAD_CSV_ERRORS
    assert parsed.rows == 8  # the blank line carries nothing
    assert parsed.incidents == [
        Incident("g1", "call", T0, T0, 51.5, -0.12, "Robbery"),
        Incident("g2", "call", 1763762400.0, 1763762400.0, 51.5, -0.12, 'Theft, from "person"', 2.5),
        Incident("g3", "call", T0 - 1800, T0 - 1800, 51.5, -0.12, "Robbery", 0.0),
    ]


def test_read_police_uk_bulk_layout_without_ids_or_locations(tmp_path: Path) -> None:
    path = tmp_path / "met.csv"
    head = "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,Crime type,X\n"
    met = "Metropolitan Police Service,Metropolitan Police Service"
    path.write_text(
        head
        + f"abc123,2019-06,{met},-0.126199,51.529117,On or near Judd Street,E01000914,Camden 024B,Burglary,\n"
        + f",2019-06,{met},-0.126199,51.529117,On or near Judd Street,E01000914,Camden 024B,Anti-social behaviour,\n"
        + f",2019-06,{met},,,No location,,,Anti-social behaviour,\n"
        + f",2019-13,{met},-0.1,51.5,On or near X,E01000914,Camden 024B,Burglary,\n",
        encoding="utf-8",
    )
    parsed = read_incident_csv(path)
    assert [(e.line, e.field, e.reason) for e in parsed.errors] == [
        (4, "lat", "lat: is required"),
        (4, "lon", "lon: is required"),
        (5, "month", "month: must be YYYY-MM, got '2019-13'"),
    ]
    assert [(i.incident_id[:2], i.category, i.ts, i.ts_end) for i in parsed.incidents] == [
        ("ab", "Burglary", JUNE_2019, JULY_2019),
        ("h:", "Anti-social behaviour", JUNE_2019, JULY_2019),
    ]


def test_read_rows_without_id_get_stable_ids_and_identical_rows_stay_two(tmp_path: Path) -> None:
    path = tmp_path / "noid.csv"
    path.write_text("month,lat,lon,category\n2019-06,51.5,-0.1,Robbery\n2019-06,51.5,-0.1,Robbery\n")
    first, again = read_incident_csv(path), read_incident_csv(path)
    ids = [i.incident_id for i in first.incidents]
    assert len(set(ids)) == 2 and ids == [i.incident_id for i in again.incidents]
    assert [i[-2:] for i in ids] == [":0", ":1"]


def test_read_id_repeated_in_file_keeps_the_last_row(tmp_path: Path) -> None:
    path = tmp_path / "rep.csv"
    path.write_text("id,ts,lat,lon,category\nx,0,1,1,Robbery\ny,0,1,1,Drugs\nx,0,1,1,Burglary\n")
    parsed = read_incident_csv(path)
    assert [(i.incident_id, i.category) for i in parsed.incidents] == [("y", "Drugs"), ("x", "Burglary")]
    assert parsed.repeated == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [("id,ts,lon,category\n", "missing required column(s) lat"),
     ("id,lat,lon,category\n", "missing required column(s) ts (or time, timestamp, month)"),
     ("", "file is empty")],
)  # fmt: skip
def test_read_file_without_required_columns_refused_naming_them(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cols.csv"
    path.write_text(text)
    with pytest.raises(CsvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_incident_csv(path)


def test_json_records_errors_name_position_and_field() -> None:
    parsed = parse_incident_records(
        [{"id": "a", "time": "2026-11-21T22:00:00Z", "latitude": 1, "lng": 2, "category": "Robbery", "kind": "injury"},
         {"id": "b", "ts": 0, "lat": True, "lon": 2, "category": "X"},
         "not an object",
         {"id": "c", "ts": 0, "lat": 1, "lon": 2, "category": "X", "source": "rumour"},
         {"id": "d", "ts": 0, "lat": 1, "lon": 2, "category": "X\x00"}],  # PostgreSQL text cannot hold NUL
    )  # fmt: skip
    assert parsed.incidents == [Incident("a", "injury", T0, T0, 1.0, 2.0, "Robbery")]
    assert parsed.errors == [
        IncidentError("lat", "lat: must be a number, got true", index=1),
        IncidentError(None, "must be a JSON object", index=2),
        IncidentError("source", "source: must be one of crime, call, injury, got 'rumour'", index=3),
        IncidentError("category", "category: holds control character U+0000: 'X\\x00'", index=4),
    ]


# ---------------------------------------------------------------------- the store


async def stored_count(store: Store) -> int:
    async with store.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(incidents_table))).scalar_one())


async def test_store_camden_import_twice_keeps_one_row_per_crime(store: Store) -> None:
    parsed = read_incident_csv(CAMDEN)
    first = await store_incidents(store, parsed.incidents)
    again = await store_incidents(store, parsed.incidents)
    n = len(camden_rows())
    assert (first.new, first.replaced) == (n, 0)
    assert (again.new, again.replaced) == (0, n)
    assert await stored_count(store) == n


async def test_outcomes_camden_per_sample_fence_equal_plain_point_in_polygon_count(store: Store) -> None:
    fences = load_fences(SAMPLE_FENCES)
    await store.upsert_fences(fences)
    await store_incidents(store, read_incident_csv(CAMDEN).incidents)
    counts = await outcome_counts(store, JUNE_2019, JULY_2019)
    rows = camden_rows()
    for fence in fences:
        want: dict[str, int] = {}
        for r in rows:
            if fence.area.intersects(shapely.Point(float(r["lon"]), float(r["lat"]))):
                want[r["category"]] = want.get(r["category"], 0) + 1
        assert counts[fence.id] == want
    assert sum(counts["HS00001"].values()) > 50
    # June is known only as a month: a range short of the whole month counts none of it.
    assert await outcome_counts(store, JUNE_2019, JULY_2019 - 1) == {f.id: {} for f in fences}


async def test_outcome_counts_hand_worked_per_fence_and_category(store: Store) -> None:
    await store.upsert_fences(hand_fences())
    await store_incidents(store, HAND_INCIDENTS)
    # [T0, T0 + 1 day): i1-i3 and i5 (i4 is at the end, excluded; i6 in no fence; i7, i8 before).
    assert await outcome_counts(store, T0, T0 + DAY) == {
        "A": {"Robbery": 2, "Drugs": 1},  # i1, i2 / i3
        "B": {"Robbery": 1, "Drugs": 1},  # i2 / i3 (the overlap of A and B)
        "C": {"Robbery": 1},  # i5, through the buffer
    }
    nov, dec = datetime(2026, 11, 1, tzinfo=UTC).timestamp(), datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    # All November: also i4, i7, i8 and the month-only m1.
    assert await outcome_counts(store, nov, dec) == {
        "A": {"Robbery": 3, "Burglary": 2, "Drugs": 1},  # i1 i2 i7 / i8 m1 / i3
        "B": {"Drugs": 2, "Robbery": 1},  # i3 i4 / i2
        "C": {"Robbery": 1},
    }
    assert await outcome_counts(store, nov, dec, fence_ids=["B", "nope"]) == {"B": {"Drugs": 2, "Robbery": 1}}


async def test_before_during_programme_rates_per_week_and_change(store: Store) -> None:
    await store.upsert_fences(hand_fences())
    await store_incidents(store, HAND_INCIDENTS)
    changes = {c.fence_id: c for c in await before_during(store, T0, T0 + 7 * DAY)}
    a, b = changes["A"], changes["B"]
    # Before [T0 - 7 d, T0): A has i7, i8. During [T0, T0 + 7 d): A has i1, i2, i3.
    assert (a.before.start, a.before.end, a.before.weeks) == (T0 - 7 * DAY, T0, 1.0)
    assert (a.before.count, a.during.count) == (2, 3)
    assert (a.change_per_week, a.change_pct) == (1.0, 50.0)
    # m1 (all November) overlaps both weeks without lying inside either: left out, counted apart.
    assert (a.before.partial, a.during.partial) == (1, 1)
    assert a.during.categories == {"Robbery": 2, "Drugs": 1}
    assert (b.before.count, b.during.count, b.change_per_week, b.change_pct) == (0, 3, 3.0, None)
    # Two weeks before, one during: per-week rates, not counts, are compared.
    two = {c.fence_id: c for c in await before_during(store, T0, T0 + 7 * DAY, start=T0 - 14 * DAY)}["A"]
    assert (two.before.count, two.before.per_week, two.during.per_week) == (2, 1.0, 3.0)
    assert two.change_pct == 200.0
    with pytest.raises(ValueError, match="end must be after"):
        await before_during(store, T0, T0)


# ---------------------------------------------------------------------- the command line


def test_cli_import_reports_bad_rows_as_file_line_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    code = main(["incidents", "import", str(path), "--data-dir", str(tmp_path / "var")])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [
        f"{path}:3: ts: has no UTC offset: '2026-11-21T22:00:00'",
        f"{path}:4: lat: must be between -90 and 90, got 91.5",
        f"{path}:7: ts: is required (or a month)",
        f"{path}:8: id: holds control character U+000A: 'b4\\nmulti'",
        f"{path}:8: lat: must be a number, got 'abc'",
        f"{path}:8: category: is required",
        f"{path}:8: harm_weight: must be a number, got 'x'",
        f"{path}:10: row has 4 fields, header has 6",
    ]
    assert out.strip() == f"{path}: 8 rows, 3 incidents imported (3 new, 0 replaced), 5 rejected"


def test_cli_import_without_columns_fails_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("id,when,where\n1,2,3\n")
    assert main(["incidents", "import", str(path), "--data-dir", str(tmp_path / "var")]) == 2
    assert capsys.readouterr().err.startswith(f"hotspots: error: {path}: missing required column(s) lat, lon")


def test_cli_camden_import_and_rank_write_loadable_fences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    var, out = str(tmp_path / "var"), tmp_path / "fences.geojson"
    assert main(["incidents", "import", str(CAMDEN), "--data-dir", var]) == 0
    n = len(camden_rows())
    assert f"{n} rows, {n} incidents imported ({n} new, 0 replaced), 0 rejected" in capsys.readouterr().out
    assert main(["incidents", "rank", "--top", "20", "--cell-m", "150", "--out", str(out), "--data-dir", var]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{n} incidents in ")
    fences = load_fences(out)
    assert len(fences) == 20
    doc = json.loads(out.read_text())
    top = doc["features"][0]
    west, south, east, north = shapely.bounds(fences[0].geometry)
    inside = [r for r in camden_rows() if west <= float(r["lon"]) < east and south <= float(r["lat"]) < north]
    assert top["properties"]["count"] == len(inside)
    assert printed[2].split()[1:3] == [fences[0].id, str(len(inside))]


def test_cli_rank_bad_weights_file_fails_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "w.json"
    weights.write_text('{"Robbery": -1}')
    code = main(["incidents", "rank", "--by", "harm", "--weights", str(weights), "--data-dir", str(tmp_path)])
    assert code == 2
    assert "harm weights must be a JSON object of category -> number >= 0" in capsys.readouterr().err
