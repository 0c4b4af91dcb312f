"""Reading assignments (who carries which radio, when) from CSV files, JSON files and API bodies.

Columns (CSV) and keys (JSON) are matched as incident columns are: trimmed, case-insensitively,
spaces read as underscores. Fields: ``device_id``, ``officer_id``, optional ``callsign`` and
``team``, ``from`` (or ``valid_from``, ``start``) and optional ``to`` (or ``valid_to``, ``end``;
empty: open-ended), timestamps by the input rules (ISO 8601 with an offset or epoch seconds);
optional ``assignment_id`` (or ``id``), else ``<device_id>@<from as epoch seconds>``, so loading
a file again replaces its rows instead of clashing with them.

Bad rows never abort a read: each comes back as an `AssignmentError` naming its CSV line or
JSON item and the field, beside the good rows. Two rows of one input that overlap for one
device are refused too (the later one, naming the earlier); the store refuses overlaps with
stored assignments the same way (services/store/assignments.py).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from geofence.assignments import Assignment
from geofence.events import format_ts
from ingest.csv_pings import CsvError
from ingest.incidents_csv import column_key, column_positions, data_rows
from ingest.rules import DEVICE_ID, ID, TEXT, TIMESTAMP, InputError, TextRule, not_utf8, show

__all__ = [
    "ALIASES",
    "ASSIGNMENT_ID",
    "OFFICER",
    "AssignmentError",
    "ParsedAssignments",
    "overlap_reason",
    "parse_assignment",
    "parse_assignment_csv",
    "parse_assignment_records",
    "read_assignment_file",
    "where",
]

#: An assignment must name its officer (a ping's officer_id is optional; here it is the point).
OFFICER = TextRule(TEXT.limit, required=True)
#: Its id is a key in the store and in URLs, as other ids are, but may be left out (derived).
ASSIGNMENT_ID = TextRule(ID.limit)
#: Canonical field -> the column names accepted for it, first found wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "assignment_id": ("assignment_id", "id"),
    "device_id": ("device_id", "issi", "device"),
    "officer_id": ("officer_id", "officer"),
    "callsign": ("callsign",),
    "team": ("team",),
    "from": ("from", "valid_from", "start"),
    "to": ("to", "valid_to", "end"),
}
_TEXT_RULES: dict[str, TextRule] = {
    "assignment_id": ASSIGNMENT_ID,
    "device_id": DEVICE_ID,
    "officer_id": OFFICER,
    "callsign": TEXT,
    "team": TEXT,
}


@dataclass(frozen=True, slots=True)
class AssignmentError:
    """A refused row: its physical CSV line (header = line 1) or its position in a JSON array."""

    field: str | None
    reason: str
    line: int | None = None
    index: int | None = None

    @property
    def where(self) -> str:
        return where(self.line, self.index)


def where(line: int | None, index: int | None) -> str:
    """A row's place in its input, as reports name it: "line 7" (CSV) or "item 3" (JSON)."""
    return f"line {line}" if line is not None else f"item {index}"


@dataclass(slots=True)
class ParsedAssignments:
    """Good assignments and the refused rows, in input order; `origins[i]` is the (line, index) of
    assignments[i]."""

    assignments: list[Assignment] = field(default_factory=list)
    origins: list[tuple[int | None, int | None]] = field(default_factory=list)
    errors: list[AssignmentError] = field(default_factory=list)
    rows: int = 0


def overlap_reason(new: Assignment, old: Assignment, old_where: str | None = None) -> str:
    """Why `new` is refused: it overlaps `old` for the same device (both named)."""
    to = "open-ended" if old.valid_to is None else f"to {format_ts(old.valid_to)}"
    at = f" ({old_where})" if old_where else ""
    return (
        f"assignment {show(new.assignment_id)} overlaps assignment {show(old.assignment_id)}{at} of device "
        f"{show(old.device_id)} (officer {show(old.officer_id)}, from {format_ts(old.valid_from)} {to})"
    )


def parse_assignment(values: Mapping[str, Any]) -> Assignment:
    """One assignment from canonical fields (text or JSON values); InputError for the first bad field."""
    text: dict[str, str | None] = {}
    for name, rule in _TEXT_RULES.items():
        value = values.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # an ISSI or id written as a JSON number
        if isinstance(value, str):
            value = value.strip()
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a file's undecodable bytes, kept as surrogates
                raise InputError(name, not_utf8(value.encode("utf-8", "surrogateescape"))) from None
        text[name] = rule.check(name, value)
    start = TIMESTAMP.check("from", values.get("from"), text=isinstance(values.get("from"), str))
    raw_to = values.get("to")
    end = TIMESTAMP.parse(raw_to, text=isinstance(raw_to, str))
    if isinstance(end, str):
        raise InputError("to", end)
    if end is not None and end <= start:
        raise InputError("to", f"must be after from, got {show(raw_to)}")
    device, officer = str(text["device_id"]), str(text["officer_id"])
    return Assignment(
        text["assignment_id"] or f"{device}@{start:.6f}".rstrip("0").rstrip("."),
        device, officer, text["callsign"], text["team"], start, end,
    )  # fmt: skip


class _Collector:
    """Validates rows, refusing overlaps within the input (checked per device) and keeping the
    last row of a repeated id."""

    def __init__(self) -> None:
        self.parsed = ParsedAssignments()
        self.kept: dict[str, tuple[Assignment, tuple[int | None, int | None]]] = {}
        self.of_device: dict[str, dict[str, Assignment]] = {}

    def add(self, values: Mapping[str, Any], *, line: int | None = None, index: int | None = None) -> None:
        try:
            a = parse_assignment(values)
        except InputError as e:
            self.parsed.errors.append(AssignmentError(e.field, str(e), line, index))
            return
        others = self.of_device.setdefault(a.device_id, {})
        clash = next((b for b in others.values() if b.assignment_id != a.assignment_id and a.overlaps(b)), None)
        if clash is not None:
            reason = overlap_reason(a, clash, where(*self.kept[clash.assignment_id][1]))
            self.parsed.errors.append(AssignmentError("from", reason, line, index))
            return
        if a.assignment_id in self.kept:  # an id repeated in one input: the last row wins
            old = self.kept.pop(a.assignment_id)[0]
            del self.of_device[old.device_id][old.assignment_id]
        self.kept[a.assignment_id] = (a, (line, index))
        others[a.assignment_id] = a

    def done(self) -> ParsedAssignments:
        self.parsed.assignments = [a for a, _ in self.kept.values()]
        self.parsed.origins = [origin for _, origin in self.kept.values()]
        return self.parsed


def parse_assignment_csv(lines: Iterable[str], name: str = "CSV") -> ParsedAssignments:
    """Parse CSV text (an open file or lines with their line breaks); CsvError for a bad header."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise CsvError(f"{name}: file is empty (no header row)")
    columns = column_positions(header, ALIASES)
    missing = [f for f in ("device_id", "officer_id", "from") if columns[f] is None]
    if missing:
        raise CsvError(f"{name}: missing required column(s) {', '.join(missing)}")
    out = _Collector()
    for line, row, malformed in data_rows(reader):
        if row is None:
            out.parsed.errors.append(AssignmentError(None, malformed, line=line))
            continue
        out.parsed.rows += 1
        if len(row) != len(header):
            out.parsed.errors.append(
                AssignmentError(None, f"row has {len(row)} fields, header has {len(header)}", line)
            )
            continue
        out.add({f: row[i] for f, i in columns.items() if i is not None}, line=line)
    return out.done()


def parse_assignment_records(records: Iterable[Any]) -> ParsedAssignments:
    """Validate JSON objects with the same fields and rules as the CSV columns."""
    out = _Collector()
    for index, record in enumerate(records):
        out.parsed.rows += 1
        if not isinstance(record, Mapping):
            out.parsed.errors.append(AssignmentError(None, "must be a JSON object", index=index))
            continue
        keys = {column_key(str(k)): v for k, v in record.items()}
        values = {f: next((keys[a] for a in names if a in keys), None) for f, names in ALIASES.items()}
        out.add(values, index=index)
    return out.done()


def read_assignment_file(path: str | os.PathLike[str]) -> ParsedAssignments:
    """A `.json` file (an array, or {"assignments": [...]}) or a CSV file; CsvError if unreadable."""
    name = os.fspath(path)
    try:
        if name.lower().endswith(".json"):
            with open(name, encoding="utf-8") as f:
                doc = json.load(f)
            records = doc.get("assignments") if isinstance(doc, dict) else doc
            if not isinstance(records, list):
                raise CsvError(f'{name}: must be a JSON array of assignments or {{"assignments": [...]}}')
            return parse_assignment_records(records)
        with open(name, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            return parse_assignment_csv(f, name)
    except OSError as e:
        raise CsvError(f"cannot read {name}: {e.strerror or e}") from None
    except (ValueError, csv.Error) as e:  # JSON syntax, undecodable text
        if isinstance(e, CsvError):
            raise
        raise CsvError(f"{name}: unreadable ({e})") from None
