"""Stored text into spreadsheet cells: never a formula, never a character that breaks the file.

Fence names, officer ids and callsigns reach the weekly report from ingest and from admins. A
spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (tab and CR can hide one) as a
formula (`=HYPERLINK(...)` leaks data when clicked): in CSV such text gets a leading `'`, as
OWASP's CSV-injection advice says; in XLSX every text is a string cell, never a formula. XLSX
(XML 1.0) cannot hold most control characters: they become U+FFFD, where openpyxl would refuse
the whole workbook.
"""

from __future__ import annotations

from typing import Any

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet.worksheet import Worksheet

#: First characters a spreadsheet reads as the start of a formula (OWASP "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """Text a spreadsheet opening the CSV shows as text; other values as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def append_xlsx_row(sheet: Worksheet, row: Any) -> None:
    """Append row to sheet, every text as a string cell with no character XML cannot hold."""
    sheet.append([ILLEGAL_CHARACTERS_RE.sub("\ufffd", v) if isinstance(v, str) else v for v in row])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"  # openpyxl made "=..." a formula cell
