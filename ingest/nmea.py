"""Streaming reader of NMEA 0183 logs (``.nmea`` / ``.log``): RMC fixes, with GGA's HDOP as accuracy.

What is read: RMC (time, date, status, position, speed over ground in knots, course over
ground) gives a fix; a GGA of the same time, just before or after it, adds its HDOP, turned
into ``accuracy_m`` as ``ingest.fixes`` explains. GGA alone carries no date, so GGA without an
RMC gives no fix. Any talker is accepted (GP, GN, GL, GA, BD, GB...), but not proprietary
sentences: ``$PGRMC`` is Garmin's configuration sentence, not an RMC. Other sentence types are
ignored without a word, and so are blank lines and ``#`` comment lines (gpsd's test logs carry
them). Magnetic variation, GGA's position and altitude are not read: pings are 2D and RMC has the
position already.

What is refused, each a ``RowError`` with its 1-based line: a void fix (RMC status V or mode N,
GGA quality 0); a missing or wrong checksum (``*hh``: NMEA 0183 makes it mandatory for RMC, every
receiver sends it on GGA too, and it is the only defence against a garbled serial line; sentences
not read are not checked); a malformed sentence; an impossible value
(25:00, 31 February, a latitude of 91 degrees, a course of 400). Two-digit years are 1980-2079
(GPS time starts in 1980). A course of exactly 360 is 0.

Speed (the issue asks for 200k records/s): the file is read in blocks of whole lines, and each
block is checked without a Python loop per line. numpy finds the lines, picks out RMC and GGA
sentences by the bytes of their address and computes every checksum at once (an XOR
``reduceat`` over the buffer); one arrow regex per sentence type validates the grammar and cuts
the fields; casts and range checks are vectorised. A line that fails any of these fast checks
goes to ``_read_sentence``, the exact reader, which says why it is refused (and would read it,
were the fast checks stricter than the rules somewhere); its arithmetic is the fast path's, so
both give the same numbers, bit for bit (a test holds them to it). Measured by
``python -m bench.decoders``: about 1M sentences/s, 250k fixes/s, on the 2-core machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date
from functools import reduce
from operator import xor
from typing import BinaryIO, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from geofence.pings import FloatArray
from ingest.csv_pings import RowError
from ingest.fixes import KNOT_MPS, UERE_M, FixChunk, Source, stream_source
from ingest.rules import DEVICE_ID, show

__all__ = ["NmeaError", "checksum", "read_nmea"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

BLOCK_BYTES = 1 << 22  # ~50k sentences: big enough to amortise the per-block calls, small in memory
_MAX_LINE_BYTES = 1 << 20  # NMEA sentences are at most 82 characters; 1 MiB without a newline is not NMEA
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Field grammars, shared by the fast regexes and the exact reader so both accept the same text.
_TIME = r"(?P<hh>[0-9]{2})(?P<mi>[0-9]{2})(?P<ss>[0-9]{2}(?:\.[0-9]+)?)"
_DATE = r"(?P<dd>[0-9]{2})(?P<mo>[0-9]{2})(?P<yy>[0-9]{2})"
_LAT = r"(?P<latd>[0-9]{2})(?P<latm>[0-9]{2}(?:\.[0-9]+)?)"
_LON = r"(?P<lond>[0-9]{3})(?P<lonm>[0-9]{2}(?:\.[0-9]+)?)"
_NUM = r"[0-9]+(?:\.[0-9]+)?"
_FLAG = r"[A-Z]?"  # RMC's mode and navigational status fields (NMEA 2.3 and 4.1)
_RMC_RE = (
    rf"^\$[A-Z]{{2}}RMC,{_TIME},A,{_LAT},(?P<ns>[NS]),{_LON},(?P<ew>[EW]),(?P<sog>{_NUM})?,(?P<cog>{_NUM})?,"
    rf"{_DATE},[^,*]*,[^,*]*(?:,[A-MO-Z]?(?:,{_FLAG})?)?\*[0-9A-Fa-f]{{2}}\r?\n$"  # mode N: void
)
_GGA_RE = (
    rf"^\$[A-Z]{{2}}GGA,{_TIME},[^,*]*,[^,*]*,[^,*]*,[^,*]*,[1-8],[^,*]*,(?P<hdop>{_NUM})?(?:,[^,*]*)*"
    r"\*[0-9A-Fa-f]{2}\r?\n$"
)
_RMC, _GGA = (int.from_bytes(t, "big") for t in (b"RMC", b"GGA"))
_HEX = np.full(256, -1, dtype=np.int64)
_HEX[np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)] = np.arange(16)
_HEX[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16)
_NULL_STR = pa.scalar(None, pa.string())


class NmeaError(ValueError):
    """The input as a whole is not NMEA text (unreadable, or no line breaks)."""


@dataclass(frozen=True, slots=True)
class _Columns:
    """Sentences of one type as columns: their line and time of day (seconds of the UTC day), then theirs."""

    line: IntArray
    tod: FloatArray

    def __len__(self) -> int:
        return len(self.line)

    def take(self, idx: npt.NDArray[np.intp] | slice) -> Self:
        return type(self)(*(getattr(self, f.name)[idx] for f in fields(self)))

    @classmethod
    def of(cls, parts: list[Self]) -> Self:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    @classmethod
    def from_rows(cls, lines: list[int], rows: Sequence[tuple[float, ...]]) -> Self:
        """From the exact reader's rows: every field after the line, in order."""
        values = np.array(rows, dtype=np.float64).reshape(len(rows), len(fields(cls)) - 1)
        return cls(np.array(lines, dtype=np.int64), *values.T.copy())


@dataclass(frozen=True, slots=True)
class _Rmc(_Columns):
    ts: FloatArray
    lat: FloatArray
    lon: FloatArray
    speed: FloatArray
    heading: FloatArray


@dataclass(frozen=True, slots=True)
class _Gga(_Columns):
    hdop: FloatArray


# One sentence read by the exact reader: the fields of _Rmc / _Gga after the line.
_RmcRow = tuple[float, float, float, float, float, float]
_GgaRow = tuple[float, float]
_NO_RMC = _Rmc.from_rows([], [])
_NO_GGA = _Gga.from_rows([], [])


def read_nmea(source: Source, device_id: str, *, block_bytes: int = BLOCK_BYTES) -> Iterator[FixChunk]:
    """Stream an NMEA 0183 log (a path or a binary file object) as chunks of fixes of device_id.

    The device id is the caller's choice (``hotspots replay`` uses the file stem). Each chunk
    covers about ``block_bytes`` of input; the fixes of a block's last second wait for the next
    block, where their GGA may be. Raises ``InputError`` for a bad device id now, and
    ``NmeaError`` while reading an input that cannot be read or is not line-based text.
    """
    DEVICE_ID.check("device_id", device_id)
    if block_bytes < 1:
        raise ValueError(f"block_bytes must be >= 1, got {block_bytes}")
    return stream_source(source, lambda f, name: _read(f, name, device_id, block_bytes), NmeaError)


def _read(f: BinaryIO, name: str, device_id: str, block_bytes: int) -> Iterator[FixChunk]:
    pending, last_gga = _NO_RMC, _NO_GGA
    line = 1
    for block in _blocks(f, name, block_bytes):
        rmc, gga, errors, n_lines = _parse_block(block, line)
        line += n_lines
        rmc, gga = _Rmc.of([pending, rmc]), _Gga.of([last_gga, gga])
        hdop = _pair(rmc, gga)
        pending = _NO_RMC
        if len(rmc):  # the last second's unpaired RMCs: their GGA may open the next block
            hold = np.isnan(hdop) & (rmc.tod == rmc.tod[-1]) & (rmc.line > (gga.line[-1] if len(gga) else 0))
            if hold.any():
                pending = rmc.take(np.flatnonzero(hold))
                keep = np.flatnonzero(~hold)
                rmc, hdop = rmc.take(keep), hdop[keep]
        last_gga = gga.take(slice(-1, None))
        yield _chunk(device_id, rmc, hdop, errors)
    if len(pending):
        yield _chunk(device_id, pending, np.full(len(pending), np.nan), [])


def _chunk(device_id: str, rmc: _Rmc, hdop: FloatArray, errors: list[RowError]) -> FixChunk:
    return FixChunk(
        device_id=device_id,
        ts=rmc.ts,
        lat=rmc.lat,
        lon=rmc.lon,
        accuracy_m=hdop * UERE_M,
        speed_mps=rmc.speed,
        heading_deg=rmc.heading,
        lines=rmc.line,
        errors=errors,
    )


def _pair(rmc: _Rmc, gga: _Gga) -> FloatArray:
    """Each RMC's HDOP: from the GGA just before it or else just after it with the same time; NaN if neither."""
    hdop = np.full(len(rmc), np.nan)
    if not len(gga) or not len(rmc):
        return hdop
    after = np.searchsorted(gga.line, rmc.line)
    for idx in (after - 1, after):
        inside = (idx >= 0) & (idx < len(gga))
        at = np.clip(idx, 0, len(gga) - 1)
        match = inside & (gga.tod[at] == rmc.tod) & np.isnan(hdop)
        hdop[match] = gga.hdop[at[match]]
    return hdop


def _blocks(f: BinaryIO, name: str, block_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines, each ending with a line break (one is added to an unterminated last line)."""
    rest = b""
    while True:
        try:
            data = f.read(block_bytes)
        except OSError as e:
            raise NmeaError(f"cannot read {name}: {e.strerror or e}") from None
        if not data:
            if rest:
                yield rest + b"\n"
            return
        buf = rest + data if rest else data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            if len(buf) > _MAX_LINE_BYTES:
                raise NmeaError(f"{name}: no line break in {_MAX_LINE_BYTES} bytes: not NMEA 0183 text")
            rest = buf
            continue
        rest = buf[cut:]
        yield buf[:cut]


def _parse_block(block: bytes, first_line: int) -> tuple[_Rmc, _Gga, list[RowError], int]:
    """The RMC fixes and GGA HDOPs of a block of whole lines, and its refused lines (module docstring)."""
    a = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(a == 10)
    starts = np.empty(len(ends), dtype=np.int64)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    ends -= (ends > starts) & (a[ends - 1] == 13)  # content end: without \r\n
    length = ends - starts
    first = a[starts]
    long = length >= 7
    at = np.where(long, starts, 0)
    peek = np.pad(a, (0, 6))  # a block of short lines has no bytes 3-5 to look at: zeros, masked out below
    kind = (peek[at + 3].astype(np.int64) << 16) | (peek[at + 4].astype(np.int64) << 8) | peek[at + 5]
    sentence = long & (first == ord("$")) & (peek[at + 1] != ord("P"))  # '$P...': proprietary
    is_rmc = sentence & (kind == _RMC)
    is_gga = sentence & (kind == _GGA)
    quiet = (length == 0) | (first == ord("#")) | (long & ((first == ord("$")) | (first == ord("!"))))
    checked = _checksums_ok(a, starts, ends, is_rmc | is_gga)
    offsets = pa.py_buffer(np.append(starts, len(a)))
    lines = pa.Array.from_buffers(pa.large_binary(), len(starts), [None, offsets, pa.py_buffer(block)])
    rmc_idx, gga_idx = np.flatnonzero(is_rmc), np.flatnonzero(is_gga)
    rmc, rmc_ok = _fast_rmc(lines, rmc_idx, checked[rmc_idx], first_line)
    gga, gga_ok = _fast_gga(lines, gga_idx, checked[gga_idx], first_line)
    slow = np.concatenate([np.flatnonzero(~quiet & ~is_rmc & ~is_gga), rmc_idx[~rmc_ok], gga_idx[~gga_ok]])
    errors: list[RowError] = []
    more_rmc: tuple[list[int], list[_RmcRow]] = ([], [])
    more_gga: tuple[list[int], list[_GgaRow]] = ([], [])
    for i in np.sort(slow).tolist():
        out = _read_sentence(block[starts[i] : ends[i]])
        if isinstance(out, str):
            errors.append(RowError(first_line + i, out))
        elif out is not None:
            target = more_rmc if len(out) == 6 else more_gga
            target[0].append(first_line + i)
            target[1].append(out)  # type: ignore[arg-type]  # the length tells the kind
    if more_rmc[0]:
        rmc = _Rmc.of([rmc, _Rmc.from_rows(*more_rmc)])
        rmc = rmc.take(np.argsort(rmc.line, kind="stable"))
    if more_gga[0]:
        gga = _Gga.of([gga, _Gga.from_rows(*more_gga)])
        gga = gga.take(np.argsort(gga.line, kind="stable"))
    return rmc, gga, errors, len(starts)


def _checksums_ok(a: npt.NDArray[np.uint8], starts: IntArray, ends: IntArray, want: BoolArray) -> BoolArray:
    """Whether each wanted line ends in '*hh' and hh is the XOR of the bytes between '$' and '*'."""
    ok = np.zeros(len(starts), dtype=np.bool_)
    idx = np.flatnonzero(want)
    if not len(idx):
        return ok
    body, star, end = starts[idx] + 1, ends[idx] - 3, ends[idx]
    bounds = np.empty(2 * len(idx), dtype=np.int64)
    bounds[0::2], bounds[1::2] = body, star
    xor = np.bitwise_xor.reduceat(a, bounds)[0::2]
    given = _HEX[a[end - 2]] * 16 + _HEX[a[end - 1]]
    ok[idx] = (a[star] == ord("*")) & (_HEX[a[end - 2]] >= 0) & (_HEX[a[end - 1]] >= 0) & (xor == given)
    return ok


def _text(col: pa.Array) -> pa.Array:
    return col.cast(pa.string())  # regex-checked ASCII


def _ints(col: pa.Array) -> IntArray:
    return pc.cast(_text(col), pa.int64()).to_numpy()  # type: ignore[no-any-return]


def _floats(col: pa.Array) -> FloatArray:
    """Numbers, NaN where the optional field was empty."""
    text = _text(col)
    text = pc.if_else(pc.equal(pc.utf8_length(text), 0), _NULL_STR, text)
    return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _matched(lines: pa.Array, idx: IntArray, checked: BoolArray, pattern: str) -> tuple[pa.StructArray, BoolArray]:
    """The fields of the lines at idx that match pattern, and which lines those are."""
    fields = pc.extract_regex(lines.take(pa.array(idx)), pattern)
    matched = fields.is_valid().to_numpy(zero_copy_only=False) & checked
    return fields.filter(pa.array(matched)), matched


def _time(fields: pa.StructArray) -> tuple[IntArray, FloatArray, BoolArray]:
    """Whole minutes of the day in seconds, the seconds, and whether the time exists (as _read_time)."""
    hh, mi, ss = _ints(fields.field("hh")), _ints(fields.field("mi")), _floats(fields.field("ss"))
    return hh * 3600 + mi * 60, ss, (hh < 24) & (mi < 60) & (ss < 60)


def _degrees(fields: pa.StructArray, name: str, limit: float, negative: bytes) -> tuple[FloatArray, BoolArray]:
    """Signed degrees from (d)ddmm.mmm and a hemisphere letter, and whether they exist (as _read_angle)."""
    d, m = _ints(fields.field(f"{name}d")), _floats(fields.field(f"{name}m"))
    value = d + m / 60.0
    south_or_west = pc.equal(fields.field("ns" if name == "lat" else "ew"), negative).to_numpy(zero_copy_only=False)
    return np.where(south_or_west, -value, value), (m < 60.0) & (value <= limit)


def _fast_rmc(lines: pa.Array, idx: IntArray, checked: BoolArray, first_line: int) -> tuple[_Rmc, BoolArray]:
    """RMC sentences that pass every fast check, and the mask of those lines (the rest go to the exact reader)."""
    if not len(idx):
        return _NO_RMC, np.zeros(0, dtype=np.bool_)
    f, matched = _matched(lines, idx, checked, _RMC_RE)
    whole, ss, ok = _time(f)
    dd, mo, yy = _ints(f.field("dd")), _ints(f.field("mo")), _ints(f.field("yy"))
    month = (np.where(yy < 80, 2000 + yy, 1900 + yy) - 1970) * 12 + np.clip(mo, 1, 12) - 1
    month_start = month.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    month_days = (month + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - month_start
    ok &= (mo >= 1) & (mo <= 12) & (dd >= 1) & (dd <= month_days)
    lat, lat_ok = _degrees(f, "lat", 90.0, b"S")
    lon, lon_ok = _degrees(f, "lon", 180.0, b"W")
    cog = _floats(f.field("cog"))
    with np.errstate(invalid="ignore"):
        ok &= lat_ok & lon_ok & ~(cog > 360.0)
    ts = ((month_start + dd - 1) * 86400 + whole) + ss
    rows = np.flatnonzero(matched)[ok]
    good = np.zeros(len(idx), dtype=np.bool_)
    good[rows] = True
    rmc = _Rmc(
        line=first_line + idx[rows],
        tod=(whole + ss)[ok],
        ts=ts[ok],
        lat=lat[ok],
        lon=lon[ok],
        speed=_floats(f.field("sog"))[ok] * KNOT_MPS,
        heading=np.where(cog == 360.0, 0.0, cog)[ok],
    )
    return rmc, good


def _fast_gga(lines: pa.Array, idx: IntArray, checked: BoolArray, first_line: int) -> tuple[_Gga, BoolArray]:
    """GGA sentences with a fix that pass every fast check, and the mask of those lines."""
    if not len(idx):
        return _NO_GGA, np.zeros(0, dtype=np.bool_)
    f, matched = _matched(lines, idx, checked, _GGA_RE)
    whole, ss, ok = _time(f)
    rows = np.flatnonzero(matched)[ok]
    good = np.zeros(len(idx), dtype=np.bool_)
    good[rows] = True
    return _Gga(line=first_line + idx[rows], tod=(whole + ss)[ok], hdop=_floats(f.field("hdop"))[ok]), good


def checksum(body: bytes) -> int:
    """The NMEA checksum of the bytes between '$' and '*': their XOR."""
    return reduce(xor, body, 0)


# -- the exact reader: one line, every rule, a reason for each refusal ------------------------


def _read_sentence(raw: bytes) -> str | _RmcRow | _GgaRow | None:
    """One line the fast checks did not pass: the reason it is refused, its values, or None to ignore it."""
    if not raw.strip() or raw.startswith(b"#"):
        return None
    if raw[:1] not in (b"$", b"!"):
        return f"not an NMEA sentence (no leading '$'): {show(raw)}"
    if len(raw) < 7:
        return f"malformed sentence, too short: {show(raw)}"
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return f"malformed sentence, not ASCII: {show(raw)}"
    star = text.rfind("*")
    if star < 0:
        return "no checksum ('*hh' at the end of the sentence)"
    given = text[star + 1 :]
    if re.fullmatch("[0-9A-Fa-f]{2}", given) is None:
        return f"malformed checksum {show(given)}: expected two hex digits after '*'"
    computed = checksum(raw[1:star])
    if computed != int(given, 16):
        return f"checksum mismatch: sentence says {given.upper()}, its bytes give {computed:02X}"
    fields = text[1:star].split(",")
    if re.fullmatch("[A-Z]{2}(RMC|GGA)", fields[0]) is None:
        return f"malformed address field {show(fields[0])}"
    return _read_rmc(fields) if fields[0].endswith("RMC") else _read_gga(fields)


def _read_rmc(fields: list[str]) -> str | _RmcRow:
    if not 12 <= len(fields) <= 14:
        return f"RMC has {len(fields) - 1} fields, expected 11 to 13"
    _, time, status, lat, ns, lon, ew, sog, cog, day = fields[:10]
    flags = fields[12:]
    if status == "V":
        return "void fix: RMC status V (receiver has no valid position)"
    if status != "A":
        return f"RMC status {show(status)} is neither A (valid) nor V (void)"
    if flags[:1] == ["N"]:
        return "void fix: RMC mode N (receiver has no valid position)"
    for flag in flags:
        if re.fullmatch(_FLAG, flag) is None:
            return f"RMC mode or status flag {show(flag)} is not one letter"
    clock = _read_time("RMC", time)
    if isinstance(clock, str):
        return clock
    days = _read_date(day)
    if isinstance(days, str):
        return days
    latitude = _read_angle("latitude", lat, ns, _LAT, "NS", 90.0)
    if isinstance(latitude, str):
        return latitude
    longitude = _read_angle("longitude", lon, ew, _LON, "EW", 180.0)
    if isinstance(longitude, str):
        return longitude
    numbers: list[float] = []
    for what, value in (("speed", sog), ("course", cog)):
        if value and re.fullmatch(_NUM, value) is None:
            return f"RMC {what} {show(value)} is not a number"
        numbers.append(float(value) if value else float("nan"))
    speed, course = numbers
    if course > 360.0:
        return f"RMC course {show(cog)} is more than 360 degrees"
    whole, ss = clock
    return (
        whole + ss,
        (days * 86400 + whole) + ss,
        latitude,
        longitude,
        speed * KNOT_MPS,
        0.0 if course == 360.0 else course,
    )


def _read_gga(fields: list[str]) -> str | _GgaRow:
    if len(fields) < 9:
        return f"GGA has {len(fields) - 1} fields, expected 14"
    quality, hdop = fields[6], fields[8]
    if quality == "0":
        return "void fix: GGA quality 0 (receiver has no fix)"
    if re.fullmatch("[1-8]", quality) is None:
        return f"GGA fix quality {show(quality)} is not a digit 0-8"
    clock = _read_time("GGA", fields[1])
    if isinstance(clock, str):
        return clock
    if hdop and re.fullmatch(_NUM, hdop) is None:
        return f"GGA HDOP {show(hdop)} is not a number"
    whole, ss = clock
    return whole + ss, float(hdop) if hdop else float("nan")


def _read_time(kind: str, text: str) -> str | tuple[int, float]:
    match = re.fullmatch(_TIME, text)
    if match is None:
        return f"{kind} time {show(text)} is not hhmmss[.ss]"
    hh, mi, ss = int(match["hh"]), int(match["mi"]), float(match["ss"])
    if hh >= 24 or mi >= 60 or ss >= 60:
        return f"{kind} time {show(text)} does not exist"
    return hh * 3600 + mi * 60, ss


def _read_date(text: str) -> str | int:
    """Days since 1970-01-01 of an RMC date ddmmyy (years 1980-2079)."""
    match = re.fullmatch(_DATE, text)
    if match is None:
        return f"RMC date {show(text)} is not ddmmyy"
    yy = int(match["yy"])
    try:
        day = date(2000 + yy if yy < 80 else 1900 + yy, int(match["mo"]), int(match["dd"]))
    except ValueError:
        return f"RMC date {show(text)} does not exist"
    return day.toordinal() - _EPOCH_ORDINAL


def _read_angle(what: str, text: str, hemisphere: str, grammar: str, letters: str, limit: float) -> str | float:
    """Signed degrees of an RMC (d)ddmm.mmm value and its hemisphere letter."""
    match = re.fullmatch(grammar, text)
    if match is None:
        return f"RMC {what} {show(text)} is not {'ddmm.mmm' if limit == 90.0 else 'dddmm.mmm'}"
    if hemisphere not in letters or len(hemisphere) != 1:
        return f"RMC {what} hemisphere {show(hemisphere)} is not {letters[0]} or {letters[1]}"
    d, m = match.groups()
    value = int(d) + float(m) / 60.0
    if float(m) >= 60.0 or value > limit:
        return f"RMC {what} {show(text + ',' + hemisphere)} is beyond {limit:g} degrees or has 60+ minutes"
    return -value if hemisphere == letters[1] else value
