"""Reader of PEI logs: the SDS a TETRA radio reports on its Peripheral Equipment Interface, LIP ones made pings.

A radio (or a gateway radio in the control room) prints each SDS it receives as the unsolicited
result code of ETSI EN 300 392-5 (PEI), the user data in hex on the next line::

    +CTSDSR: <AI service>,[<calling party identity>],[<calling party identity type>],
             <called party identity>,<called party identity type>,<length>[,<end to end encryption>]
    <user data>

(one header line), e.g. ``+CTSDSR: 12,2269001,0,9999,0,84`` then ``0A112853A9FF4D4FFFE810``. The
calling party is the reporting radio: its identity (ISSI or ITSI, as printed) is the device id.
User data whose first octet is the LIP protocol identifier 0x0A is a location report, decoded
as ``ingest.lip_records`` decodes a record's payload; any other SDS (text, status...) is not a
position and is skipped without a word. Some radios print the user data after the header's
last comma instead of on the next line: read too. Other lines (AT commands, OK, other result
codes) are ignored.

PEI prints no time: the time a report was received comes from a timestamp a logger put before
the ``+CTSDSR:`` (ISO 8601 with an offset, or epoch seconds, optionally in brackets:
``2026-11-21T22:03:00.120Z +CTSDSR: ...``), else from ``received_at`` (``hotspots ingest pei``
gives the time it reads the line); without either the report is refused, since a short report
cannot be dated. Refusals are ``RowError``s on the header's line: a header without user data,
user data that is not hex or shorter than the header's length says (radios pad the hex to
whole octets, so longer is fine), a bad identity or time, and every payload refusal of the
decoder. The file is streamed, BATCH reports at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ingest.csv_pings import CsvChunk, RowError
from ingest.fixes import Source, stream_source
from ingest.lip import PROTOCOL_IDENTIFIER
from ingest.lip_records import lip_batch
from ingest.rules import DEVICE_ID, TIMESTAMP, show

__all__ = ["PeiError", "read_pei"]

BATCH = 4096
_HEADER = re.compile(r"^(?P<prefix>.*?)\+CTSDSR:\s*(?P<fields>.*?)\s*$")
_HEX = re.compile(r"[0-9A-Fa-f]+")


class PeiError(ValueError):
    """The log as a whole cannot be read."""


@dataclass(frozen=True, slots=True)
class _Header:
    line: int
    issi: str
    received_at: float
    bits: int


def read_pei(source: Source, *, received_at: Callable[[], float] | None = None) -> Iterator[CsvChunk]:
    """Stream the LIP reports of a PEI log (a path or binary file) as chunks of pings and refused lines.

    received_at: the received time of a report whose header has no timestamp (None: refused).
    """
    return stream_source(source, lambda f, name: _read(f, name, received_at), PeiError)


def _read(f: BinaryIO, name: str, received_at: Callable[[], float] | None) -> Iterator[CsvChunk]:
    header: _Header | str | None = None  # the open header, or why it is refused (it still takes its data line)
    header_line = 0
    reports: list[tuple[_Header, str]] = []
    errors: list[RowError] = []
    try:
        for number, raw in enumerate(f, start=1):
            text = raw.decode("utf-8", "replace").strip()
            match = _HEADER.match(text)
            if header is not None and (match is not None or text):
                data = None if match is not None else text
                _take(header, header_line, data, reports, errors)
                header = None
                if match is None:
                    continue
            if match is not None:
                header, header_line = _header(match, number, received_at)
                inline = _inline_data(match["fields"])
                if inline is not None:
                    _take(header, header_line, inline, reports, errors)
                    header = None
            if len(reports) >= BATCH:
                yield _chunk(reports, errors)
                reports, errors = [], []
    except OSError as e:
        raise PeiError(f"cannot read {name}: {e.strerror or e}") from None
    if header is not None:
        _take(header, header_line, None, reports, errors)
    yield _chunk(reports, errors)


def _header(match: re.Match[str], line: int, received_at: Callable[[], float] | None) -> tuple[_Header | str, int]:
    """The header of a +CTSDSR line, or why it cannot be used."""
    fields = [f.strip() for f in match["fields"].split(",")]
    if len(fields) < 6:
        return f"+CTSDSR header has {len(fields)} fields, expected at least 6", line
    issi, length = fields[1], fields[5]
    if not issi:
        return "+CTSDSR without a calling party identity: which radio reported is unknown", line
    reason = DEVICE_ID.reason(issi)
    if reason is not None:
        return f"calling party identity: {reason}", line
    if not length.isdigit():
        return f"+CTSDSR length {show(length)} is not a number of bits", line
    prefix = match["prefix"].strip().strip("[]").strip()
    if prefix:
        stamp = TIMESTAMP.parse(prefix, text=True)
        if not isinstance(stamp, float):
            return f"timestamp before +CTSDSR: {stamp}", line
    elif received_at is not None:
        stamp = received_at()
    else:
        return "no time: put the time the SDS was received before +CTSDSR (e.g. 2026-11-21T22:03:00Z)", line
    return _Header(line, issi, stamp, int(length)), line


def _inline_data(fields: str) -> str | None:
    """User data printed after the header's last comma (a hex run longer than the encryption flag)."""
    parts = fields.split(",")
    last = parts[-1].strip()
    return last if len(parts) > 6 and len(last) > 1 and _HEX.fullmatch(last) else None


def _take(
    header: _Header | str, line: int, data: str | None, reports: list[tuple[_Header, str]], errors: list[RowError]
) -> None:
    """File the user data of a header: a report to decode, nothing (not LIP) or a refused line."""
    if isinstance(header, str):
        errors.append(RowError(line, header))
    elif data is None:
        errors.append(RowError(line, "+CTSDSR without user data on the next line"))
    elif _HEX.fullmatch(data) is None or len(data) % 2:
        errors.append(RowError(line, f"user data is not whole octets of hex: {show(data)}"))
    elif int(data[:2], 16) != PROTOCOL_IDENTIFIER:
        return  # another SDS service (text, status...): not a location report
    elif len(data) * 4 < header.bits:
        errors.append(RowError(line, f"user data holds {len(data) * 4} bits, the header says {header.bits}"))
    else:
        reports.append((header, data))


def _chunk(reports: list[tuple[_Header, str]], errors: list[RowError]) -> CsvChunk:
    received = np.array([h.received_at for h, _ in reports], dtype=np.float64)
    batch, refused = lip_batch([h.issi for h, _ in reports], received, [data for _, data in reports])
    lines = np.array([h.line for h, _ in reports], dtype=np.int64)
    bad = {k for k, _, _ in refused}
    errors = errors + [RowError(int(lines[k]), f"{field}: {reason}") for k, field, reason in refused]
    keep = np.array([k for k in range(len(reports)) if k not in bad], dtype=np.int64)
    return CsvChunk(batch, lines[keep], sorted(errors, key=lambda e: e.line))
