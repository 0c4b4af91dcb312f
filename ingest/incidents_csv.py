"""Reading incidents (crimes, calls for service, injuries) from CSV files and JSON records.

Columns are matched by name, trimmed, case-insensitively, spaces read as underscores (so
police.uk's bulk "Crime ID", "Crime type", "Longitude" work as well as its API's columns):

- time: ``ts`` (or ``time``, ``timestamp``), ISO 8601 with a UTC offset or epoch seconds; or
  ``month`` (``YYYY-MM``) when the source gives nothing finer. A row with an empty ``ts`` uses its
  ``month``. A month-only incident is placed at the start of its month (00:00 UTC on the 1st)
  with ``ts_end`` at the start of the next month, and counts in a time range only when its
  whole month lies inside (docs/semantics.md "Incidents").
- ``lat``/``latitude``, ``lon``/``lng``/``longitude``: WGS84 degrees; ``category`` (or ``crime_type``).
- optional: ``incident_id`` (or ``id``, ``crime_id``), ``source`` (or ``kind``: crime, call or
  injury; the caller's default otherwise) and ``harm_weight`` (or ``harm``: a number >= 0).

Import is idempotent by (source, id). A row without an id gets one derived from its content
(source, time, position, category) and its occurrence among identical rows of the file, so
importing the same file again still changes nothing. An id repeated within one file keeps
its last row (``ParsedIncidents.repeated`` counts the others).

Incident files run to thousands or hundreds of thousands of rows, not the millions of a ping
export, so rows are read with the csv module: line numbers are exact physical lines even
when a quoted value holds a line break. Bad rows never abort the read: each comes back as an
``IncidentError`` naming its line, field and reason (``field: reason``, worded by the input
rules of ``ingest.rules`` as for pings), beside the good rows. Strings, in CSV cells and in
JSON records alike, are read as text: ``"51.5"`` is a number here, unlike in a ping.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest.csv_pings import CsvError
from ingest.rules import ID, LAT, LON, REQUIRED, TIMESTAMP, NumberRule, TextRule, not_utf8, show

__all__ = [
    "SOURCES",
    "CsvError",
    "Incident",
    "IncidentError",
    "ParsedIncidents",
    "column_key",
    "column_positions",
    "data_rows",
    "parse_incident_csv",
    "parse_incident_records",
    "read_incident_csv",
]

#: What an incident may be: recorded crime, a call for service, an injury (e.g. A&E data).
SOURCES: tuple[str, ...] = ("crime", "call", "injury")
CATEGORY = TextRule(100, required=True)
HARM = NumberRule(0.0)
#: Canonical field -> the column names accepted for it, first found wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("incident_id", "id", "crime_id"),
    "ts": ("ts", "time", "timestamp"),
    "month": ("month",),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "longitude"),
    "category": ("category", "crime_type"),
    "source": ("source", "kind"),
    "harm_weight": ("harm_weight", "harm"),
}
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident; times are epoch seconds UTC, `ts_end == ts` unless only the month is known."""

    incident_id: str
    source: str
    ts: float
    ts_end: float
    lat: float
    lon: float
    category: str
    harm_weight: float | None = None

    @property
    def precision(self) -> str:
        return "second" if self.ts_end == self.ts else "month"


@dataclass(frozen=True, slots=True)
class IncidentError:
    """A rejected row: its physical CSV line (header = line 1) or its position in a JSON array."""

    field: str | None
    reason: str
    line: int | None = None
    index: int | None = None


@dataclass(slots=True)
class ParsedIncidents:
    """Good incidents (one per (source, id)) and the rejected rows, in input order."""

    incidents: list[Incident] = field(default_factory=list)
    errors: list[IncidentError] = field(default_factory=list)
    rows: int = 0  # data rows read (blank lines not counted)
    repeated: int = 0  # rows whose (source, id) came again later in the input (the later one kept)

    @property
    def rejected(self) -> int:
        """Rows rejected (a row with several bad fields has several errors)."""
        return len({(e.line, e.index) for e in self.errors})


def read_incident_csv(path: str | os.PathLike[str], default_source: str = "crime") -> ParsedIncidents:
    """Read a whole incident CSV file; CsvError if it cannot be read or lacks required columns."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            return parse_incident_csv(f, default_source, name)
    except OSError as e:
        raise CsvError(f"cannot read {name}: {e.strerror or e}") from None


def parse_incident_csv(lines: Iterable[str], default_source: str = "crime", name: str = "CSV") -> ParsedIncidents:
    """Parse CSV text (an open file or lines with their line breaks)."""
    _check_source(default_source)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise CsvError(f"{name}: header row unreadable ({e})") from None
    if header is None:
        raise CsvError(f"{name}: file is empty (no header row)")
    columns = column_positions(header, ALIASES)
    missing = [f for f in ("lat", "lon", "category") if columns[f] is None]
    if columns["ts"] is None and columns["month"] is None:
        missing.append("ts (or time, timestamp, month)")
    if missing:
        shown = ", ".join(show(n) for n in header[:20]) + (", ..." if len(header) > 20 else "")
        raise CsvError(f"{name}: missing required column(s) {', '.join(missing)} (header has: {shown})")
    out = _Collector(default_source)
    for line, row, malformed in data_rows(reader):
        if row is None:
            out.parsed.errors.append(IncidentError(None, malformed, line=line))
            continue
        out.parsed.rows += 1
        if len(row) != len(header):
            out.reject(f"row has {len(row)} fields, header has {len(header)}", None, line=line)
            continue
        values = {f: row[i] for f, i in columns.items() if i is not None}
        out.add(values, line=line)
    return out.done()


def parse_incident_records(records: Iterable[Any], default_source: str = "crime") -> ParsedIncidents:
    """Validate JSON objects with the same fields and rules as the CSV columns."""
    _check_source(default_source)
    out = _Collector(default_source)
    for index, record in enumerate(records):
        out.parsed.rows += 1
        if not isinstance(record, Mapping):
            out.reject("must be a JSON object", None, index=index)
            continue
        keys = {column_key(str(k)): v for k, v in record.items()}
        values = {f: next((keys[a] for a in names if a in keys), None) for f, names in ALIASES.items()}
        out.add(values, index=index)
    return out.done()


def column_key(name: str) -> str:
    """How a column or JSON key is matched: trimmed, lower case, spaces as underscores."""
    return re.sub(r"\s+", "_", name.strip().lower())


def column_positions(header: Sequence[str], aliases: Mapping[str, Sequence[str]]) -> dict[str, int | None]:
    """Each field's column in the header (the first alias found; None when absent)."""
    position: dict[str, int] = {}
    for i, raw in enumerate(header):
        position.setdefault(column_key(raw), i)
    return {f: next((position[a] for a in names if a in position), None) for f, names in aliases.items()}


def data_rows(reader: Any) -> Iterator[tuple[int, list[str] | None, str]]:
    """The non-blank rows after the header of a csv.reader with their physical line: (line, cells,
    "") or, for a row the csv module cannot read, (line, None, reason); never stops at a bad row."""
    last_line = reader.line_num
    while True:
        try:
            row = next(reader, None)
        except csv.Error as e:
            yield last_line + 1, None, f"malformed CSV: {e}"
            last_line = reader.line_num
            continue
        if row is None:
            return
        line, last_line = last_line + 1, reader.line_num
        if row and any(cell.strip() for cell in row):
            yield line, row, ""


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")


class _Collector:
    """Validates rows into incidents, deriving missing ids and keeping the last of a repeated id."""

    def __init__(self, default_source: str) -> None:
        self.default_source = default_source
        self.parsed = ParsedIncidents()
        self.by_key: dict[tuple[str, str], Incident] = {}
        self.seen_content: dict[str, int] = {}

    def reject(self, reason: str, field: str | None, *, line: int | None = None, index: int | None = None) -> None:
        self.parsed.errors.append(IncidentError(field, reason, line=line, index=index))

    def add(self, values: Mapping[str, Any], *, line: int | None = None, index: int | None = None) -> None:
        result = _incident(values, self.default_source)
        if isinstance(result, list):
            for field_name, reason in result:
                self.reject(reason, field_name, line=line, index=index)
            return
        source, given_id, ts, ts_end, lat, lon, category, harm = result
        if given_id is None:
            content = f"{source}\x1f{ts!r}\x1f{ts_end!r}\x1f{lat!r}\x1f{lon!r}\x1f{category}"
            k = self.seen_content.get(content, 0)
            self.seen_content[content] = k + 1
            given_id = f"h:{hashlib.blake2b(content.encode(), digest_size=10).hexdigest()}:{k}"
        key = (source, given_id)
        if key in self.by_key:
            self.parsed.repeated += 1
            del self.by_key[key]  # re-inserted below: the last row wins and keeps input order
        self.by_key[key] = Incident(given_id, source, ts, ts_end, lat, lon, category, harm)

    def done(self) -> ParsedIncidents:
        self.parsed.incidents = list(self.by_key.values())
        return self.parsed


_Fields = tuple[str, str | None, float, float, float, float, str, float | None]


def _incident(values: Mapping[str, Any], default_source: str) -> _Fields | list[tuple[str | None, str]]:
    """The validated fields of one row, or every (field, reason) wrong with it."""
    faults: list[tuple[str | None, str]] = []

    def fail(name: str) -> Callable[[str], None]:
        return lambda reason: faults.append((name, f"{name}: {reason}"))

    given_id = _text(values.get("id"), ID, fail("id"), required=False)
    times = _times(values.get("ts"), values.get("month"), fail)
    lat = _number(values.get("lat"), LAT, fail("lat"))
    lon = _number(values.get("lon"), LON, fail("lon"))
    category = _text(values.get("category"), CATEGORY, fail("category"))
    source = _text(values.get("source"), ID, fail("source"), required=False) or default_source
    if source not in SOURCES:
        fail("source")(f"must be one of {', '.join(SOURCES)}, got {show(source)}")
    harm = _number(values.get("harm_weight"), HARM, fail("harm_weight"))
    if faults or times is None or lat is None or lon is None or category is None:
        return faults
    return source, given_id, times[0], times[1], lat, lon, category, harm


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, rule: TextRule, fail: Callable[[str], None], *, required: bool = True) -> str | None:
    """A text field by its rule, trimmed; a JSON integer id is read as its digits."""
    if _blank(value):
        if required:
            fail(REQUIRED)
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        value = value.strip()
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # the file's undecodable bytes, kept as surrogates
            fail(not_utf8(value.encode("utf-8", "surrogateescape")))
            return None
    reason = rule.reason(value)
    if reason is not None:
        fail(reason)
        return None
    return str(value)


def _number(value: Any, rule: NumberRule, fail: Callable[[str], None]) -> float | None:
    """A number by its rule; text (a CSV cell, a JSON string) is parsed, as CSV cells are."""
    number = rule.parse(value, text=isinstance(value, str))
    if isinstance(number, str):
        fail(number)
        return None
    return number


def _times(ts: Any, month: Any, fail: Callable[[str], Callable[[str], None]]) -> tuple[float, float] | None:
    """(ts, ts_end): the instant twice, or the month's start and the next month's start."""
    if not _blank(ts):
        value = TIMESTAMP.parse(ts, text=isinstance(ts, str))
        if isinstance(value, str):
            fail("ts")(value)
            return None
        assert value is not None
        return value, value
    if _blank(month):
        fail("ts")(f"{REQUIRED} (or a month)")
        return None
    match = _MONTH_RE.match(month.strip()) if isinstance(month, str) else None
    if match is None or not 1 <= int(match[2]) <= 12:
        fail("month")(f"must be YYYY-MM, got {show(month)}")
        return None
    year, mon = int(match[1]), int(match[2])
    if not TIMESTAMP.lo_dt.year <= year < TIMESTAMP.hi_dt.year:
        fail("month")(f"{TIMESTAMP.words}, got {show(month)}")
        return None
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()
