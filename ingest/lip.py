"""Decoder of TETRA location reports: the Location Information Protocol, ETSI TS 100 392-18-1.

Radios send their position as a LIP PDU in an SDS message (protocol identifier 0x0A); a
location server or a radio's PEI hands it on as hex. Two PDUs carry a position:

- the **short location report** (PDU type 0, 76 bits): time elapsed, 25-bit longitude and
  24-bit latitude in two's complement, position error, horizontal velocity, direction of
  travel (16 points of 22.5 degrees), type of additional data and 8 bits of it;
- the **long location report** (PDU type 1, extension 3): time data (none, time elapsed or
  time of position), a location shape (point, circle, ellipse, each also with altitude, or
  point with position error), velocity data (eight types, some with direction of travel in
  steps of 360/256 degrees), acknowledgement request and additional data. Optional elements
  after these are ignored, so are the padding bits of the last octet.

Conversions (cross-checked against the decoders and frames cited in tests/ingest/test_lip.py):
longitude = value * 360 / 2**25 and latitude = value * 180 / 2**24, so every bit pattern is a
coordinate in [-180, 180) x [-90, 90): -180 and -90 are representable, +180 and +90 are not
(they encode as -180 and the highest step below 90), and no payload can decode to an
impossible coordinate. Horizontal velocity K is K km/h up to 28, then 16 * 1.038**(K - 13)
km/h up to 125 (1043 km/h); 126 (faster than that) and 127 (unknown) give no speed. Speed
comes out in metres per second, direction as ``heading_deg`` clockwise from north; direction
15 of the short report means NNW *or* "not known", and is read as not known when the speed
is not known either.

``accuracy_m`` is the upper bound of the report's horizontal error: the position error class
(< 2 m -> 2, < 20 m -> 20, < 200 m -> 200, < 2 km -> 2000, < 20 km -> 20000, <= 200 km ->
200000), or the uncertainty radius of a circle shape, or the half major axis of an ellipse
(its worst direction), with K giving 2 * 1.2**(K + 5) - 4 metres. NaN when the report gives
no bound: error class "> 200 km" or "not known", uncertainty "best effort" (K = 63), and the
point shapes, which carry no uncertainty at all. Issue 11 wants these fixes uncertain, which
is for the caller to apply: a ping without ``accuracy_m`` counts as certain (SEMANTICS.md).
It matters: a radio without a fix reports 0, 0 with error "not known" (Motorola radios do),
which decodes as such a fix, alive but placed nowhere. A location arc is refused: its point is
the arc's centre, not the radio.

``ts`` (epoch seconds) is the time the radio was at the position, as late as the report
allows: the received time minus the *lower* bound of the time elapsed class (< 5 s -> 0,
< 5 min -> 5 s, < 30 min -> 5 min, not known -> 0); a radio reports the smallest class that
fits, so its fix is at least that old, while subtracting more would invent precision and
could order two reports of one radio wrongly. A long report's time of position (UTC day of
month, hour, minute, second) is resolved against the received time: the latest such instant
no more than 14 hours after it (a radio clock set to local time can be ahead by up to UTC+14;
such a fix then stays in the future, where the input rules see it, rather than being moved a
month back), skipping months without that day.

The protocol identifier 0x0A may precede the PDU, and a leading 0x0A is always taken as it. A
long report never starts with 0x0A, but a bare short report does when its longitude lies in
[-135, -123.75) degrees (Alaska, Yukon, the Pacific: no TETRA network): such a report must
come with its identifier, else it is refused as too short. Guessing by length instead (a bare
short report is 10 octets) would turn an identified report cut to 10 octets into a wrong
position without a word.

Speed: a batch is decoded with numpy (hex to an octet matrix, every field by shifts and masks
over the batch at per-row bit offsets): about a million records/s on this machine
(``python -m bench.decoders``). Payloads the fast path cannot take (not a string, blanks
around the hex, not hex, odd length, longer than FAST_DIGITS) go through ``_octets_one`` one
by one, which words their refusal exactly or hands their octets to the same field decoding.
Refusals never raise: each is a reason, worded to follow ``payload: `` (e.g. ``payload: is not
hex: 'G' at character 5``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from geofence.pings import FloatArray, IntArray
from ingest.rules import TIMESTAMP, show

__all__ = ["PROTOCOL_IDENTIFIER", "LipReports", "decode_lip"]

PROTOCOL_IDENTIFIER = 0x0A
SHORT_BITS = 76
#: An SDS type-4 message holds at most 2047 bits, identifier included: no payload is longer.
MAX_OCTETS = 256
#: Payloads up to this many hex digits take the fast path (the longest long report, identifier
#: included, is 22 octets; optional elements may follow it).
FAST_DIGITS = 64
#: How far a time of position may lie after the received time before it is read as last month's.
AHEAD_S = 14 * 3600.0

BoolArray = npt.NDArray[np.bool_]
Octets = npt.NDArray[np.uint8]

_NAN = math.nan
# Position error (short report, shape "point and position error"): the class's upper bound, metres.
_POSITION_ERROR_M = np.array([2.0, 20.0, 200.0, 2000.0, 20000.0, 200000.0, _NAN, _NAN])
# Horizontal position uncertainty and ellipse half axes (6 bits): "less than" radius, metres.
_K = np.arange(64.0)
_UNCERTAINTY_M = np.where(_K < 63, 2.0 * 1.2 ** (_K + 5.0) - 4.0, _NAN)
# Horizontal velocity (7 bits), metres per second.
_K = np.arange(128.0)
_SPEED_MPS = np.where(_K <= 28, _K, np.where(_K <= 125, 16.0 * 1.038 ** (_K - 13.0), _NAN)) / 3.6
# Time elapsed (2 bits): the class's lower bound, seconds.
_ELAPSED_S = np.array([0.0, 5.0, 300.0, 0.0])

# Long report layout: bits after each element's type field, by type value.
_TIME_BITS = np.array([0, 2, 22, 0])  # none, time elapsed, time of position, reserved
# Location shapes: 0 none, 1 point, 2 circle, 3 ellipse, 4 point with altitude, 5 circle with
# altitude, 6 ellipse with altitude, 7 circle with altitude and altitude uncertainty, 8 ellipse
# with altitude and altitude uncertainty, 9 arc, 10 point with position error, 11-14 reserved,
# 15 shape extension. Each starts with longitude (25) and latitude (24).
_SHAPE_BITS = np.array([0, 49, 55, 72, 61, 67, 84, 70, 87, 100, 52, 0, 0, 0, 0, 0])
_SHAPE_DECODED = np.array([False, *[True] * 8, False, True, *[False] * 5])
_SHAPE_UNCERTAINTY = np.isin(np.arange(16), [2, 3, 5, 6, 7, 8])  # 6 bits after the point
_SHAPE_POSITION_ERROR = 10  # 3 bits after the point
# Velocity types: 0 none, 1 horizontal, 2 with uncertainty, 3 horizontal and vertical, 4 with
# uncertainties, 5 horizontal with direction of travel extended, 6 with uncertainties, 7 all.
_VELOCITY_BITS = np.array([0, 7, 10, 15, 21, 15, 21, 32])
_DIRECTION_AT = np.array([-1, -1, -1, -1, -1, 7, 10, 21])  # direction extended after the type field
_TRAILER_BITS = 10  # acknowledgement request, type of additional data, additional data

_EXTENSIONS = (
    "reserved",
    "immediate location report request",
    "reserved",
    "long location report",
    "location report acknowledgement",
    "basic location parameters request/response",
    "add/modify trigger request/response",
    "remove trigger request/response",
    "report trigger request/response",
    "report basic location parameters request/response",
    "location reporting enable/disable request/response",
    "location reporting temporary control request/response",
    "backlog request/response",
    "reserved",
    "reserved",
    "reserved",
)
_LONG_REPORT = 3

# Reasons, in the order a row is checked (the first that applies is given).
_EMPTY_PDU, _SHORT_TOO_SHORT, _RESERVED_PDU, _LONG_TOO_SHORT = 1, 2, 3, 4
_NOT_A_REPORT, _RESERVED_TIME, _NO_POSITION, _BAD_TIME, _BAD_RECEIVED = 5, 6, 7, 8, 9

_NOT_HEX = re.compile(r"[^0-9A-Fa-f]")


@dataclass(frozen=True, slots=True)
class LipReports:
    """Decoded payloads, one row each in input order; a refused row holds NaN and a reason.

    accuracy_m, speed_mps, heading_deg: NaN where the report gives none (module docstring).
    rejects: (index, reason) of every refused payload, in index order.
    """

    ts: FloatArray
    lon: FloatArray
    lat: FloatArray
    accuracy_m: FloatArray
    speed_mps: FloatArray
    heading_deg: FloatArray
    ok: BoolArray
    rejects: list[tuple[int, str]]

    def __len__(self) -> int:
        return len(self.ts)


def decode_lip(payloads: Sequence[Any], received_at: Sequence[float] | FloatArray) -> LipReports:
    """Decode hex LIP payloads (with or without the 0x0A identifier) received at epoch seconds.

    Never raises for a bad payload (its row gets a reason); ValueError only when the two
    sequences differ in length.
    """
    n = len(payloads)
    received = np.asarray(received_at, dtype=np.float64)
    if received.shape != (n,):
        raise ValueError(f"{n} payloads but {received.size} received times")
    columns = np.full((6, n), _NAN)
    ok = np.zeros(n, dtype=bool)
    rejects: dict[int, str] = {}
    fast, slow, lengths = _split(payloads)
    if len(fast):
        octets, sizes, bad = _octets_fast(_pick(payloads, fast), lengths[fast])
        slow = np.sort(np.concatenate([slow, fast[bad]]))
        _decode_into(octets, sizes, fast[~bad], received, columns, ok, rejects)
    if len(slow):
        parsed = [_octets_one(payloads[i]) for i in slow.tolist()]
        rows = [i for i, p in zip(slow.tolist(), parsed, strict=True) if isinstance(p, bytes)]
        rejects.update((i, p) for i, p in zip(slow.tolist(), parsed, strict=True) if isinstance(p, str))
        if rows:
            good = [p for p in parsed if isinstance(p, bytes)]
            sizes = np.fromiter(map(len, good), dtype=np.int64, count=len(good))
            octets = _matrix(np.frombuffer(b"".join(good), dtype=np.uint8), sizes)
            _decode_into(octets, sizes, np.array(rows, dtype=np.int64), received, columns, ok, rejects)
    ts, lon, lat, accuracy, speed, heading = columns
    return LipReports(ts, lon, lat, accuracy, speed, heading, ok, sorted(rejects.items()))


# -- hex to octets -----------------------------------------------------------------------------


def _split(payloads: Sequence[Any]) -> tuple[IntArray, IntArray, IntArray]:
    """Indices of the payloads the fast path may take (strings of 2..64 digits, even), the rest, lengths."""
    n = len(payloads)
    if set(map(type, payloads)) <= {str}:
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
    else:  # rare: something else than strings in the batch
        lengths = np.array([len(p) if type(p) is str else -1 for p in payloads], dtype=np.int64)
    fast = (lengths >= 2) & (lengths <= FAST_DIGITS) & (lengths % 2 == 0)
    return np.flatnonzero(fast), np.flatnonzero(~fast), lengths


def _pick(payloads: Sequence[Any], idx: IntArray) -> Sequence[str]:
    if len(idx) == len(payloads):
        return payloads
    if len(idx) < 2:
        return [payloads[i] for i in idx.tolist()]
    picked: tuple[str, ...] = itemgetter(*idx.tolist())(payloads)
    return picked


def _octets_fast(texts: Sequence[str], lengths: IntArray) -> tuple[Octets, IntArray, BoolArray]:
    """Which texts hold a character other than a hex digit, and the octets and sizes of the others.

    One ``bytes.fromhex`` over the joined texts (each of even length, so octets never straddle
    two); it skips blanks and refuses the rest, so anything but a clean batch is searched for
    its culprits, which are left out.
    """
    joined = "".join(texts)
    bad = np.zeros(len(texts), dtype=bool)
    try:
        flat = bytes.fromhex(joined)
    except ValueError:
        flat = b""
    if 2 * len(flat) != len(joined):
        culprits = [m.start() for m in _NOT_HEX.finditer(joined)]
        bad[np.searchsorted(np.cumsum(lengths), culprits, side="right")] = True
        flat = bytes.fromhex("".join(_pick(texts, np.flatnonzero(~bad))))
    sizes = lengths[~bad] // 2
    return _matrix(np.frombuffer(flat, dtype=np.uint8), sizes), sizes, bad


def _matrix(flat: Octets, sizes: IntArray) -> Octets:
    """Consecutive rows of the given sizes as a matrix, zero-padded by 4 octets at least."""
    width = int(sizes.max(initial=0))
    octets = np.zeros((len(sizes), width + 4), dtype=np.uint8)
    if len(flat):
        column = np.arange(width)
        at = np.minimum((np.cumsum(sizes) - sizes)[:, None] + column, len(flat) - 1)
        octets[:, :width] = np.where(column < sizes[:, None], flat[at], 0)
    return octets


def _octets_one(payload: Any) -> bytes | str:
    """The octets of one payload the fast path could not take, or why it is refused."""
    if not isinstance(payload, str):
        return f"must be a hex string, got {show(payload)}"
    text = payload.strip()
    if not text:
        return "is empty"
    bad = _NOT_HEX.search(text)
    if bad is not None:
        blanks = len(payload) - len(payload.lstrip())
        return f"is not hex: {show(bad[0])} at character {blanks + bad.start() + 1}"
    if len(text) % 2:
        return f"has an odd number of hex digits ({len(text)}): LIP PDUs are whole octets"
    if len(text) > 2 * MAX_OCTETS:
        return f"is {len(text) // 2} octets long, more than an SDS message holds ({MAX_OCTETS})"
    return bytes.fromhex(text)


# -- fields ------------------------------------------------------------------------------------


def _reader(octets: Octets) -> Callable[[IntArray, int], IntArray]:
    """A function reading a big-endian field of up to 25 bits at a per-row bit offset."""
    flat = octets.reshape(-1)
    starts = np.arange(len(octets), dtype=np.int64) * octets.shape[1]
    last = octets.shape[1] - 4  # reads past a row's end see its zero padding, never the next row

    def read(offset: IntArray, width: int) -> IntArray:
        at = starts + np.minimum(offset >> 3, last)
        word = flat[at].astype(np.int64) << 24
        word |= flat[at + 1].astype(np.int64) << 16
        word |= flat[at + 2].astype(np.int64) << 8
        word |= flat[at + 3]
        field: IntArray = (word >> (32 - (offset & 7) - width)) & ((1 << width) - 1)
        return field

    return read


def _signed(value: IntArray, bits: int) -> IntArray:
    return value - ((value >> (bits - 1)) << bits)


def _decode_into(
    octets: Octets,
    sizes: IntArray,
    rows: IntArray,
    received_at: FloatArray,
    columns: FloatArray,
    ok: BoolArray,
    rejects: dict[int, str],
) -> None:
    """Decode octet rows (of payloads ``rows``) into ``columns`` (ts, lon, lat, accuracy, speed, heading)."""
    read = _reader(octets)
    received = received_at[rows]
    base = np.where(octets[:, 0] == PROTOCOL_IDENTIFIER, 8, 0).astype(np.int64)
    have = sizes * 8 - base
    pdu = read(base, 2)
    long = pdu == 1

    # Long report layout: each element's offset follows from the type fields before it.
    extension = read(base + 2, 4)
    time_type = read(base + 6, 2)
    shape_at = 8 + _TIME_BITS[time_type]
    shape = read(base + shape_at, 4)
    velocity_at = shape_at + 4 + _SHAPE_BITS[shape]
    velocity_type = read(base + velocity_at, 3)
    need = velocity_at + 3 + _VELOCITY_BITS[velocity_type] + _TRAILER_BITS

    point_at = np.where(long, shape_at + 4, 4)
    lon = _signed(read(base + point_at, 25), 25) * (360.0 / 2**25)
    lat = _signed(read(base + point_at + 25, 24), 24) * (180.0 / 2**24)
    after_point = read(base + point_at + 49, 6)  # uncertainty (6 bits) or position error (3 bits)
    accuracy = np.where(
        long,
        np.where(
            _SHAPE_UNCERTAINTY[shape],
            _UNCERTAINTY_M[after_point],
            np.where(shape == _SHAPE_POSITION_ERROR, _POSITION_ERROR_M[after_point >> 3], _NAN),
        ),
        _POSITION_ERROR_M[after_point >> 3],
    )
    speed_k = read(base + np.where(long, velocity_at + 3, 56), 7)
    speed = np.where(long & (velocity_type == 0), _NAN, _SPEED_MPS[speed_k])
    direction_at = _DIRECTION_AT[velocity_type]
    extended = read(base + velocity_at + 3 + np.maximum(direction_at, 0), 8) * (360.0 / 256)
    point16 = read(base + 63, 4)
    heading = np.where(
        long,
        np.where(direction_at >= 0, extended, _NAN),
        np.where((point16 == 15) & (speed_k == 127), _NAN, point16 * 22.5),
    )

    elapsed = _ELAPSED_S[read(base + np.where(long, 8, 2), 2)]
    elapsed = np.where(long & (time_type != 1), 0.0, elapsed)
    day, hour = read(base + 8, 5), read(base + 13, 5)
    minute, second = read(base + 18, 6), read(base + 24, 6)
    stamped = long & (time_type == 2)
    received_ok = (received >= TIMESTAMP.lo) & (received < TIMESTAMP.hi)
    bad_time = stamped & ((day == 0) | (hour > 23) | (minute > 59) | (second > 59))
    ts = received - elapsed
    resolve = stamped & ~bad_time & received_ok
    if resolve.any():
        ts[resolve] = _time_of_position(
            received[resolve], day[resolve], hour[resolve] * 3600 + minute[resolve] * 60 + second[resolve]
        )

    reason = np.select(
        [
            have <= 0,
            (pdu == 0) & (have < SHORT_BITS),
            pdu > 1,
            long & (extension != _LONG_REPORT),  # whole octets: 8 bits or more hold the types read so far
            long & (time_type == 3),
            long & (have < shape_at + 4),
            long & ~_SHAPE_DECODED[shape],
            long & (have < need),
            bad_time,
            ~received_ok,
        ],
        [
            _EMPTY_PDU,
            _SHORT_TOO_SHORT,
            _RESERVED_PDU,
            _NOT_A_REPORT,
            _RESERVED_TIME,
            _LONG_TOO_SHORT,
            _NO_POSITION,
            _LONG_TOO_SHORT,
            _BAD_TIME,
            _BAD_RECEIVED,
        ],
        0,
    )
    need = np.where(have < shape_at + 4, shape_at + 4, need)
    good = reason == 0
    columns[:, rows[good]] = np.stack([ts, lon, lat, accuracy, speed, heading])[:, good]
    ok[rows[good]] = True
    fields = {"have": have, "need": need, "pdu": pdu, "extension": extension, "shape": shape}
    fields |= {"day": day, "hour": hour, "minute": minute, "second": second, "received": received}
    for k in np.flatnonzero(~good).tolist():
        rejects[int(rows[k])] = _explain(int(reason[k]), {name: v[k].item() for name, v in fields.items()})


def _time_of_position(received: FloatArray, day: IntArray, second_of_day: IntArray) -> FloatArray:
    """The latest instant on that day of the month and time (UTC) at most AHEAD_S after received."""
    latest = np.floor(received + AHEAD_S).astype(np.int64).astype("datetime64[s]")
    month = latest.astype("datetime64[M]")  # the month of the latest allowed instant, then back
    out = np.full(len(received), _NAN)
    for back in range(3):  # a day 29-31 may skip a month or two (February, 30-day months)
        candidate_month = month - back
        midnight = candidate_month.astype("datetime64[D]") + (day - 1)
        at = midnight.astype("datetime64[s]").astype(np.int64).astype(np.float64) + second_of_day
        fits = np.isnan(out) & (midnight.astype("datetime64[M]") == candidate_month) & (at <= received + AHEAD_S)
        out[fits] = at[fits]
    return out


def _explain(reason: int, v: dict[str, Any]) -> str:
    """The words for one refused row (only refused rows come here)."""
    if reason == _EMPTY_PDU:
        return "holds no LIP PDU after the protocol identifier 0x0A"
    if reason == _SHORT_TOO_SHORT:
        return f"is too short: a short location report needs {SHORT_BITS} bits, got {v['have']}"
    if reason == _RESERVED_PDU:
        return f"is not a location report: reserved LIP PDU type {v['pdu']}"
    if reason == _LONG_TOO_SHORT:
        return f"is too short: this long location report needs at least {v['need']} bits, got {v['have']}"
    if reason == _NOT_A_REPORT:
        return f"is not a location report: LIP PDU type extension {v['extension']} ({_EXTENSIONS[v['extension']]})"
    if reason == _RESERVED_TIME:
        return "has a reserved time type (3)"
    if reason == _NO_POSITION:
        return _shape_refusal(v["shape"])
    if reason == _BAD_TIME:
        parts = (("day", 1, 31), ("hour", 0, 23), ("minute", 0, 59), ("second", 0, 59))
        wrong = [f"{name} {v[name]} is not in {lo}-{hi}" for name, lo, hi in parts if not lo <= v[name] <= hi]
        return f"has an impossible time of position: {', '.join(wrong)}"
    return f"cannot be dated: received_at {TIMESTAMP.reason(v['received'])}"


def _shape_refusal(shape: int) -> str:
    if shape == 0:
        return "carries no position (location shape: no shape)"
    if shape == 9:
        return "gives a location arc, which is not supported: its point is the arc's centre, not the radio"
    if shape == 15:
        return "uses the location shape extension (15), which is not supported"
    return f"has a reserved location shape ({shape})"
