"""Validation of pings arriving as Kafka messages or HTTP bodies (SEMANTICS.md "Inputs").

Kafka delivers pings in polls of thousands, so the clean case must cost next to nothing per
ping: the message values are joined into one JSON array and validated by a single pydantic-core
call (no Python per item), then turned into columns with bulk operations. Each array element
is validated as "a ping, or else anything": a bad ping does not fail the call, it comes back
raw and only that one is explained, by validating it again alone. A message that is not one
JSON value breaks the array (or changes its length), and only then is every message parsed
alone to find it. Reasons name the JSON field, e.g. ``lat: Input should be less than or equal
to 90``; ``Reject.field`` holds the field and ``Reject.reason`` the rest, ``str(reject)`` both.

The rules live once, in the annotated types below, shared by the ``Ping`` model (the HTTP and
OpenAPI face) and the TypedDict the fast path validates into (dicts are cheaper than model
instances). Numbers must be JSON numbers: ``"51.5"`` and ``true`` are refused rather than
guessed at. ``ts`` is an ISO 8601 string with a UTC offset or epoch seconds; its range, years
1-9999, and its conversion to epoch seconds (microseconds, as ``datetime.timestamp``) match the
CSV reader, so every way in gives the same numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    Strict,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema, from_json
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, before Python 3.12

from geofence.pings import PingBatch

__all__ = [
    "BodyError",
    "ParsedPings",
    "Ping",
    "Reject",
    "UnsupportedContentType",
    "parse_http_body",
    "parse_messages",
]

MAX_DEVICE_ID = 64
MAX_TEXT = 64  # officer_id, callsign, status, source
MAX_FENCE_ID = 256  # fence ids come from our own fence files, which set no limit: generous

#: Epoch-second range accepted: datetime's years 1-9999, as the CSV reader. Wider is surely a
#: unit mistake (epoch milliseconds are 1000 times too large).
TS_MIN, TS_MAX = -62135596800.0, 253402300800.0
_DT_MIN = datetime(1, 1, 1, tzinfo=UTC)
_DT_MAX = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_TS_RANGE = "out of range (epoch must be in seconds, years 1-9999)"
_TS_EXPECTED = "must be an ISO 8601 string with a UTC offset or epoch seconds"
# pydantic's datetime parser takes an all-digit string as unix time (and a long one as
# milliseconds): insisting on a date-like start keeps epoch strings out of the string branch.
_ISO_START = r"^\d{4}-"
_NUMERIC = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
_PARSER_PREFIX = re.compile(r"^Input should be a valid datetime(?: or date)?, ")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}

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


# -- the rules ---------------------------------------------------------------------------------


class _Timestamp:
    """Core schema of ``ts``: an aware ISO 8601 datetime or finite epoch seconds, all in Rust.

    One error type for every failure keeps the union's per-branch noise out of error lists;
    ``_ts_reason`` says precisely what is wrong when someone reads it.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.union_schema(
            [
                core_schema.chain_schema(
                    [
                        core_schema.str_schema(pattern=_ISO_START),
                        core_schema.datetime_schema(tz_constraint="aware", ge=_DT_MIN, le=_DT_MAX),
                    ]
                ),
                core_schema.float_schema(strict=True, allow_inf_nan=False, ge=TS_MIN, lt=TS_MAX),
            ],
            mode="left_to_right",
            custom_error_type="timestamp",
            custom_error_message=_TS_EXPECTED,
        )


_TS_JSON_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "format": "date-time", "description": "ISO 8601 with a UTC offset (Z or +hh:mm)"},
            {"type": "number", "minimum": TS_MIN, "exclusiveMaximum": TS_MAX, "description": "epoch seconds"},
        ],
        "examples": ["2026-11-21T22:03:00.123Z", 1795298580.123],
    }
)

_NAIVE_OK = TypeAdapter(datetime)  # for explaining a refused string only


def _ts_reason(value: Any) -> str:
    """Why a ts value was refused, in words (the error path only)."""
    if isinstance(value, bool):
        return f"{_TS_EXPECTED}, not a boolean"
    if isinstance(value, int | float):
        return _TS_RANGE if math.isfinite(value) else "epoch seconds must be finite"
    if isinstance(value, str):
        if _NUMERIC.fullmatch(value):
            return "epoch seconds must be a JSON number, not a string"
        try:
            parsed = _NAIVE_OK.validate_python(value)
        except ValidationError as e:
            detail = _PARSER_PREFIX.sub("", e.errors(include_url=False)[0]["msg"])
            return f"not an ISO 8601 timestamp ({detail}): {_show(value)}"
        if parsed.tzinfo is None:
            return "timestamp has no UTC offset"
        return "out of range (years 1-9999)"
    return f"{_TS_EXPECTED}, not {_JSON_TYPES.get(type(value), type(value).__name__)}"


def _explain_ts(value: Any, handler: ValidatorFunctionWrapHandler) -> float:
    """For the Ping model: the core check, a precise reason on failure, epoch seconds on success."""
    try:
        out = handler(value)
    except ValidationError:
        raise PydanticCustomError("timestamp", "{reason}", {"reason": _ts_reason(value)}) from None
    return out if isinstance(out, float) else out.timestamp()


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


DeviceId = Annotated[str, Field(min_length=1, max_length=MAX_DEVICE_ID, description="radio ISSI, handset id...")]
Lat = Annotated[float, Strict(), Field(ge=-90, le=90, allow_inf_nan=False, description="WGS84 degrees")]
Lon = Annotated[float, Strict(), Field(ge=-180, le=180, allow_inf_nan=False, description="WGS84 degrees")]
Accuracy = Annotated[
    float, Strict(), Field(ge=0, allow_inf_nan=False, description="horizontal accuracy radius, metres")
]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Speed = Annotated[float, Strict(), Field(allow_inf_nan=False, description="metres per second")]
Heading = Annotated[float, Strict(), Field(ge=0, lt=360, allow_inf_nan=False, description="degrees from north")]
FenceId = Annotated[
    str, Field(max_length=MAX_FENCE_ID, description="hot spot the officer reports patrolling; must exist")
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
    ts: Annotated[float, _Timestamp, WrapValidator(_explain_ts), _TS_JSON_SCHEMA] = Field(
        description="when the fix was taken; validated value: epoch seconds UTC"
    )
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

    device_id: DeviceId
    ts: Annotated[Any, _Timestamp]
    lat: Lat
    lon: Lon
    accuracy_m: NotRequired[Accuracy | None]
    officer_id: NotRequired[Text | None]
    callsign: NotRequired[Text | None]
    status: NotRequired[Text | None]
    source: NotRequired[Text | None]
    speed_mps: NotRequired[Speed | None]
    heading_deg: NotRequired[Heading | None]
    fence_id: NotRequired[FenceId | None]


class _Unparsed(RootModel[Any]):
    """An element that is not a valid ping, kept raw so it can be explained."""


_Element = Annotated[_PingRow | _Unparsed, Field(union_mode="left_to_right")]
_ROW = TypeAdapter(_PingRow)
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
    """The valid pings in arrival order, and a Reject for every other item, in index order."""

    batch: PingBatch
    rejects: list[Reject] = field(default_factory=list)


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
    batch, more = _parse_values(messages, positions)  # type: ignore[arg-type]  # no None left
    if more:
        rejects = sorted(rejects + more, key=lambda r: r.index) if rejects else more
    return ParsedPings(batch, rejects)


def _parse_values(
    messages: Sequence[bytes], positions: list[int] | None, *, sifted: bool = False
) -> tuple[PingBatch, list[Reject]]:
    """Validate JSON values, one ping each; positions maps message k to its reported index.

    sifted: every message is known to parse alone (the malformed ones were taken out).
    """
    if not messages:
        return _empty_batch(), []
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
        batch, more = _parse_values([messages[k] for k in good], [_at(positions, k) for k in good], sifted=True)
        return batch, sorted(rejects + more, key=lambda r: r.index)

    def explain(k: int) -> tuple[str | None, str]:
        return _explain(lambda: _ROW.validate_json(messages[k]))

    return _collect(elements, positions, explain)


# -- HTTP --------------------------------------------------------------------------------------


def parse_http_body(body: bytes, content_type: str) -> ParsedPings:
    """Validate a POSTed body: a JSON array of pings, one ping object, or NDJSON (one per line).

    Raises UnsupportedContentType for other media types and BodyError when the body as a whole
    is unusable (empty, malformed JSON with its position, not an array or object). Bad items
    become Rejects; in NDJSON a line that is not valid JSON is one of those, and blank lines
    are skipped but still counted.
    """
    kind = _body_kind(content_type)
    if not body.strip():
        raise BodyError("empty body: expected a JSON array of pings, one ping object, or NDJSON")
    if kind == "ndjson":
        lines = body.split(b"\n")
        positions = [i for i, line in enumerate(lines) if line.strip()]
        batch, rejects = _parse_values([lines[i] for i in positions], positions)
        return ParsedPings(batch, rejects)
    start = body.lstrip()[:1]
    if start not in (b"[", b"{"):
        try:
            value = from_json(body)
        except ValueError as e:
            raise BodyError(f"malformed JSON: {e}") from None
        kind_of = _JSON_TYPES.get(type(value), "a number")
        raise BodyError(f"body must be a JSON array of pings or one ping object, not {kind_of}")
    try:
        elements = _ELEMENTS.validate_json(body) if start == b"[" else [_ELEMENT.validate_json(body)]
    except ValidationError as e:
        raise BodyError(_malformed(e)) from None

    def explain(k: int) -> tuple[str | None, str]:
        raw = elements[k].root  # type: ignore[union-attr]  # only _Unparsed elements are explained
        return _explain(lambda: _ROW.validate_python(raw))

    batch, rejects = _collect(elements, None, explain)
    return ParsedPings(batch, rejects)


def _body_kind(content_type: str) -> Literal["json", "ndjson"]:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        return "ndjson"
    if media in ("", "application/json", "text/json") or media.endswith("+json"):
        return "json"
    raise UnsupportedContentType(
        f"unsupported content type {media!r}: send application/json (an array or one object) or application/x-ndjson"
    )


def _malformed(e: ValidationError) -> str:
    error = e.errors(include_url=False)[0]
    if error["type"] == "json_invalid":
        return f"malformed JSON: {error.get('ctx', {}).get('error', error['msg'])}"
    return f"body is not a list of pings: {error['msg']}"


# -- shared ------------------------------------------------------------------------------------


def _at(positions: list[int] | None, k: int) -> int:
    return k if positions is None else positions[k]


def _collect(
    elements: list[Any], positions: list[int] | None, explain: Callable[[int], tuple[str | None, str]]
) -> tuple[PingBatch, list[Reject]]:
    """Split validated elements into the batch and Rejects (explain(k) gives field and reason)."""
    if _Unparsed not in set(map(type, elements)):
        return _to_batch(elements), []
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    for k, element in enumerate(elements):
        if type(element) is _Unparsed:
            bad_field, reason = explain(k)
            rejects.append(Reject(_at(positions, k), bad_field, reason))
        else:
            rows.append(element)
    return _to_batch(rows), rejects


def _explain(validate: Callable[[], object]) -> tuple[str | None, str]:
    """Run a validation expected to fail and phrase its errors: (first field, reason)."""
    try:
        validate()
    except ValidationError as e:
        return _phrase(e.errors(include_url=False))
    return None, "invalid ping"  # unreachable while JSON and Python modes agree; never silent


def _phrase(errors: list[Any]) -> tuple[str | None, str]:
    parts: list[tuple[str | None, str]] = []
    for error in errors:
        loc = error["loc"]
        if not loc:
            kind = _JSON_TYPES.get(type(error["input"]), "a number")
            return None, f"a ping must be a JSON object, not {kind}"
        name = str(loc[0])
        message = _ts_reason(error["input"]) if error["type"] == "timestamp" else error["msg"]
        parts.append((name, message))
    first = parts[0][0]
    return first, "; ".join([parts[0][1]] + [f"{name}: {message}" for name, message in parts[1:]])


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
