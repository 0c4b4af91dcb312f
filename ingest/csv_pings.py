"""Streaming reader and writer for ping CSV files (the input of ``hotspots replay``).

Historical AVLS exports run to millions of rows, so the reader never materialises the file.
It reads one block of whole lines at a time (``batch_rows`` lines) and has pyarrow parse it
serially, every column as raw bytes: an empty cell stays distinguishable from a missing one,
and a stray non-UTF-8 byte costs one row, not the run. Each column is then converted with one
vectorised cast; only when a cast fails does the reader narrow down, with a regex prefilter,
to the rows that are actually bad and word them by the input rules (``ingest.rules``), so a
row gets the reason a Kafka or HTTP ping with the same values gets (``lat: must be between -90
and 90, got 95``). Every carried column (officer_id ... heading_deg, fence_id) is checked too.
Bad rows never abort the run: they come back as ``RowError``s with their physical line
number, beside the good rows of the same chunk.

Blocks are cut by us rather than by pyarrow's streaming reader because that one reads about
32 blocks ahead on a background thread (memory), and a Python file given to it instead can
crash the interpreter at exit when abandoned half-read.

Line numbers count physical lines, except that within a block a quoted value containing a
newline shifts the rows after it by one (and a block cut can split such a value, which then
shows up as malformed rows). Blank lines, and rows where every column we read is empty, carry
no ping: they are skipped without an error but still counted.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from geofence.pings import EXTRA_FIELDS, FloatArray, ObjArray, PingBatch
from ingest.rules import (
    CONTROL_CLASS,
    DEVICE_ID,
    ISO_PATTERN,
    NUMBER_PATTERN,
    PING_RULES,
    TIMESTAMP,
    NumberRule,
    TextRule,
    not_utf8,
    parse_float,
    show,
)

__all__ = ["CsvChunk", "CsvError", "RowError", "read_ping_csv", "write_ping_csv"]

BoolArray = npt.NDArray[np.bool_]
IdxArray = npt.NDArray[np.intp]

REQUIRED_COLUMNS: tuple[str, ...] = ("device_id", "timestamp", "lat", "lon")
#: The optional columns read and carried with each ping, as a Kafka ping carries them.
CARRIED: tuple[str, ...] = (*EXTRA_FIELDS, "fence_id")
_MAX_LINE_BYTES = 16 << 20  # a longer "line" means broken line breaks: refuse, don't slurp
_TS_TYPE = pa.timestamp("ns", tz="UTC")
_NULL_STR = pa.scalar(None, pa.string())


class CsvError(ValueError):
    """The file as a whole cannot be read: unreadable, or without the required columns."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: its 1-based physical line (the header is line 1) and why."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class CsvChunk:
    """The good rows of a stretch of the file, in file order, and the rows rejected there."""

    batch: PingBatch
    lines: npt.NDArray[np.int64]  # physical line of each good row, for reporting late pings
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each field lives: arrow column names are positional (f0, f1…) so odd headers can't clash."""

    path: str
    n_fields: int
    device_id: str
    timestamp: str
    timestamp_name: str  # as the header names it (timestamp or ts): how errors name it
    lat: str
    lon: str
    accuracy_m: str | None
    extras: tuple[tuple[str, str], ...]  # (field, arrow column)
    data_offset: int  # bytes before line 2
    line_bytes: float  # average line length in a sample: sizes the first read


def read_ping_csv(path: str | os.PathLike[str], batch_rows: int = 65536) -> Iterator[CsvChunk]:
    """Stream a ping CSV as chunks, each covering the next ``batch_rows`` lines of the file.

    The header is checked now, so a file without the required columns fails before any
    chunk is consumed (``CsvError``). Columns may come in any order (names are matched
    trimmed and case-insensitively); ``ts`` stands for ``timestamp`` when that is absent;
    unknown columns are ignored. A chunk whose lines are all bad has an empty batch.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    layout = _read_layout(os.fspath(path))
    return _chunks(layout, batch_rows)


def _read_layout(path: str) -> _Layout:
    try:
        with open(path, "rb") as f:
            header_bytes = f.readline(_MAX_LINE_BYTES)
            sample = f.read(1 << 16)
    except OSError as e:
        raise CsvError(f"cannot read {path}: {e.strerror or e}") from None
    if not header_bytes:
        raise CsvError(f"cannot read {path}: file is empty (no header row)")
    if not header_bytes.endswith(b"\n") and sample:
        raise CsvError(f"cannot read {path}: no line break in the first {_MAX_LINE_BYTES} bytes")
    try:
        header_text = header_bytes.decode("utf-8-sig").rstrip("\r\n")
        names = next(csv.reader([header_text]))
    except (UnicodeDecodeError, csv.Error) as e:
        raise CsvError(f"cannot read {path}: header row unreadable ({e})") from None
    position: dict[str, int] = {}
    for i, raw in enumerate(names):
        position.setdefault(raw.strip().lower(), i)
    named = set(position)
    if "timestamp" not in position and "ts" in position:
        position["timestamp"] = position["ts"]
    missing = [c for c in REQUIRED_COLUMNS if c not in position]
    if missing:
        shown = ", ".join(show(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        raise CsvError(f"{path}: missing required column(s) {', '.join(missing)} (header has: {shown})")

    def col(name: str) -> str:
        return f"f{position[name]}"

    lines_in_sample = sample.count(b"\n")
    line_bytes = len(sample) / lines_in_sample if lines_in_sample else 64.0
    return _Layout(
        path=path,
        n_fields=len(names),
        device_id=col("device_id"),
        timestamp=col("timestamp"),
        timestamp_name="timestamp" if "timestamp" in named else "ts",
        lat=col("lat"),
        lon=col("lon"),
        accuracy_m=col("accuracy_m") if "accuracy_m" in position else None,
        extras=tuple((name, col(name)) for name in CARRIED if name in position),
        data_offset=len(header_bytes),
        line_bytes=line_bytes,
    )


def _chunks(layout: _Layout, batch_rows: int) -> Iterator[CsvChunk]:
    try:
        f = open(layout.path, "rb")  # noqa: SIM115 - closed by the with below, inside the generator
    except OSError as e:
        raise CsvError(f"cannot read {layout.path}: {e.strerror or e}") from None
    with f:
        f.seek(layout.data_offset)
        line = 2
        for block, n_lines in _line_blocks(f, batch_rows, layout, line):
            yield _parse_block(block, line, layout)
            line += n_lines


def _line_blocks(f: Any, batch_rows: int, layout: _Layout, line: int) -> Iterator[tuple[bytes, int]]:
    """Yield blocks of exactly batch_rows whole lines (the last may have fewer) and their line count.

    One bulk read sized from the average line length, aimed a little short, then readline()
    for the few missing lines, so the usual block is cut without scanning it in Python.
    """
    line_bytes = layout.line_bytes
    leftover = b""
    while True:
        want = max(int(line_bytes * batch_rows * 0.97), 1)
        buf = leftover + f.read(want - len(leftover)) if len(leftover) < want else leftover
        leftover = b""
        if not buf:
            return
        n = buf.count(b"\n")
        if n >= batch_rows:  # overshoot: keep what is past line batch_rows for the next block
            cut = int(np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)[batch_rows - 1]) + 1
            buf, leftover = buf[:cut], buf[cut:]
            n = batch_rows
        else:
            parts = [buf]
            for _ in range(batch_rows - n):
                more = f.readline(_MAX_LINE_BYTES)
                if not more:
                    break
                if len(more) == _MAX_LINE_BYTES and not more.endswith(b"\n"):
                    raise CsvError(
                        f"cannot read {layout.path}: line {line + n} has no line break within {_MAX_LINE_BYTES} bytes"
                    )
                parts.append(more)
                n += 1
            buf = b"".join(parts) if len(parts) > 1 else buf
            n = buf.count(b"\n")
        lines = n + (not buf.endswith(b"\n"))
        if lines == 0:
            return
        line_bytes = len(buf) / lines
        yield buf, lines
        line += lines


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class _Faults:
    """Reasons per bad row of one chunk; several bad fields of a row are joined in one reason."""

    def __init__(self, n: int) -> None:
        self.mask: BoolArray = np.zeros(n, dtype=np.bool_)
        self.reasons: dict[int, list[str]] = {}

    def add(self, i: int, reason: str) -> None:
        self.mask[i] = True
        self.reasons.setdefault(i, []).append(reason)

    def add_each(self, rows: IdxArray, reason: str) -> None:
        for i in rows.tolist():
            self.add(i, reason)


def _parse_block(block: bytes, first_line: int, layout: _Layout) -> CsvChunk:
    """Parse and convert one block of whole lines; first_line is the physical line of its first."""
    skipped: list[tuple[int, str]] = []  # (record index in the block, reason), in order

    def on_invalid(row: Any) -> str:
        skipped.append((row.number - 1, f"row has {row.actual_columns} fields, header has {row.expected_columns}"))
        return "skip"

    names = [f"f{i}" for i in range(layout.n_fields)]
    wanted = [layout.device_id, layout.timestamp, layout.lat, layout.lon]
    wanted += [c for c in (layout.accuracy_m,) if c is not None] + [c for _, c in layout.extras]
    try:
        table = pcsv.read_csv(
            pa.py_buffer(block),
            # Serial: only then does pyarrow number the rows it hands to on_invalid.
            read_options=pcsv.ReadOptions(use_threads=False, block_size=len(block) + 1, column_names=names),
            # Keep blank lines as (empty) rows so rows and lines stay in step.
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.binary() for c in wanted}, include_columns=list(dict.fromkeys(wanted))
            ),
        )
    except (pa.ArrowException, OSError) as e:
        raise CsvError(f"cannot read {layout.path} near line {first_line}: {_first_line(e)}") from None
    cols = {name: table.column(name).combine_chunks() for name in table.column_names}
    # Record index of each emitted row: its position plus the skipped records before it.
    rows = np.arange(table.num_rows, dtype=np.int64)
    if skipped:
        rec = np.array([r for r, _ in skipped], dtype=np.int64)
        emitted_before = rec - np.arange(len(rec), dtype=np.int64)
        rows += np.searchsorted(emitted_before, rows, side="right")
    dev_len = pc.binary_length(cols[layout.device_id]).to_numpy()
    if len(rows) and dev_len.min() == 0:  # blank lines (or rows with every column we read empty)
        blank = dev_len == 0
        for name, arr in cols.items():
            if name != layout.device_id:
                blank &= pc.binary_length(arr).to_numpy() == 0
        if blank.any():
            keep = np.flatnonzero(~blank)
            take = pa.array(keep)
            cols = {name: arr.take(take) for name, arr in cols.items()}
            rows, dev_len = rows[keep], dev_len[keep]
    batch, faults = _convert(cols, dev_len, layout)
    errors = [RowError(first_line + r, reason) for r, reason in skipped]
    for i, reasons in faults.reasons.items():
        errors.append(RowError(first_line + int(rows[i]), "; ".join(reasons)))
    errors.sort(key=lambda e: e.line)
    good_rows = np.delete(rows, sorted(faults.reasons)) if faults.reasons else rows
    return CsvChunk(batch, first_line + good_rows, errors)


def _convert(cols: dict[str, pa.Array], dev_len: npt.NDArray[np.int32], layout: _Layout) -> tuple[PingBatch, _Faults]:
    n = len(dev_len)
    faults = _Faults(n)
    device_id = _device_ids(cols[layout.device_id], faults)
    ts = _timestamps(cols[layout.timestamp], layout.timestamp_name, faults)
    lat = _numbers(cols[layout.lat], "lat", faults)
    lon = _numbers(cols[layout.lon], "lon", faults)
    acc = np.full(n, np.nan) if layout.accuracy_m is None else _numbers(cols[layout.accuracy_m], "accuracy_m", faults)
    extra_cols = [_extra(cols[c], name, faults) for name, c in layout.extras]
    good: IdxArray | None = None
    if faults.reasons:
        good = np.flatnonzero(~faults.mask)
        device_id, ts, lat, lon, acc = device_id[good], ts[good], lat[good], lon[good], acc[good]
    extras = np.empty(0, dtype=object)
    if layout.extras:
        if good is not None:
            extra_cols = [c.take(pa.array(good)) for c in extra_cols]
        extras = _extras([name for name, _ in layout.extras], extra_cols)
    return PingBatch(device_id=device_id, ts=ts, lat=lat, lon=lon, accuracy_m=acc, extras=extras), faults


def _cell(arr: pa.Array, i: int) -> str:
    """One cell as text (a stray non-UTF-8 byte replaced), for the rules to word a refusal."""
    raw = arr[i].as_py()
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")


def _texts(arr: pa.Array, name: str, rule: TextRule, faults: _Faults) -> pa.Array:
    """A text column checked by rule: strings, null where empty; refusals worded by the rule.

    Only rows the bulk checks single out (too many bytes, a byte that may start a control
    character, empty when required, not UTF-8) are looked at one by one.
    """
    lengths = pc.binary_length(arr).to_numpy()
    try:
        text = pc.cast(arr, pa.string())
    except pa.ArrowInvalid:  # some cell is not UTF-8: refuse those, read the rest
        utf8 = np.array([_is_utf8(raw) for raw in arr.to_pylist()], dtype=np.bool_)
        for i in np.flatnonzero(~utf8).tolist():
            faults.add(i, f"{name}: {not_utf8(arr[i].as_py())}")
        text = pc.cast(pc.if_else(pa.array(utf8), arr, pa.scalar(b"", pa.binary())), pa.string())
        lengths = np.where(utf8, lengths, 1)
    suspect = lengths > rule.limit  # bytes; the characters may still fit
    if rule.required:
        suspect |= lengths == 0
    data = arr.buffers()[2]
    if data is not None and data.size:
        view = np.frombuffer(data, dtype=np.uint8)
        if view.min() < 0x20 or (view == 0x7F).any() or (view == 0xC2).any():  # C0, DEL; C1 is C2 80-9F
            suspect |= _mask(pc.match_substring_regex(text, CONTROL_CLASS))
    for i in np.flatnonzero(suspect).tolist():
        reason = rule.reason(text[i].as_py())
        if reason is not None:
            faults.add(i, f"{name}: {reason}")
    return pc.if_else(pa.array(lengths == 0), _NULL_STR, text)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _device_ids(arr: pa.Array, faults: _Faults) -> ObjArray:
    text = _texts(arr, "device_id", DEVICE_ID, faults)
    # One Python string per distinct device, shared by its rows: faster and lighter than one per row.
    enc = pc.dictionary_encode(pc.fill_null(text, ""))
    return enc.dictionary.to_numpy(zero_copy_only=False)[enc.indices.to_numpy()]  # type: ignore[no-any-return]


def _mask(arr: pa.Array) -> BoolArray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _parse_numbers(arr: pa.Array) -> tuple[FloatArray, BoolArray]:
    """Numbers of a column (NaN where empty or unparseable) and the empty mask, no judgement."""
    empty = pc.binary_length(arr).to_numpy() == 0
    text = arr.view(pa.string())  # numbers are ASCII: a bad byte just fails to parse
    if empty.any():
        text = pc.if_else(pa.array(empty), _NULL_STR, text)
    try:
        return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False), empty
    except pa.ArrowInvalid:
        pass
    values = np.full(len(arr), np.nan)
    plain = _mask(pc.match_substring_regex(text, NUMBER_PATTERN))
    idx = np.flatnonzero(plain)
    try:
        values[idx] = pc.cast(text.take(pa.array(idx)), pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        plain[:] = False
    for i in np.flatnonzero(~plain & ~empty).tolist():
        value = parse_float(_cell(arr, i))
        values[i] = math.nan if value is None else value
    return values, empty


def _refuse(arr: pa.Array, name: str, rows: BoolArray, rule: NumberRule, faults: _Faults) -> None:
    """Word the refusal of each flagged row by its rule (few rows: per-row is fine)."""
    for i in np.flatnonzero(rows).tolist():
        reason = rule.reason(_cell(arr, i), text=True)
        if reason is not None:
            faults.add(i, f"{name}: {reason}")


def _numbers(arr: pa.Array, name: str, faults: _Faults) -> FloatArray:
    """A numeric column checked by its ping rule; NaN where empty (optional) or refused."""
    rule = PING_RULES[name]
    assert isinstance(rule, NumberRule)
    values, empty = _parse_numbers(arr)
    with np.errstate(invalid="ignore"):
        upper = values < rule.hi if rule.hi_open else values <= rule.hi
        ok = (values >= rule.lo) & upper & np.isfinite(values)  # False for NaN and ±inf
    ok |= empty & (not rule.required)
    if not ok.all():
        _refuse(arr, name, ~ok, rule, faults)
    return values


def _ns_to_seconds(ts: pa.Array) -> FloatArray:
    """Epoch seconds with microsecond precision, rounded exactly as datetime.timestamp() does."""
    micros = ts.to_numpy(zero_copy_only=False).view(np.int64) // 1000
    return micros / 1e6  # type: ignore[no-any-return]


def _iso_cast(text: pa.Array) -> tuple[FloatArray, BoolArray]:
    """Arrow's ISO 8601 cast, and which rows are in the rules' form (arrow also reads 'T22+01').

    A string arrow parsed is ASCII, so the form is checked on bytes: ':' after the hour, and an
    offset of four digits (``±HH:MM``, ``±HHMM``) or ``Z``, never ``±HH``.
    """
    values = _ns_to_seconds(pc.cast(text, _TS_TYPE))
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + len(text) + 1]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)
    start, end = offsets[:-1], offsets[1:]
    long = end - start >= 16
    colon = data[np.where(long, start + 13, 0)] == ord(":")
    sign = data[np.where(long, end - 3, 0)]
    return values, long & colon & (sign != ord("+")) & (sign != ord("-"))


def _timestamps(arr: pa.Array, name: str, faults: _Faults) -> FloatArray:
    n = len(arr)
    if n == 0:
        return np.empty(0)
    text = arr.view(pa.string())
    # Whole-column fast path when a few sampled rows agree on the kind (a failing ISO cast is slow).
    kinds = {bool(re.match(NUMBER_PATTERN, _cell(arr, i))) for i in (0, n // 2, n - 1)}
    values: FloatArray
    if len(kinds) == 1:
        try:
            if kinds == {True}:
                values, done = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False), np.ones(n, dtype=np.bool_)
            else:
                values, done = _iso_cast(text)
        except pa.ArrowInvalid:
            values, done = _timestamps_mixed(arr, text)
    else:
        values, done = _timestamps_mixed(arr, text)
    with np.errstate(invalid="ignore"):
        ok = done & (values >= TIMESTAMP.lo) & (values < TIMESTAMP.hi)
    if not ok.all():
        for i in np.flatnonzero(~ok).tolist():
            seconds = TIMESTAMP.parse(_cell(arr, i), text=True)
            if isinstance(seconds, float):
                values[i] = seconds  # a form the bulk casts leave to Python (blanks, years past 2262)
            else:
                faults.add(i, f"{name}: {TIMESTAMP.reason(_cell(arr, i), text=True)}")
    return values


def _timestamps_mixed(arr: pa.Array, text: pa.Array) -> tuple[FloatArray, BoolArray]:
    """Epoch and ISO rows mixed, or bad rows: cast each well-formed kind apart, leave the rest."""
    values = np.full(len(arr), np.nan)
    done = np.zeros(len(arr), dtype=np.bool_)
    for pattern, convert in (
        (NUMBER_PATTERN, lambda a: pc.cast(a, pa.float64()).to_numpy(zero_copy_only=False)),
        (ISO_PATTERN, lambda a: _ns_to_seconds(pc.cast(a, _TS_TYPE))),
    ):
        idx = np.flatnonzero(_mask(pc.match_substring_regex(text, pattern)))
        try:
            values[idx] = convert(text.take(pa.array(idx)))
            done[idx] = True
        except pa.ArrowInvalid:  # e.g. a well-formed but impossible date: leave the subset to Python
            pass
    return values, done


def _extra(arr: pa.Array, name: str, faults: _Faults) -> pa.Array:
    """A carried column checked by its ping rule: floats or strings, null where empty."""
    rule = PING_RULES[name]
    if isinstance(rule, TextRule):
        return _texts(arr, name, rule, faults)
    values = _numbers(arr, name, faults)
    return pa.array(values, mask=np.isnan(values))


def _extras(names: list[str], cols: list[pa.Array]) -> ObjArray:
    """Per-ping mappings of the carried fields (None when empty), built by an arrow struct in C."""
    n = len(cols[0]) if cols else 0
    dicts = pa.StructArray.from_arrays(cols, names=names).to_pylist()
    out = np.empty(n, dtype=object)
    out[:] = dicts
    return out


def _iso_utc(ts: FloatArray) -> list[str]:
    """ISO 8601 UTC strings ('…Z'), with microseconds only when some ping has a fraction."""
    if not np.isfinite(ts).all():
        raise ValueError("cannot write non-finite timestamps")
    micros = np.rint(ts * 1e6).astype(np.int64)
    whole = bool((micros % 1_000_000 == 0).all())
    stamps = np.datetime_as_string(micros.astype("datetime64[us]"), unit="s" if whole else "us")
    return [f"{s}Z" for s in stamps.tolist()]


def _written(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def write_ping_csv(path: str | os.PathLike[str], batch: PingBatch) -> None:
    """Write a batch in the format read_ping_csv reads (ISO UTC timestamps, µs precision).

    Floats are written with repr() so they read back bit for bit; unknown accuracy is an
    empty cell; extra columns appear only for the carried fields some ping actually has.
    """
    extras: list[Any] = batch.extras.tolist() if len(batch.extras) else []
    present = {key for extra in extras if extra for key, value in extra.items() if value is not None}
    extra_names = [name for name in CARRIED if name in present]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["device_id", "timestamp", "lat", "lon", "accuracy_m", *extra_names])
        stamps = _iso_utc(batch.ts)
        for i in range(len(batch)):
            extra = (extras[i] or {}) if extras else {}
            writer.writerow(
                [
                    batch.device_id[i],
                    stamps[i],
                    repr(float(batch.lat[i])),
                    repr(float(batch.lon[i])),
                    _written(float(batch.accuracy_m[i])),
                    *(_written(extra.get(name)) for name in extra_names),
                ]
            )
