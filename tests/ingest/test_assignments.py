"""Assignment files and records: good rows kept, every bad one refused with its line or item and field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ingest.assignments import parse_assignment_csv, parse_assignment_records, read_assignment_file
from ingest.csv_pings import CsvError

EIGHT_PM = 1795291200.0  # 2026-11-21T20:00:00Z

CSV = """Device ID,Officer,Callsign,Team,Valid From,Valid To
r1,PC A,Alpha 1,North,2026-11-21T20:00:00Z,2026-11-21T22:00:00Z
r1,PC B,,,2026-11-21T21:00:00Z,
r2,,,,2026-11-21T20:00:00Z,
r3,PC C,,,2026-11-21 20:00,
r4,PC D,,,1795291200,1795291100
r5,PC E,Echo\x07,,1795291200,
r6,PC F
r1,PC B,Bravo 2,South,2026-11-21T22:00:00Z,
"""


def test_csv_keeps_good_rows_and_reports_each_bad_one_by_line_and_field() -> None:
    parsed = parse_assignment_csv(io.StringIO(CSV))
    assert parsed.rows == 8
    assert [(a.assignment_id, a.device_id, a.officer_id, a.callsign, a.team, a.valid_from, a.valid_to)
            for a in parsed.assignments] == [
        ("r1@1795291200", "r1", "PC A", "Alpha 1", "North", EIGHT_PM, EIGHT_PM + 7200),
        ("r1@1795298400", "r1", "PC B", "Bravo 2", "South", EIGHT_PM + 7200, None),  # back to back: fine
    ]  # fmt: skip
    assert parsed.origins == [(2, None), (9, None)]
    got = [(e.line, e.field, e.reason) for e in parsed.errors]
    assert got[0][:2] == (3, "from")
    assert "overlaps assignment 'r1@1795291200' (line 2) of device 'r1' (officer 'PC A'" in got[0][2]
    assert got[1:] == [
        (4, "officer_id", "officer_id: is required"),
        (5, "from", "from: has no UTC offset: '2026-11-21 20:00'"),
        (6, "to", "to: must be after from, got '1795291100'"),
        (7, "callsign", "callsign: holds control character U+0007: 'Echo\\x07'"),
        (8, None, "row has 2 fields, header has 6"),
    ]


def test_records_use_the_same_rules_and_name_the_item() -> None:
    parsed = parse_assignment_records([
        {"assignment_id": "x1", "device_id": 2041, "officer_id": "PC A", "from": EIGHT_PM, "to": None},
        "r1,PC A",
        {"device_id": "r2", "officer_id": "PC B", "from": "yesterday"},
        {"device_id": "r3", "officer_id": "PC C", "from": 1.8e12},  # epoch milliseconds
        {"assignment_id": "x1", "device_id": "2041", "officer_id": "PC Z", "from": EIGHT_PM},  # same id: replaces
    ])  # fmt: skip
    assert [(a.assignment_id, a.device_id, a.officer_id) for a in parsed.assignments] == [("x1", "2041", "PC Z")]
    assert [(e.index, e.field, e.where) for e in parsed.errors] == [
        (1, None, "item 1"), (2, "from", "item 2"), (3, "from", "item 3"),
    ]  # fmt: skip
    assert parsed.errors[0].reason == "must be a JSON object"
    assert "epoch in seconds, not milliseconds" in parsed.errors[2].reason


def test_read_file_json_document_and_csv(tmp_path: Path) -> None:
    doc = tmp_path / "a.json"
    doc.write_text(json.dumps({"assignments": [{"device_id": "r1", "officer_id": "PC A", "from": EIGHT_PM}]}))
    assert [a.officer_id for a in read_assignment_file(doc).assignments] == ["PC A"]
    sheet = tmp_path / "a.csv"
    sheet.write_text(CSV, encoding="utf-8")
    assert len(read_assignment_file(sheet).errors) == 6


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "device_id,from\nr1,0\n", "missing required column(s) officer_id"),
        ("a.csv", "", "file is empty"),
        ("a.json", "{not json", "unreadable"),
        ("a.json", '{"rows": []}', "must be a JSON array of assignments"),
    ],
)
def test_read_file_refuses_an_unusable_file_whole(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CsvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_assignment_file(path)
    with pytest.raises(CsvError, match="cannot read"):
        read_assignment_file(tmp_path / "missing.csv")
