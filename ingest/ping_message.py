"""Validation of pings arriving as Kafka messages or HTTP bodies (SEMANTICS.md "Inputs").

Kafka delivers pings in polls of thousands, so the clean case must cost next to nothing per
ping: the message values are joined into one JSON array and validated by a single pydantic-core
call (no Python per item), then turned into columns with bulk operations. Each array element
is validated as "a ping, or else anything": a bad ping does not fail the call, it comes back
raw and only that one is explained, by validating it again alone. A message that is not one
JSON value breaks the array (or changes its length), and only then is every message parsed
alone to find it. Reasons are worded by ``ingest.rules`` and name the JSON field, e.g.
``lat: must be between -90 and 90, got 95``; ``Reject.field`` holds the field and
``Reject.reason`` the rest, ``str(reject)`` both.

The rules are ``ingest.rules``', here as pydantic constraints in the annotated types below,
shared by the ``Ping`` model (the HTTP and OpenAPI face) and the TypedDict the fast path
validates into (dicts are cheaper than model instances). Numbers must be JSON numbers:
``"51.5"`` and ``true`` are refused rather than guessed at. ``ts`` converts to epoch seconds
(microseconds, as ``datetime.timestamp``) as the CSV reader does, so every way in gives the
same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import methodcaller
from typing import Annotated, Any, Literal, NotRequired

import numpy as np
import pyarrow as pa
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    RootModel,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema, from_json
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, before Python 3.12

from geofence.pings import PingBatch
from ingest.rules import (
    ACCURACY,
    DEVICE_ID,
    FENCE_REF,
    HEADING,
    ISO_PATTERN,
    LAT,
    LON,
    SPEED,
    TEXT,
    TIMESTAMP,
    NumberRule,
    TextRule,
    field_reason,
    json_kind,
    ping_faults,
)

__all__ = [
    "BodyError",
    "ParsedPings",
    "Ping",
    "Reject",
    "Timestamp",
    "UnsupportedContentType",
    "body_kind",
    "parse_http_body",
    "parse_messages",
]

NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
    }
)


# -- the rules (ingest.rules, as pydantic-core constraints) -------------------------------------


class _Timestamp:
    """Core schema of ``ts``: an aware ISO 8601 datetime or finite epoch seconds, all in Rust.

    One error type for every failure keeps the union's per-branch noise out of error lists;
    ``TIMESTAMP.reason`` says precisely what is wrong when someone reads it.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.union_schema(
            [
                core_schema.chain_schema(
                    [
                        core_schema.str_schema(pattern=ISO_PATTERN),
                        core_schema.datetime_schema(tz_constraint="aware", ge=TIMESTAMP.lo_dt, lt=TIMESTAMP.hi_dt),
                    ]
                ),
                core_schema.float_schema(strict=True, allow_inf_nan=False, ge=TIMESTAMP.lo, lt=TIMESTAMP.hi),
            ],
            mode="left_to_right",
            custom_error_type="timestamp",
            custom_error_message="must be ISO 8601 with a UTC offset or epoch seconds",
        )


_TS_JSON_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "format": "date-time", "description": "ISO 8601 with a UTC offset (Z or +hh:mm)"},
            {
                "type": "number",
                "minimum": TIMESTAMP.lo,
                "exclusiveMaximum": TIMESTAMP.hi,
                "description": "epoch seconds",
            },
        ],
        "examples": ["2026-11-21T22:03:00.123Z", 1795298580.123],
    }
)


def _explain_ts(value: Any, handler: ValidatorFunctionWrapHandler) -> float:
    """For models: the core check, the rule's reason on failure, epoch seconds on success."""
    try:
        out = handler(value)
    except ValidationError:
        raise PydanticCustomError("timestamp", "{reason}", {"reason": TIMESTAMP.reason(value) or "invalid"}) from None
    return out if isinstance(out, float) else out.timestamp()


def _worded(rule: TextRule | NumberRule) -> WrapValidator:
    """For models: a refusal worded by the rule, as the fast path words its rejects."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("input_rule", "{reason}", {"reason": field_reason(rule, value)}) from None

    return WrapValidator(check)


# The fast path's field types: constraints only, checked in Rust (no Python call per value).
_DeviceId = Annotated[str, DEVICE_ID.field()]
_Lat = Annotated[float, LAT.field()]
_Lon = Annotated[float, LON.field()]
_Accuracy = Annotated[float, ACCURACY.field()]
_Text = Annotated[str, TEXT.field()]
_Speed = Annotated[float, SPEED.field()]
_Heading = Annotated[float, HEADING.field()]
_FenceId = Annotated[str, FENCE_REF.field()]

# The models' field types (the Ping model, the calibration bodies): the same, with the rules' words.
Timestamp = Annotated[
    float,
    _Timestamp,
    WrapValidator(_explain_ts),
    _TS_JSON_SCHEMA,
    Field(description="when the fix was taken; validated value: epoch seconds UTC"),
]
DeviceId = Annotated[_DeviceId, _worded(DEVICE_ID), Field(description="radio ISSI, handset id...")]
Lat = Annotated[_Lat, _worded(LAT), Field(description="WGS84 degrees")]
Lon = Annotated[_Lon, _worded(LON), Field(description="WGS84 degrees")]
Accuracy = Annotated[_Accuracy, _worded(ACCURACY), Field(description="horizontal accuracy radius, metres")]
Text = Annotated[_Text, _worded(TEXT)]
Speed = Annotated[_Speed, _worded(SPEED), Field(description="metres per second")]
Heading = Annotated[_Heading, _worded(HEADING), Field(description="degrees from north")]
FenceId = Annotated[
    _FenceId, _worded(FENCE_REF), Field(description="hot spot the officer reports patrolling; must exist")
]


class Ping(BaseModel):
    """One location report, as POSTed or produced to the pings topic. Unknown fields are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "device_id": "R00012",
                    "ts": "2026-11-21T22:03:00.123Z",
                    "lat": 51.5,
                    "lon": -0.12,
                    "accuracy_m": 8.5,
                    "callsign": "CX12",
                }
            ]
        },
    )

    device_id: DeviceId
    ts: Timestamp
    lat: Lat
    lon: Lon
    accuracy_m: Accuracy | None = None
    officer_id: Text | None = None
    callsign: Text | None = None
    status: Text | None = None
    source: Text | None = None
    speed_mps: Speed | None = None
    heading_deg: Heading | None = None
    fence_id: FenceId | None = None


class _PingRow(TypedDict):
    """The fast path's twin of Ping (same rules; ts left as datetime | float for bulk conversion)."""

    device_id: _DeviceId
    ts: Annotated[Any, _Timestamp]
    lat: _Lat
    lon: _Lon
    accuracy_m: NotRequired[_Accuracy | None]
    officer_id: NotRequired[_Text | None]
    callsign: NotRequired[_Text | None]
    status: NotRequired[_Text | None]
    source: NotRequired[_Text | None]
    speed_mps: NotRequired[_Speed | None]
    heading_deg: NotRequired[_Heading | None]
    fence_id: NotRequired[_FenceId | None]


class _Unparsed(RootModel[Any]):
    """An element that is not a valid ping, kept raw so it can be explained."""


_Element = Annotated[_PingRow | _Unparsed, Field(union_mode="left_to_right")]
_ELEMENT = TypeAdapter(_Element)
_ELEMENTS = TypeAdapter(list[_Element])
_POP_DEVICE = methodcaller("pop", "device_id")
_POP_TS = methodcaller("pop", "ts")
_POP_LAT = methodcaller("pop", "lat")
_POP_LON = methodcaller("pop", "lon")
_POP_ACCURACY = methodcaller("pop", "accuracy_m", None)


# -- results -----------------------------------------------------------------------------------


class BodyError(ValueError):
    """The HTTP body as a whole is unusable (malformed JSON, wrong shape): nothing was accepted."""


class UnsupportedContentType(BodyError):
    """The Content-Type is neither JSON nor NDJSON (HTTP 415 material)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """One refused ping: its position, the first bad field (None: the whole item), and why.

    index: position in the Kafka poll or JSON array; line number - 1 in NDJSON. reason does not
    repeat the field; further bad fields follow as ``; other: reason``.
    """

    index: int
    field: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


@dataclass(frozen=True, slots=True)
class ParsedPings:
    """The valid pings in arrival order, and a Reject for every other item, in index order.

    unexplained: refused items past the caller's ``explain_max``, counted but not explained
    (an HTTP answer lists the first ones; a body of a million bad items must not cost a
    million explanations).
    """

    batch: PingBatch
    rejects: list[Reject] = field(default_factory=list)
    unexplained: int = 0

    @property
    def rejected(self) -> int:
        return len(self.rejects) + self.unexplained


# -- Kafka -------------------------------------------------------------------------------------


def parse_messages(values: Sequence[bytes | None]) -> ParsedPings:
    """Validate Kafka message values, one JSON object each; Reject.index is the position in values."""
    rejects: list[Reject] = []
    positions: list[int] | None = None  # position of each message in values; None: the identity
    messages: Sequence[bytes | None] = values
    if None in values or b"" in values:  # tombstones: both scans run in C
        positions = [i for i, v in enumerate(values) if v]
        rejects = [Reject(i, None, "empty message") for i, v in enumerate(values) if not v]
        messages = [values[i] for i in positions]
    rows, more, _ = _parse_values(messages, positions, None)  # type: ignore[arg-type]  # no None left
    if more:
        rejects = sorted(rejects + more, key=lambda r: r.index) if rejects else more
    return ParsedPings(_to_batch(rows), rejects)


def _parse_values(
    messages: Sequence[bytes], positions: list[int] | None, explain_max: int | None, *, sifted: bool = False
) -> tuple[list[dict[str, Any]], list[Reject], int]:
    """Validate JSON values, one ping each; positions maps message k to its reported index.

    Returns the valid rows, the Rejects (at most explain_max of them, None: all) and how many
    more were refused. sifted: every message is known to parse alone (the malformed ones were
    taken out).
    """
    if not messages:
        return [], [], 0
    try:
        elements = _ELEMENTS.validate_json(b"[" + b",".join(messages) + b"]")
        aligned = len(elements) == len(messages)
    except ValidationError:
        aligned = False
    if not aligned and sifted:  # cannot happen (one parser throughout); if it did, go one by one
        elements = [_ELEMENT.validate_json(m) for m in messages]
    elif not aligned:  # some message is not exactly one JSON value: find it with the same parser
        rejects: list[Reject] = []
        good: list[int] = []
        for k, message in enumerate(messages):
            try:
                from_json(message)
            except ValueError as e:
                rejects.append(Reject(_at(positions, k), None, f"malformed JSON: {e}"))
            else:
                good.append(k)
        budget = None if explain_max is None else max(explain_max - len(rejects), 0)
        rows, more, skipped = _parse_values(
            [messages[k] for k in good], [_at(positions, k) for k in good], budget, sifted=True
        )
        merged = sorted(rejects + more, key=lambda r: r.index)
        if explain_max is not None and len(merged) > explain_max:
            skipped += len(merged) - explain_max
            merged = merged[:explain_max]
        return rows, merged, skipped

    def explain(k: int) -> tuple[str | None, str]:
        return _explain(from_json(messages[k]))

    return _collect(elements, positions, explain, explain_max)


# -- HTTP --------------------------------------------------------------------------------------

#: Items (array elements, NDJSON lines) validated per call. pydantic-core holds the GIL for a
#: whole call, 2,000 refused items take about 1-3 ms, and the GIL is handed over after each: so
#: a huge body validated in a worker thread (as POST /v1/pings does) leaves the event loop and
#: the store's threads a turn every few milliseconds.
SLICE = 2_000


def parse_http_body(body: bytes, content_type: str, *, explain_max: int | None = None) -> ParsedPings:
    """Validate a POSTed body: a JSON array of pings, one ping object, or NDJSON (one per line).

    Raises UnsupportedContentType for other media types and BodyError when the body as a whole
    is unusable (empty, malformed JSON with its position, not an array or object). Bad items
    become Rejects, the first explain_max of them (None: all; the rest are only counted); in
    NDJSON a line that is not valid JSON is one of those, and blank lines are skipped but still
    counted. Items are validated SLICE at a time (see there).
    """
    kind = body_kind(content_type)
    if not body.strip():
        raise BodyError("empty body: expected a JSON array of pings, one ping object, or NDJSON")
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    unexplained = 0

    def budget() -> int | None:
        return None if explain_max is None else max(explain_max - len(rejects), 0)

    if kind == "ndjson":
        lines = body.split(b"\n")
        positions = [i for i, line in enumerate(lines) if line.strip()]
        for at in range(0, len(positions), SLICE):
            part = positions[at : at + SLICE]
            more_rows, more, skipped = _parse_values([lines[i] for i in part], part, budget())
            rows += more_rows
            rejects += more
            unexplained += skipped
            time.sleep(0)  # hand the GIL over between slices (see SLICE)
        return ParsedPings(_to_batch(rows), rejects, unexplained)
    start = body.lstrip()[:1]
    try:
        value = from_json(body)
    except ValueError as e:
        raise BodyError(f"malformed JSON: {e}") from None
    if start != b"[" and start != b"{":
        raise BodyError(f"body must be a JSON array of pings or one ping object, not {json_kind(value)}")
    items = value if start == b"[" else [value]
    for at in range(0, len(items), SLICE):
        elements = _ELEMENTS.validate_python(items[at : at + SLICE])
        more_rows, more, skipped = _collect(elements, None, partial(_explain_element, elements), budget(), offset=at)
        rows += more_rows
        rejects += more
        unexplained += skipped
        time.sleep(0)  # hand the GIL over between slices (see SLICE)
    return ParsedPings(_to_batch(rows), rejects, unexplained)


def body_kind(content_type: str) -> Literal["json", "ndjson"]:
    """JSON or NDJSON by the media type (no type: JSON); UnsupportedContentType for any other."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        return "ndjson"
    if media in ("", "application/json", "text/json") or media.endswith("+json"):
        return "json"
    raise UnsupportedContentType(
        f"unsupported content type {media!r}: send application/json (an array or one object) or application/x-ndjson"
    )


# -- shared ------------------------------------------------------------------------------------


def _at(positions: list[int] | None, k: int) -> int:
    return k if positions is None else positions[k]


def _collect(
    elements: list[Any],
    positions: list[int] | None,
    explain: Callable[[int], tuple[str | None, str]],
    explain_max: int | None,
    *,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], list[Reject], int]:
    """Split validated elements into rows, Rejects (explain(k) gives field and reason; at most
    explain_max, None: all) and the count of refused elements past explain_max. offset is added
    to the index of an element without positions."""
    if _Unparsed not in set(map(type, elements)):
        return elements, [], 0
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    skipped = 0
    for k, element in enumerate(elements):
        if type(element) is not _Unparsed:
            rows.append(element)
        elif explain_max is not None and len(rejects) >= explain_max:
            skipped += 1
        else:
            bad_field, reason = explain(k)
            rejects.append(Reject(_at(positions, k) + offset, bad_field, reason))
    return rows, rejects, skipped


def _explain_element(elements: list[Any], k: int) -> tuple[str | None, str]:
    return _explain(elements[k].root)


def _explain(raw: Any) -> tuple[str | None, str]:
    """A refused element's first bad field and the reasons (further fields as ``; field: reason``)."""
    faults = ping_faults(raw)
    if not faults:  # unreachable while the constraints and ingest.rules agree; never silent
        return None, "invalid ping"
    first = faults[0][0]
    return first, "; ".join([faults[0][1]] + [f"{name}: {reason}" for name, reason in faults[1:]])


def _empty_batch() -> PingBatch:
    return PingBatch.from_columns([], [], [], [], extras=[])


def _to_batch(rows: list[dict[str, Any]]) -> PingBatch:
    """Columns from validated rows (consumed) with C-level loops over the list, no Python per row.

    Each core field is popped off its row by map(methodcaller), so what is left of a row is
    exactly its carried fields: the extras mapping, with no second pass to pick them out.
    """
    n = len(rows)
    if n == 0:
        return _empty_batch()
    device_id = np.empty(n, dtype=object)
    device_id[:] = list(map(_POP_DEVICE, rows))
    stamps = list(map(_POP_TS, rows))
    kinds = set(map(type, stamps))
    ts: np.ndarray[Any, np.dtype[np.float64]]
    if float not in kinds:  # all datetimes: arrow reads their offsets in C++, exact to the microsecond
        micros = pa.array(stamps, type=pa.timestamp("us", tz="UTC")).to_numpy(zero_copy_only=False)
        ts = micros.view(np.int64) / 1e6  # µs / 1e6, correctly rounded: what datetime.timestamp() gives
    elif len(kinds) == 1:
        ts = np.array(stamps, dtype=np.float64)
    else:
        ts = np.array([t if type(t) is float else t.timestamp() for t in stamps], dtype=np.float64)
    lat = np.fromiter(map(_POP_LAT, rows), np.float64, n)
    lon = np.fromiter(map(_POP_LON, rows), np.float64, n)
    accuracy = np.array(list(map(_POP_ACCURACY, rows)), dtype=np.float64)  # None (unknown) -> NaN
    extras = np.empty(n, dtype=object)
    extras[:] = [row if row and None not in row.values() else _present(row) for row in rows]
    return PingBatch(device_id=device_id, ts=ts, lat=lat, lon=lon, accuracy_m=accuracy, extras=extras)


def _present(carried: dict[str, Any]) -> dict[str, Any] | None:
    """The carried fields that have a value (JSON null means absent), or None if there are none."""
    return {k: v for k, v in carried.items() if v is not None} or None
