"""One set of input rules: a value one path refuses, every path refuses, with the same words.

Each case is one bad value of one field, given as JSON (Kafka, HTTP, incident records) and as
the text of a CSV cell or query parameter (ping CSV, incident CSV, API query, CLI argument)
where that format can carry it; every path that has the field must give the expected reason.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException

from api.timeparams import parse_time
from geofence.fences import FenceError
from geofence.plans import PlanError
from ingest.csv_pings import read_ping_csv
from ingest.geojson_fences import fences_from_geojson
from ingest.incidents_csv import parse_incident_csv, parse_incident_records
from ingest.ping_message import parse_http_body, parse_messages
from ingest.plan_file import parse_plan
from ingest.rules import TIMESTAMP, InputError, show
from services.measures.incidents import _cli_time

GOOD: dict[str, Any] = {"device_id": "R1", "ts": "2026-11-21T22:03:00Z", "lat": 51.5, "lon": -0.12}
CSV_FIELDS = ["device_id", "ts", "lat", "lon", "accuracy_m", "officer_id", "callsign", "status", "source",
              "speed_mps", "heading_deg", "fence_id"]  # fmt: skip
ABSENT = object()  # the field left out (JSON) / an empty cell (CSV)
NO_TEXT = object()  # a JSON-only value: text formats cannot express it
YEARS = "must be in the years 1970-9998 UTC (epoch in seconds, not milliseconds)"
ISO_OR_EPOCH = "must be ISO 8601 with a UTC offset or epoch seconds"

#: (field, JSON value, CSV/query text, reason): one row per bad value.
CASES: list[tuple[str, Any, Any, str]] = [
    # missing
    ("device_id", ABSENT, "", "is required"),
    ("ts", ABSENT, "", "is required"),
    ("lat", ABSENT, "", "is required"),
    ("lon", None, "", "is required"),  # JSON null is no value either
    # wrong type (JSON only)
    ("device_id", 12345, NO_TEXT, "must be a string, got 12345"),
    ("officer_id", 7, NO_TEXT, "must be a string, got 7"),
    ("ts", True, NO_TEXT, f"{ISO_OR_EPOCH}, got true"),
    ("lat", True, NO_TEXT, "must be a number, got true"),
    ("lat", [51.5], NO_TEXT, "must be a number, got an array"),
    # not a number
    ("lat", "north", "north", "must be a number, got 'north'"),
    ("speed_mps", "fast", "fast", "must be a number, got 'fast'"),  # the CSV reader used to carry it
    ("heading_deg", "east", "east", "must be a number, got 'east'"),
    # out of range, not finite
    ("lat", 95, "95", "must be between -90 and 90, got 95"),
    ("lon", -180.5, "-180.5", "must be between -180 and 180, got -180.5"),
    ("lat", float("nan"), "nan", "must be finite, got nan"),
    ("accuracy_m", -1, "-1", "must be >= 0, got -1"),
    ("accuracy_m", float("inf"), "inf", "must be finite, got inf"),
    ("heading_deg", 360, "360", "must be >= 0 and < 360, got 360"),  # the CSV reader used to accept it
    ("heading_deg", -0.5, "-0.5", "must be >= 0 and < 360, got -0.5"),
    ("speed_mps", float("-inf"), "-inf", "must be finite, got -inf"),
    # too long
    ("device_id", "d" * 65, "d" * 65, "must be at most 64 characters, got 65"),
    ("callsign", "c" * 65, "c" * 65, "must be at most 64 characters, got 65"),  # unbounded in CSV before
    ("officer_id", "é" * 65, "é" * 65, "must be at most 64 characters, got 65"),  # characters, not bytes
    ("fence_id", "f" * 129, "f" * 129, "must be at most 128 characters, got 129"),
    # NUL and other control characters: one rule for every text field
    ("device_id", "R\x007", "R\x007", "holds control character U+0000: 'R\\x007'"),
    ("officer_id", "PC\x00", "PC\x00", "holds control character U+0000: 'PC\\x00'"),
    ("callsign", "C\x1bX", "C\x1bX", "holds control character U+001B: 'C\\x1bX'"),
    ("status", "on\x7f", "on\x7f", "holds control character U+007F: 'on\\x7f'"),
    ("source", "r\x85", "r\x85", "holds control character U+0085: 'r\\x85'"),  # C1
    ("fence_id", "A\x01", "A\x01", "holds control character U+0001: 'A\\x01'"),
    # timestamps: forms
    ("ts", "yesterday", "yesterday", f"{ISO_OR_EPOCH}, got 'yesterday'"),
    ("ts", "2026-11-21T22:03:00", "2026-11-21T22:03:00", "has no UTC offset: '2026-11-21T22:03:00'"),
    ("ts", "2026-11-21 22:03", "2026-11-21 22:03", "has no UTC offset: '2026-11-21 22:03'"),
    ("ts", "2026-11-21T22:03:00+01", "2026-11-21T22:03:00+01", f"{ISO_OR_EPOCH}, got '2026-11-21T22:03:00+01'"),
    ("ts", "2026-11-21T22+01:00", "2026-11-21T22+01:00", f"{ISO_OR_EPOCH}, got '2026-11-21T22+01:00'"),
    ("ts", "20261121T220300Z", "20261121T220300Z", f"{ISO_OR_EPOCH}, got '20261121T220300Z'"),
    ("ts", "2026-11-21", "2026-11-21", f"{ISO_OR_EPOCH}, got '2026-11-21'"),
    ("ts", "2026-02-30T00:00:00Z", "2026-02-30T00:00:00Z", "is not a valid date and time: '2026-02-30T00:00:00Z'"),
    ("ts", "1795298580", NO_TEXT, "epoch seconds must be a JSON number, not a string: '1795298580'"),
    ("ts", float("nan"), "nan", "must be finite, got nan"),
    # timestamps: range (year 1 and 9999 used to overflow in reports)
    ("ts", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z", f"{YEARS}, got '0001-01-01T00:00:00Z'"),
    ("ts", "1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z", f"{YEARS}, got '1969-12-31T23:59:59Z'"),
    ("ts", "9999-01-01T00:00:00Z", "9999-01-01T00:00:00Z", f"{YEARS}, got '9999-01-01T00:00:00Z'"),
    ("ts", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z", f"{YEARS}, got '9999-12-31T23:59:59Z'"),
    ("ts", -1, "-1", f"{YEARS}, got -1"),
    ("ts", 1795298580000, "1795298580000", f"{YEARS}, got 1795298580000"),  # epoch milliseconds
]


def _json_ping(field: str, value: Any) -> dict[str, Any]:
    ping = {**GOOD, "officer_id": "PC 1"}
    if value is ABSENT:
        ping.pop(field, None)
    else:
        ping[field] = value
    return ping


def _kafka(field: str, value: Any) -> str:
    (reject,) = parse_messages([json.dumps(_json_ping(field, value)).encode()]).rejects
    return str(reject)


def _http(field: str, value: Any) -> str:
    (reject,) = parse_http_body(json.dumps([_json_ping(field, value)]).encode(), "application/json").rejects
    return str(reject)


def _ping_csv(tmp_path: Path, field: str, text: str) -> str:
    row = {**GOOD, field: text}
    path = tmp_path / "pings.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        writer.writerow([row.get(name, "") for name in CSV_FIELDS])
    errors = [e for chunk in read_ping_csv(path) for e in chunk.errors]
    assert [e.line for e in errors] == [2]
    return errors[0].reason


def _incident_reasons(field: str, value: Any, text: Any) -> list[str]:
    """Incident CSV and JSON records, for the fields incidents share with pings."""
    good = {"ts": GOOD["ts"], "lat": 51.5, "lon": -0.12, "category": "Robbery"}
    reasons = []
    if text is not NO_TEXT:
        row = {**good, field: text}
        lines = ["ts,lat,lon,category\n", ",".join(str(row[k]) for k in ("ts", "lat", "lon", "category")) + "\n"]
        reasons += [e.reason for e in parse_incident_csv(lines).errors]
    record = {k: v for k, v in {**good, field: value}.items() if v is not ABSENT}
    reasons += [e.reason for e in parse_incident_records([record]).errors]
    return reasons


def _query(text: str) -> str:
    with pytest.raises(HTTPException) as info:
        parse_time("ts", text)
    return str(info.value.detail[0]["msg"]).removeprefix("ts ")  # type: ignore[index]


def _cli(text: str) -> str:
    with pytest.raises(InputError) as info:
        _cli_time("ts", text)
    return str(info.value)


@pytest.mark.parametrize(("field", "value", "text", "reason"), CASES)
def test_rules_bad_value_refused_by_every_path_with_same_reason(
    tmp_path: Path, field: str, value: Any, text: Any, reason: str
) -> None:
    want = f"{field}: {reason}"
    assert _kafka(field, value) == want
    assert _http(field, value) == want
    if text is not NO_TEXT:
        assert _ping_csv(tmp_path, field, text) == want
    # An incident without ts may give its month; incident records read strings as text, as CSV cells.
    if field in ("ts", "lat", "lon") and value is not ABSENT and not (text is NO_TEXT and isinstance(value, str)):
        assert _incident_reasons(field, value, text) == [want] * (1 + (text is not NO_TEXT))
    if field == "ts" and isinstance(text, str) and text:
        assert _query(text) == reason
        assert _cli(text) == want


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("p" * 129, "must be at most 128 characters, got 129"),
        ("p\x00", "holds control character U+0000: 'p\\x00'"),
        ("p\n1", "holds control character U+000A: 'p\\n1'"),
        (7, "must be a string, got 7"),
    ],
)
def test_rules_bad_id_refused_by_plans_fences_and_incidents_alike(value: Any, reason: str) -> None:
    window = {"days": ["mon"], "start": "20:00", "end": "22:00", "visits": 1}
    with pytest.raises(PlanError) as plan:
        parse_plan({"plan_id": value, "fence_id": "A", "min_visit_min": 10, "windows": [window]})
    assert str(plan.value) == f"plan_id: a plan: {reason}"
    if isinstance(value, str):  # GeoJSON and incident ids may be numbers, read as their digits
        square = {"type": "Polygon", "coordinates": [[[0, 0], [0, 0.001], [0.001, 0.001], [0.001, 0], [0, 0]]]}
        with pytest.raises(FenceError) as fence:
            fences_from_geojson({"type": "Feature", "id": value, "properties": {}, "geometry": square})
        assert str(fence.value) == f"feature 0: id: {reason}"
        (error,) = parse_incident_records([{"id": value, "ts": 0, "lat": 1, "lon": 2, "category": "X"}]).errors
        assert error.reason == f"id: {reason}"


def test_rules_fence_name_longer_than_limit_refused() -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [0, 0.001], [0.001, 0.001], [0.001, 0], [0, 0]]]}
    with pytest.raises(FenceError, match=r"fence 'A': name: must be at most 200 characters, got 201"):
        fences_from_geojson({"type": "Feature", "id": "A", "properties": {"name": "n" * 201}, "geometry": square})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1970-01-01T00:00:00Z", 0.0),  # first instant accepted
        ("9998-12-31T23:59:59.999999Z", 253370764799.999999),  # last instant accepted
        ("2026-11-21t22:03:00z", 1795298580.0),  # RFC 3339 lower case
        ("2026-11-21 23:03:00+0100", 1795298580.0),
        ("2026-11-21T22:03Z", 1795298580.0),  # seconds may be left out
        ("2026-11-21T22:03:00.123456789Z", 1795298580.123456),  # truncated to microseconds
        (" 1795298580.5 ", 1795298580.5),  # text is trimmed
    ],
)
def test_rules_timestamp_accepted_forms_give_same_seconds_on_every_path(
    tmp_path: Path, text: str, seconds: float
) -> None:
    assert TIMESTAMP.parse(text, text=True) == pytest.approx(seconds, abs=1e-6)
    assert parse_time("ts", text) == TIMESTAMP.parse(text, text=True)
    (chunk,) = read_ping_csv(_write_row(tmp_path, text))
    assert chunk.errors == [] and chunk.batch.ts.tolist() == [TIMESTAMP.parse(text, text=True)]
    if not text.startswith(" "):
        parsed = parse_messages([json.dumps({**GOOD, "ts": text}).encode()])
        assert parsed.rejects == [] and parsed.batch.ts.tolist() == chunk.batch.ts.tolist()


def _write_row(tmp_path: Path, ts: str) -> Path:
    path = tmp_path / "one.csv"
    path.write_text(f"device_id,ts,lat,lon\nR1,{ts},51.5,-0.12\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("x" * 50, repr("x" * 37 + "...")),  # cut to 40 characters
        ("a\x00b", "'a\\x00b'"),  # escaped, one line
        (95.0, "95"),
        (90.000001, "90.000001"),
        (True, "true"),
        (None, "null"),
        ({"a": 1}, "an object"),
    ],
)
def test_rules_show_value_short_escaped_json_like(value: Any, shown: str) -> None:
    assert show(value) == shown
