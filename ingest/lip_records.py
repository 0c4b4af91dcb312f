"""LIP records as a location server hands them on, ``{"issi", "received_at", "payload"}``, made pings.

The one envelope of every TETRA way in: a Kafka message of the LIP topic (``--topic-lip``), an
element of ``POST /v1/pings/lip`` (a JSON array, one object, or NDJSON), a ``+CTSDSR`` pair of a
PEI log (``ingest.pei``). Fields:

- ``issi``: the radio, which becomes the ping's ``device_id``: a string (the device id rule) or
  a JSON integer 0..16777215 (an ISSI is 24 bits), taken as its decimal text;
- ``received_at``: when the location server (or PEI) received the SDS, ISO 8601 with an offset
  or epoch seconds (the timestamp rule); the decoder dates the fix from it (``ingest.lip``);
- ``payload``: the hex of the LIP PDU, with or without the protocol identifier 0x0A.

Decoded by ``ingest.lip`` in one vectorised call per batch, then every decoded value is checked
by the ping rules (``ingest.rules``), as any ping's. A report that gives no bound of its error
(accuracy NaN: error class unknown or > 200 km, a point shape, best-effort uncertainty) gets
``accuracy_m = UNBOUNDED_ACCURACY_M``, half the Earth's circumference: the honest bound of "no
bound", beyond any ``max_accuracy_m``, so the fix counts as uncertain (proves the radio alive,
moves no inside/outside state), as issue 11 asks. Speed and heading are carried as extras.

Refusals are ``Reject``s as ``ingest.ping_message`` words them, one per refused record: the
first bad field (``issi``, ``received_at``, ``payload``; a decoded value that breaks a ping rule
is a ``payload`` refusal naming it) and the reason, e.g. ``payload: is not hex: 'G' at character 5``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from operator import itemgetter
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, RootModel, TypeAdapter, ValidationError
from pydantic_core import from_json
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, before Python 3.12

from geofence.pings import FloatArray, PingBatch
from ingest.fixes import motion_extras
from ingest.lip import decode_lip
from ingest.ping_message import BodyError, ParsedPings, Reject, body_kind
from ingest.rules import (
    CONTROL_CLASS,
    DEVICE_ID,
    ISO_PATTERN,
    PING_RULES,
    REQUIRED,
    TIMESTAMP,
    NumberRule,
    TimestampRule,
    field_reason,
    json_kind,
    show,
)

__all__ = ["ISSI_MAX", "UNBOUNDED_ACCURACY_M", "lip_batch", "parse_lip_body", "parse_lip_messages", "parse_lip_records"]

#: accuracy_m of a fix whose report bounds no error: half the Earth's equatorial circumference, metres.
UNBOUNDED_ACCURACY_M = 20_037_508.0
#: The largest ISSI (24 bits), for records that give it as a JSON integer.
ISSI_MAX = 2**24 - 1
#: Decoded values checked by the ping rules, in the rules' order.
_DECODED = ("ts", "lat", "lon", "accuracy_m", "speed_mps", "heading_deg")
_CONTROL = re.compile(CONTROL_CLASS)
_ISSI, _RECEIVED, _PAYLOAD = itemgetter("issi"), itemgetter("received_at"), itemgetter("payload")


class _Record(TypedDict):
    """A JSON object with the three keys: its values are checked in bulk by _collect."""

    issi: Any
    received_at: Any
    payload: Any


class _Unparsed(RootModel[Any]):
    """A record that is not well-formed, kept raw so that ``_envelope`` can say why."""


_ELEMENTS = TypeAdapter(list[Annotated[_Record | _Unparsed, Field(union_mode="left_to_right")]])


def parse_lip_messages(values: Sequence[bytes | None]) -> ParsedPings:
    """Kafka message values, one LIP record each; Reject.index is the position in values."""
    return _parse_values(values, list(range(len(values))))


def parse_lip_body(body: bytes, content_type: str) -> ParsedPings:
    """A POSTed body: a JSON array of LIP records, one record object, or NDJSON (one per line).

    As ``parse_http_body``: UnsupportedContentType for other media types, BodyError when the body
    as a whole is unusable; in NDJSON the index is the line number - 1.
    """
    kind = body_kind(content_type)
    if not body.strip():
        raise BodyError("empty body: expected a JSON array of LIP records, one record object, or NDJSON")
    if kind == "ndjson":
        lines = body.split(b"\n")
        positions = [i for i, line in enumerate(lines) if line.strip()]
        return _parse_values([lines[i] for i in positions], positions)
    try:
        value = from_json(body)
    except ValueError as e:
        raise BodyError(f"malformed JSON: {e}") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise BodyError(f"body must be a JSON array of LIP records or one record object, not {json_kind(value)}")
    return parse_lip_records(value, list(range(len(value))))


def _parse_values(values: Sequence[bytes | None], positions: list[int]) -> ParsedPings:
    """JSON values, one record each, reported at positions: one Rust call for the lot when all parse."""
    if values and all(values):
        try:
            elements = _ELEMENTS.validate_json(b"[" + b",".join(values) + b"]")  # type: ignore[arg-type]
        except ValidationError:
            elements = []
        if len(elements) == len(values):
            return _collect(elements, positions)
    records: list[Any] = []
    at: list[int] = []
    rejects: list[Reject] = []
    for position, value in zip(positions, values, strict=True):
        if not value:
            rejects.append(Reject(position, None, "empty message"))
            continue
        try:
            records.append(from_json(value))
        except ValueError as e:
            rejects.append(Reject(position, None, f"malformed JSON: {e}"))
            continue
        at.append(position)
    parsed = parse_lip_records(records, at)
    return ParsedPings(parsed.batch, sorted(rejects + parsed.rejects, key=lambda r: r.index))


def parse_lip_records(records: Sequence[Any], positions: list[int]) -> ParsedPings:
    """Parsed JSON records: each envelope checked, then the good ones decoded as one batch."""
    return _collect(_ELEMENTS.validate_python(records), positions)


def _collect(elements: list[Any], positions: list[int]) -> ParsedPings:
    """Check the records in bulk, refuse the bad ones (worded by _envelope), decode the others as one batch."""
    rows = [k for k, element in enumerate(elements) if type(element) is not _Unparsed]
    records = [elements[k] for k in rows]
    issi = [_issi_text(v) for v in map(_ISSI, records)]
    payloads = list(map(_PAYLOAD, records))
    received, ok = _received(list(map(_RECEIVED, records)))
    ok &= _device_ids_ok(issi)
    if None in payloads:
        ok &= np.array([p is not None for p in payloads], dtype=np.bool_)
    good = np.flatnonzero(ok).tolist()
    refused = sorted(set(range(len(elements))) - {rows[k] for k in good})
    rejects = [_refusal(elements[k], positions[k]) for k in refused]
    batch, bad = lip_batch([issi[k] or "" for k in good], received[good], [payloads[k] for k in good])
    rejects += [Reject(positions[rows[good[k]]], field, reason) for k, field, reason in bad]
    return ParsedPings(batch, sorted(rejects, key=lambda r: r.index))


def _issi_text(value: Any) -> str | None:
    """An ISSI as text: a string as it is, a 24-bit JSON integer in decimal; None for anything else."""
    if type(value) is str:
        return value
    return str(value) if type(value) is int and 0 <= value <= ISSI_MAX else None


def _device_ids_ok(issi: list[str | None]) -> npt.NDArray[np.bool_]:
    """Which ISSI texts meet the device id rule (vectorised: lengths, then one search for control characters)."""
    texts = [v or "" for v in issi]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    ok = (lengths >= 1) & (lengths <= DEVICE_ID.limit)
    if _CONTROL.search("".join(texts)):
        ok &= np.fromiter((_CONTROL.search(t) is None for t in texts), dtype=np.bool_, count=len(texts))
    return ok


def _received(values: list[Any]) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Epoch seconds of received_at values and which meet the timestamp rule: in bulk when all are alike."""
    n = len(values)
    kinds = set(map(type, values))
    seconds = np.full(n, np.nan)
    if kinds <= {float, int}:
        with contextlib.suppress(OverflowError):  # an integer beyond any float: left to the rule
            seconds = np.array(values, dtype=np.float64)
    elif kinds == {str}:
        text = pa.array(values, pa.string())
        form = pc.match_substring_regex(text, ISO_PATTERN).to_numpy(zero_copy_only=False)
        try:  # as the CSV reader casts ISO 8601 (ingest.csv_pings): to the microsecond, like datetime
            stamps = pc.cast(pc.if_else(pa.array(form), text, None), pa.timestamp("ns", tz="UTC"))
            micros = stamps.fill_null(0).to_numpy(zero_copy_only=False).view(np.int64) // 1000
            seconds = np.where(form, micros / 1e6, np.nan)
        except pa.ArrowInvalid:  # a form arrow cannot cast (a year past 2262...): left to the rule, row by row
            pass
    if np.isnan(seconds).any():
        redo = np.flatnonzero(np.isnan(seconds))
        parsed = [TIMESTAMP.parse(values[k]) for k in redo.tolist()]
        seconds[redo] = [v if isinstance(v, float) else np.nan for v in parsed]
    with np.errstate(invalid="ignore"):
        return seconds, (seconds >= TIMESTAMP.lo) & (seconds < TIMESTAMP.hi)


def _refusal(element: Any, position: int) -> Reject:
    fields = _envelope(element.root if type(element) is _Unparsed else element)
    if not isinstance(fields, Reject):  # unreachable while the bulk checks and the rules agree; never silent
        return Reject(position, None, "invalid LIP record")
    return Reject(position, fields.field, fields.reason)


def _envelope(record: Any) -> tuple[str, float, Any] | Reject:
    """A record's ISSI (as text), received time and payload, or why it is refused (index left 0)."""
    if not isinstance(record, dict):
        return Reject(0, None, f"a LIP record must be a JSON object, not {json_kind(record)}")
    faults: list[tuple[str, str]] = []
    issi = record.get("issi")
    if type(issi) is int:
        if 0 <= issi <= ISSI_MAX:
            issi = str(issi)
        else:
            faults.append(("issi", f"an ISSI is a 24-bit number (0-{ISSI_MAX}), got {show(issi)}"))
    reason = DEVICE_ID.reason(issi) if not faults else None
    if reason is not None:
        faults.append(("issi", reason))
    received = TIMESTAMP.parse(record.get("received_at"))
    if not isinstance(received, float):
        faults.append(("received_at", received or REQUIRED))
    payload = record.get("payload")
    if payload is None:
        faults.append(("payload", REQUIRED))
    if faults:
        rest = [f"{name}: {why}" for name, why in faults[1:]]
        return Reject(0, faults[0][0], "; ".join([faults[0][1], *rest]))
    assert isinstance(issi, str) and isinstance(received, float)  # no fault: both checked
    return issi, received, payload


def lip_batch(
    issi: Sequence[str], received_at: FloatArray, payloads: Sequence[Any]
) -> tuple[PingBatch, list[tuple[int, str, str]]]:
    """Pings of decoded LIP payloads (issi already checked), and (row, field, reason) of each refused row.

    The batch holds the good rows in input order.
    """
    reports = decode_lip(payloads, received_at)
    refused: dict[int, tuple[str, str]] = {k: ("payload", reason) for k, reason in reports.rejects}
    columns = dict(zip(_DECODED, (reports.ts, reports.lat, reports.lon, reports.accuracy_m,
                                  reports.speed_mps, reports.heading_deg), strict=True))  # fmt: skip
    for name in _DECODED:  # values the decoder gave, held to the ping rules like any ping's
        for k in np.flatnonzero(reports.ok & _breaks(PING_RULES[name], columns[name])).tolist():
            reason = field_reason(PING_RULES[name], float(columns[name][k]))
            refused.setdefault(k, ("payload", f"decodes to {name} that {reason}"))
    keep = np.flatnonzero(reports.ok & ~np.isin(np.arange(len(reports)), list(refused)))
    device = np.empty(len(keep), dtype=object)
    device[:] = [issi[k] for k in keep.tolist()]
    accuracy = reports.accuracy_m[keep]
    batch = PingBatch(
        device_id=device,
        ts=reports.ts[keep],
        lat=reports.lat[keep],
        lon=reports.lon[keep],
        accuracy_m=np.where(np.isnan(accuracy), UNBOUNDED_ACCURACY_M, accuracy),
        extras=motion_extras(reports.speed_mps[keep], reports.heading_deg[keep]),
    )
    return batch, [(k, field, reason) for k, (field, reason) in sorted(refused.items())]


def _breaks(rule: Any, values: FloatArray) -> npt.NDArray[np.bool_]:
    """Which known (not NaN) values break a number or timestamp rule."""
    assert isinstance(rule, NumberRule | TimestampRule)
    open_top = isinstance(rule, TimestampRule) or rule.hi_open
    inside = (values >= rule.lo) & ((values < rule.hi) if open_top else (values <= rule.hi))
    return ~np.isnan(values) & ~(inside & np.isfinite(values))
