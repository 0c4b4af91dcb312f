"""Streaming reader and writer for ping CSV files (the input of ``hotspots replay``).

Historical AVLS exports run to millions of rows, so the reader never materialises the file:
pyarrow's streaming CSV parser hands over one block at a time, every column is read as raw
bytes (so an empty cell stays distinguishable from a missing one, and a stray non-UTF-8 byte
costs one row, not the run), and each column is converted with one vectorised cast. Only
when a cast fails does the reader narrow down, with a regex prefilter, to the rows that are
actually bad and explain them in Python. Bad rows never abort the run: they come back as
``RowError``s with their physical line number, next to the good rows of the same chunk.

Line numbers assume one record per physical line (a quoted value containing a newline shifts
the numbers of the rows after it). Blank lines, and rows whose required fields are all empty,
carry no ping: they are skipped without an error but still counted for line numbers.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from geofence.pings import EXTRA_FIELDS, FloatArray, ObjArray, PingBatch

__all__ = ["CsvChunk", "CsvError", "RowError", "read_ping_csv", "write_ping_csv"]

BoolArray = npt.NDArray[np.bool_]
IdxArray = npt.NDArray[np.intp]

REQUIRED_COLUMNS: tuple[str, ...] = ("device_id", "timestamp", "lat", "lon")
_NUMERIC_EXTRAS = frozenset({"speed_mps", "heading_deg"})
_MAX_DEVICE_ID = 64
# datetime's range (years 1..9999): wider is surely a unit mistake, e.g. epoch milliseconds.
_TS_MIN, _TS_MAX = -62135596800.0, 253402300800.0
# Plain decimal numbers: what pyarrow's cast parses identically to Python's float().
_NUMERIC_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_ISO_RE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)$"
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
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each field lives: arrow column names are positional (f0, f1…) so odd headers can't clash."""

    path: str
    n_fields: int
    device_id: str
    timestamp: str
    lat: str
    lon: str
    accuracy_m: str | None
    extras: tuple[tuple[str, str], ...]  # (field, arrow column)
    block_size: int


def read_ping_csv(path: str | os.PathLike[str], batch_rows: int = 65536) -> Iterator[CsvChunk]:
    """Stream a ping CSV as chunks of at most ``batch_rows`` rows.

    The header is checked now, so a file without the required columns fails before any
    chunk is consumed (``CsvError``). Columns may come in any order; ``ts`` is accepted for
    ``timestamp`` (``timestamp`` wins if both exist); unknown columns are ignored. A chunk
    may carry only errors (empty batch) when a long stretch of the file is all bad rows.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    layout = _read_layout(os.fspath(path), batch_rows)
    return _chunks(layout, batch_rows)


def _read_layout(path: str, batch_rows: int) -> _Layout:
    try:
        with open(path, "rb") as f:
            header_bytes = f.readline()
            sample = f.read(1 << 16)
    except OSError as e:
        raise CsvError(f"cannot read {path}: {e.strerror or e}") from None
    if not header_bytes.strip():
        raise CsvError(f"cannot read {path}: file is empty (no header row)")
    try:
        header_text = header_bytes.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise CsvError(f"cannot read {path}: header row is not valid UTF-8") from None
    names = next(csv.reader([header_text]))
    position: dict[str, int] = {}
    for i, raw in enumerate(names):
        position.setdefault(raw.strip().lower(), i)
    if "timestamp" not in position and "ts" in position:
        position["timestamp"] = position["ts"]
    missing = [c for c in REQUIRED_COLUMNS if c not in position]
    if missing:
        raise CsvError(f"{path}: missing required column(s) {', '.join(missing)} (header: {header_text[:200]})")

    def col(name: str) -> str:
        return f"f{position[name]}"

    lines_in_sample = sample.count(b"\n")
    avg_line = len(sample) / lines_in_sample if lines_in_sample else 256.0
    # One arrow block ≈ one batch; at least 1 MiB so a long row never straddles blocks.
    block_size = int(min(max(avg_line * batch_rows, 1 << 20), 1 << 28))
    return _Layout(
        path=path,
        n_fields=len(names),
        device_id=col("device_id"),
        timestamp=col("timestamp"),
        lat=col("lat"),
        lon=col("lon"),
        accuracy_m=col("accuracy_m") if "accuracy_m" in position else None,
        extras=tuple((name, col(name)) for name in EXTRA_FIELDS if name in position),
        block_size=block_size,
    )


class _Skipped:
    """Rows pyarrow dropped for a wrong field count, and the line arithmetic they imply.

    pyarrow only gives their record numbers with the serial parser; every other row's line
    follows from its position among the rows pyarrow did emit plus the skipped ones before it.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[int, str]] = []  # (record index from 0 = line 2, reason), in file order
        self.consumed = 0  # skipped records already flushed

    def handler(self, row: Any) -> str:
        """pyarrow invalid_row_handler: remember the row, let parsing go on."""
        number = row.number if row.number is not None else -1
        reason = f"row has {row.actual_columns} fields, header has {row.expected_columns}"
        self.pending.append((number - 2, reason))
        return "skip"

    def _emitted_before(self) -> npt.NDArray[np.int64]:
        """For each pending skipped record: how many emitted rows precede it."""
        rec = np.fromiter((r for r, _ in self.pending), dtype=np.int64, count=len(self.pending))
        return rec - (self.consumed + np.arange(len(rec), dtype=np.int64))

    def lines(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Physical lines of emitted rows (global 0-based emitted-row indices)."""
        before = self.consumed
        if self.pending:
            return rows + before + np.searchsorted(self._emitted_before(), rows, side="right") + 2
        return rows + before + 2

    def flush(self, emitted: int) -> list[RowError]:
        """Errors of skipped rows lying before emitted row ``emitted`` (so before anything unread)."""
        if not self.pending:
            return []
        k = int(np.searchsorted(self._emitted_before(), emitted, side="right"))
        out = [RowError(rec + 2, reason) for rec, reason in self.pending[:k]]
        del self.pending[:k]
        self.consumed += k
        return out


def _chunks(layout: _Layout, batch_rows: int) -> Iterator[CsvChunk]:
    skipped = _Skipped()
    wanted = [layout.device_id, layout.timestamp, layout.lat, layout.lon]
    wanted += [c for c in (layout.accuracy_m,) if c is not None] + [c for _, c in layout.extras]
    names = [f"f{i}" for i in range(layout.n_fields)]
    try:
        # A Python file object, not the path: given a native file pyarrow reads ~35 blocks ahead
        # in the background (150 MB for 4 MiB blocks); through Python it reads when asked.
        source = open(layout.path, "rb", buffering=0)  # noqa: SIM115 - closed by the with below
        reader = pcsv.open_csv(
            source,
            # Serial parsing: only then does pyarrow report the record number of a bad row.
            read_options=pcsv.ReadOptions(
                use_threads=False, block_size=layout.block_size, skip_rows=1, column_names=names
            ),
            # Keep blank lines as (empty) rows so the row count stays equal to the line count.
            parse_options=pcsv.ParseOptions(invalid_row_handler=skipped.handler, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.binary() for c in wanted}, include_columns=list(dict.fromkeys(wanted))
            ),
        )
    except (pa.ArrowException, OSError) as e:
        raise CsvError(f"cannot read {layout.path}: {_first_line(e)}") from None
    with source:
        yield from _rebatch(reader, layout, batch_rows, skipped)


def _rebatch(reader: Any, layout: _Layout, batch_rows: int, skipped: _Skipped) -> Iterator[CsvChunk]:
    """Cut pyarrow's blocks (sized in bytes) into chunks of exactly batch_rows rows (the last fewer)."""
    emitted = 0  # rows handed to conversion so far (global index of the next one)
    held: list[pa.RecordBatch] = []  # rows read but not yet converted (< batch_rows of them)
    held_rows = 0
    while True:
        try:
            block = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowException, OSError) as e:
            line = int(skipped.lines(np.array([emitted + held_rows], dtype=np.int64))[0])
            raise CsvError(f"cannot read {layout.path} near line {line}: {_first_line(e)}") from None
        if block.num_rows:
            held.append(block)
            held_rows += block.num_rows
        while held_rows >= batch_rows:
            head, held = _split(held, batch_rows)
            held_rows -= batch_rows
            yield _chunk(head, emitted, layout, skipped)
            emitted += batch_rows
        if len(skipped.pending) >= batch_rows:
            # Many malformed rows: report them now (with the rows held so far) rather than hoard them.
            if held_rows:
                head, held = _split(held, held_rows)
                yield _chunk(head, emitted, layout, skipped)
                emitted += held_rows
                held_rows = 0
            else:
                yield CsvChunk(_empty_batch(layout), skipped.flush(emitted))
    if held_rows:
        head, held = _split(held, held_rows)
        yield _chunk(head, emitted, layout, skipped)
        emitted += held_rows
    tail = skipped.flush(emitted)
    if tail:
        yield CsvChunk(_empty_batch(layout), tail)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _split(held: list[pa.RecordBatch], n: int) -> tuple[pa.RecordBatch, list[pa.RecordBatch]]:
    """The first n held rows as one batch, and the rest (copies only when n spans blocks)."""
    first = held[0]
    if first.num_rows >= n:
        rest = [first.slice(n)] if first.num_rows > n else []
        return first.slice(0, n), rest + held[1:]
    table = pa.Table.from_batches(held)
    head = table.slice(0, n).combine_chunks().to_batches()[0]
    return head, table.slice(n).to_batches()


def _empty_batch(layout: _Layout) -> PingBatch:
    return PingBatch.from_columns([], [], [], [], [], [] if layout.extras else None)


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


def _chunk(rb: pa.RecordBatch, first_row: int, layout: _Layout, skipped: _Skipped) -> CsvChunk:
    """Convert one batch of raw rows and attach the errors (with lines) that precede its end."""
    rows = np.arange(rb.num_rows, dtype=np.int64)
    required = [rb.column(c) for c in (layout.device_id, layout.timestamp, layout.lat, layout.lon)]
    dev_len = pc.binary_length(required[0]).to_numpy()
    if rb.num_rows and dev_len.min() == 0:
        blank = dev_len == 0
        for arr in required[1:]:
            blank &= pc.binary_length(arr).to_numpy() == 0
        if blank.any():
            keep = np.flatnonzero(~blank)
            rb, rows, dev_len = rb.take(pa.array(keep)), rows[keep], dev_len[keep]
    batch, faults = _convert(rb, dev_len, layout)
    errors: list[RowError] = []
    if faults.reasons:
        bad = np.fromiter(faults.reasons, dtype=np.intp, count=len(faults.reasons))
        lines = skipped.lines(rows[bad] + first_row)
        errors = [
            RowError(int(line), "; ".join(faults.reasons[i]))
            for i, line in zip(bad.tolist(), lines.tolist(), strict=True)
        ]
    errors += skipped.flush(first_row + len(rows))
    errors.sort(key=lambda e: e.line)
    return CsvChunk(batch, errors)


def _convert(rb: pa.RecordBatch, dev_len: npt.NDArray[np.int32], layout: _Layout) -> tuple[PingBatch, _Faults]:
    n = rb.num_rows
    faults = _Faults(n)
    device_id = _device_ids(rb.column(layout.device_id), dev_len, faults)
    ts = _timestamps(rb.column(layout.timestamp), faults)
    lat = _bounded(rb.column(layout.lat), "lat", -90.0, 90.0, faults)
    lon = _bounded(rb.column(layout.lon), "lon", -180.0, 180.0, faults)
    acc = np.full(n, np.nan) if layout.accuracy_m is None else _accuracy(rb.column(layout.accuracy_m), faults)
    good: IdxArray | None = None
    if faults.reasons:
        good = np.flatnonzero(~faults.mask)
        device_id, ts, lat, lon, acc = device_id[good], ts[good], lat[good], lon[good], acc[good]
    extras = np.empty(0, dtype=object)
    if layout.extras:
        cols = [rb.column(c) for _, c in layout.extras]
        if good is not None:
            cols = [c.take(pa.array(good)) for c in cols]
        extras = _extras([name for name, _ in layout.extras], cols)
    return PingBatch(device_id=device_id, ts=ts, lat=lat, lon=lon, accuracy_m=acc, extras=extras), faults


def _show(raw: Any) -> str:
    """A cell value fit for a one-line message: decoded, escaped, shortened."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if len(text) > 40:
        text = text[:37] + "..."
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _device_ids(arr: pa.Array, dev_len: npt.NDArray[np.int32], faults: _Faults) -> ObjArray:
    n = len(arr)
    try:
        text = pc.cast(arr, pa.string())
    except pa.ArrowInvalid:  # some id is not UTF-8: sort them out one by one
        out = np.empty(n, dtype=object)
        for i, raw in enumerate(arr.to_pylist()):
            try:
                out[i] = raw.decode("utf-8")
            except UnicodeDecodeError:
                faults.add(i, f"device_id '{_show(raw)}' is not valid UTF-8")
                out[i] = ""
                continue
            if not out[i]:
                faults.add(i, "device_id is empty")
            elif len(out[i]) > _MAX_DEVICE_ID:
                faults.add(i, f"device_id longer than {_MAX_DEVICE_ID} characters")
        return out
    if n and dev_len.min() == 0:
        faults.add_each(np.flatnonzero(dev_len == 0), "device_id is empty")
    if n and dev_len.max() > _MAX_DEVICE_ID:  # bytes > 64; characters may still fit
        long = np.flatnonzero(dev_len > _MAX_DEVICE_ID)
        chars = pc.utf8_length(text.take(pa.array(long))).to_numpy()
        faults.add_each(long[chars > _MAX_DEVICE_ID], f"device_id longer than {_MAX_DEVICE_ID} characters")
    # One Python string per distinct device, shared by its rows: faster and lighter than one per row.
    enc = pc.dictionary_encode(text)
    return enc.dictionary.to_numpy(zero_copy_only=False)[enc.indices.to_numpy()]  # type: ignore[no-any-return]


def _py_float(text: str) -> float | None:
    """Python's float(), minus its '1_000' leniency; None if not a number."""
    if "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _mask(arr: pa.Array) -> BoolArray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _numbers(arr: pa.Array, name: str, faults: _Faults) -> tuple[FloatArray, BoolArray, BoolArray]:
    """Parse a numeric column: values (NaN where empty or unparseable), empty mask, parsed mask."""
    empty = pc.binary_length(arr).to_numpy() == 0
    text = arr.view(pa.string())  # numbers are ASCII: a bad byte just fails to parse
    if empty.any():
        text = pc.if_else(pa.array(empty), _NULL_STR, text)
    try:
        return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False), empty, ~empty
    except pa.ArrowInvalid:
        pass
    values = np.full(len(arr), np.nan)
    parsed = ~empty
    plain = _mask(pc.match_substring_regex(text, _NUMERIC_RE))
    idx = np.flatnonzero(plain)
    try:
        values[idx] = pc.cast(text.take(pa.array(idx)), pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        plain[:] = False
    for i in np.flatnonzero(~plain & ~empty).tolist():
        raw = arr[i].as_py()
        value = _py_float(raw.decode("utf-8", "replace"))
        if value is None:
            faults.add(i, f"{name} '{_show(raw)}' is not a number")
            parsed[i] = False
        else:
            values[i] = value
    return values, empty, parsed


def _check(arr: pa.Array, name: str, values: FloatArray, rows: BoolArray, faults: _Faults, rule: str) -> None:
    """Explain the parsed values that break the column's rule (few rows: per-row is fine)."""
    for i in np.flatnonzero(rows).tolist():
        shown = _show(arr[i].as_py())
        faults.add(i, f"{name} '{shown}' {rule}" if math.isfinite(values[i]) else f"{name} '{shown}' is not finite")


def _bounded(arr: pa.Array, name: str, lo: float, hi: float, faults: _Faults) -> FloatArray:
    values, empty, parsed = _numbers(arr, name, faults)
    if empty.any():
        faults.add_each(np.flatnonzero(empty), f"{name} is empty")
    with np.errstate(invalid="ignore"):
        ok = (values >= lo) & (values <= hi)  # False for NaN and ±inf
    if not ok.all():
        _check(arr, name, values, ~ok & parsed, faults, f"out of range [{lo:g}, {hi:g}]")
    return values


def _accuracy(arr: pa.Array, faults: _Faults) -> FloatArray:
    values, empty, parsed = _numbers(arr, "accuracy_m", faults)  # empty = unknown: NaN, accepted
    with np.errstate(invalid="ignore"):
        ok = empty | (np.isfinite(values) & (values >= 0))
    if not ok.all():
        _check(arr, "accuracy_m", values, ~ok & parsed, faults, "must be >= 0")
    return values


def _ns_to_seconds(ts: pa.Array) -> FloatArray:
    """Epoch seconds with microsecond precision, rounded exactly as datetime.timestamp() does."""
    micros = ts.to_numpy(zero_copy_only=False).view(np.int64) // 1000
    return micros / 1e6  # type: ignore[no-any-return]


def _py_timestamp(text: str) -> float | str:
    """One timestamp the vectorised casts refused: seconds, or the reason (without the prefix)."""
    text = text.strip()
    value = _py_float(text)
    if value is not None:
        return value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return "is not ISO 8601 or epoch seconds"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return "has no UTC offset"
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError):
        return "out of range"


def _timestamps(arr: pa.Array, faults: _Faults) -> FloatArray:
    n = len(arr)
    if n == 0:
        return np.empty(0)
    text = arr.view(pa.string())
    # Whole-column fast path when a few sampled rows agree on the kind (a failing ISO cast is slow).
    kinds = {
        bool(re.match(_NUMERIC_RE, (arr[i].as_py() or b"").decode("utf-8", "replace"))) for i in (0, n // 2, n - 1)
    }
    values: FloatArray
    if len(kinds) == 1:
        try:
            if kinds == {True}:
                values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
            else:
                values = _ns_to_seconds(pc.cast(text, _TS_TYPE))
            done = np.ones(n, dtype=np.bool_)
        except pa.ArrowInvalid:
            values, done = _timestamps_mixed(arr, text, faults)
    else:
        values, done = _timestamps_mixed(arr, text, faults)
    with np.errstate(invalid="ignore"):
        ok = (values >= _TS_MIN) & (values < _TS_MAX)
    if not ok.all():
        _check(arr, "timestamp", values, ~ok & done, faults, "out of range (epoch must be in seconds, years 1-9999)")
    return values


def _timestamps_mixed(arr: pa.Array, text: pa.Array, faults: _Faults) -> tuple[FloatArray, BoolArray]:
    """Epoch and ISO rows mixed, or bad rows: cast each well-formed kind apart, explain the rest."""
    values = np.full(len(arr), np.nan)
    done = np.zeros(len(arr), dtype=np.bool_)
    for pattern, convert in (
        (_NUMERIC_RE, lambda a: pc.cast(a, pa.float64()).to_numpy(zero_copy_only=False)),
        (_ISO_RE, lambda a: _ns_to_seconds(pc.cast(a, _TS_TYPE))),
    ):
        idx = np.flatnonzero(_mask(pc.match_substring_regex(text, pattern)))
        try:
            values[idx] = convert(text.take(pa.array(idx)))
            done[idx] = True
        except pa.ArrowInvalid:  # e.g. a well-formed but impossible date: leave the subset to Python
            pass
    for i in np.flatnonzero(~done).tolist():
        raw = arr[i].as_py()
        if not raw:
            faults.add(i, "timestamp is empty")
            continue
        result = _py_timestamp(raw.decode("utf-8", "replace"))
        if isinstance(result, str):
            faults.add(i, f"timestamp '{_show(raw)}' {result}")
        else:
            values[i] = result
            done[i] = True
    return values, done


def _extras(names: list[str], cols: list[pa.Array]) -> ObjArray:
    """Per-ping mappings of the carried fields: None when empty, numbers as floats where numeric.

    Columns that convert cleanly go through an arrow struct (its to_pylist builds the dicts in
    C); a numeric field holding some text is filled in afterwards, value by value.
    """
    typed: dict[str, pa.Array] = {}
    loose: dict[str, list[Any]] = {}
    for name, arr in zip(names, cols, strict=True):
        empty = pc.equal(pc.binary_length(arr), 0)
        try:
            if name in _NUMERIC_EXTRAS:
                typed[name] = pc.cast(pc.if_else(empty, _NULL_STR, arr.view(pa.string())), pa.float64())
            else:
                typed[name] = pc.if_else(empty, _NULL_STR, pc.cast(arr, pa.string()))
            continue
        except pa.ArrowInvalid:
            pass
        texts = [raw.decode("utf-8", "replace") or None for raw in arr.to_pylist()]
        if name in _NUMERIC_EXTRAS:
            numbers = [_py_float(t) if t else None for t in texts]
            loose[name] = [t if v is None else v for t, v in zip(texts, numbers, strict=True)]
        else:
            loose[name] = texts
    n = len(cols[0]) if cols else 0
    dicts: list[dict[str, Any]] = (
        pa.StructArray.from_arrays(list(typed.values()), names=list(typed)).to_pylist()
        if typed
        else [{} for _ in range(n)]
    )
    for name, values in loose.items():
        for d, v in zip(dicts, values, strict=True):
            d[name] = v
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


def _cell(value: Any) -> str:
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
    present = {key for extra in extras if extra for key in extra}
    extra_names = [name for name in EXTRA_FIELDS if name in present]
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
                    _cell(float(batch.accuracy_m[i])),
                    *(_cell(extra.get(name)) for name in extra_names),
                ]
            )
