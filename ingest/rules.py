"""The input rules: what a valid field is, and how a refusal is worded, in one place.

Every way data comes in checks with these rules: Kafka and HTTP pings, the ping CSV of
``hotspots replay``, incident files and records, plan documents, GeoJSON fences, API query
parameters and CLI time arguments. So a value one path refuses, every path refuses, with the
same words: ``<field>: <reason>``, the value shown by ``show``. The fast paths (pydantic-core over
a Kafka poll, arrow over a CSV block) hold the same bounds as constraints built from the rule
objects below, and call a rule's ``reason`` only to word the refusal of the few bad values.

Values arrive typed (JSON: a number is a number, a string a string) or as text (CSV cells,
query parameters, CLI arguments: numbers and timestamps are parsed, surrounding blanks
trimmed). Text fields take strings only, and never a control character (Unicode Cc, NUL
included): PostgreSQL text cannot hold NUL, spreadsheets refuse the others, and nobody's id
or callsign has one.

Timestamps: ISO 8601 with a UTC offset, ``YYYY-MM-DD``, ``T`` or a space, ``HH:MM[:SS[.f]]``
(1-9 fraction digits, truncated to microseconds), then ``Z``, ``±HH:MM`` or ``±HHMM`` (``t`` and
``z`` as RFC 3339 allows; not ``±HH``); or epoch seconds. Accepted from 1970-01-01T00:00:00Z
(epoch 0) up to, not including, 9999-01-01T00:00:00Z: no radio fix predates 1970, and the year
kept clear of datetime's end leaves every later local-time conversion (up to UTC+14), day and
week step inside datetime's range (year-1 and year-9999 stamps used to make reports fail with
OverflowError). Epoch milliseconds, 1000 times too large, fall outside.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

__all__ = [
    "ACCURACY",
    "BUFFER_MAX_M",
    "DEVICE_ID",
    "DOP",
    "FENCE_REF",
    "FINITE",
    "HEADING",
    "ID",
    "ISO_PATTERN",
    "LAT",
    "LON",
    "MESSAGE",
    "NAME",
    "PING_RULES",
    "REQUIRED",
    "SPEED",
    "TEXT",
    "TIMESTAMP",
    "InputError",
    "NumberRule",
    "TextRule",
    "TimestampRule",
    "field_reason",
    "json_kind",
    "not_utf8",
    "parse_float",
    "ping_faults",
    "show",
    "unknown_fence",
    "unknown_fence_rows",
]

REQUIRED = "is required"
#: Shown values are cut to this many characters (an error line stays one readable line).
SHOW_MAX = 40
#: Unicode control characters (category Cc): C0, DEL and C1. One class for every engine.
CONTROL_CLASS = r"[\x00-\x1f\x7f-\x9f]"
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
_CONTROL = re.compile(CONTROL_CLASS)
_DIGITS = "[0-9]"  # not \d: that matches every script's digits, which the date parsers refuse
ISO_PATTERN = (
    rf"^{_DIGITS}{{4}}-{_DIGITS}{{2}}-{_DIGITS}{{2}}[Tt ]{_DIGITS}{{2}}:{_DIGITS}{{2}}"
    rf"(?::{_DIGITS}{{2}}(?:\.{_DIGITS}{{1,9}})?)?(?:[Zz]|[+-]{_DIGITS}{{2}}:?{_DIGITS}{{2}})$"
)
_ISO = re.compile(ISO_PATTERN)
_NAIVE = re.compile(ISO_PATTERN.removesuffix("(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})$") + "$")
#: Plain decimal numbers: what arrow's and Python's float parsers read identically.
NUMBER_PATTERN = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_NUMBER_WORDS = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_JSON_KINDS: dict[type, str] = {dict: "an object", list: "an array"}
_JSON_NAMES: dict[type, str] = {**_JSON_KINDS, str: "a string", bool: "a boolean", type(None): "null"}


class InputError(ValueError):
    """A refused value: the field it was given for and why (``str`` gives ``field: reason``)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def show(value: Any) -> str:
    """A value as an error shows it: numbers plainly, strings quoted and escaped, cut to 40 characters."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return repr(value if len(value) <= SHOW_MAX else value[: SHOW_MAX - 3] + "...")
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _number_text(value: float) -> str:
    try:
        text = repr(float(value))
    except OverflowError:  # an integer beyond any float
        return "a number too large"
    return text.removesuffix(".0")


def json_kind(value: Any) -> str:
    """What kind of JSON value this is, in words ("an object", "a number"...)."""
    return _JSON_NAMES.get(type(value), "a number")


def not_utf8(raw: bytes) -> str:
    """The reason for text that is not UTF-8 (a file's bytes; JSON cannot carry such a string)."""
    return f"is not valid UTF-8: {show(raw)}"


def parse_float(text: str) -> float | None:
    """A number written as text (blanks trimmed), or None; Python's '1_000' leniency refused."""
    text = text.strip()
    if re.fullmatch(NUMBER_PATTERN, text) is None and _NUMBER_WORDS.fullmatch(text) is None:
        return None
    return float(text)


@dataclass(frozen=True, slots=True)
class TextRule:
    """A string of at most ``limit`` characters without control characters; required: not empty."""

    limit: int
    required: bool = False

    def reason(self, value: Any) -> str | None:
        """Why value breaks the rule, or None (an optional field may be absent: None)."""
        if value is None or value == "":
            return REQUIRED if self.required else None
        if not isinstance(value, str):
            return f"must be a string, got {show(value)}"
        if len(value) > self.limit:
            return f"must be at most {self.limit} characters, got {len(value)}"
        bad = _CONTROL.search(value)
        if bad is not None:
            return f"holds control character U+{ord(bad[0]):04X}: {show(value)}"
        return None

    def check(self, field: str, value: Any) -> str | None:
        """The value, or None when absent; InputError naming field when it breaks the rule."""
        reason = self.reason(value)
        if reason is not None:
            raise InputError(field, reason)
        return value or None

    def field(self, **extra: Any) -> Any:
        """The rule as pydantic metadata for ``Annotated[str, ...]`` (extra: description...)."""
        return Field(min_length=1 if self.required else 0, max_length=self.limit, pattern=NO_CONTROL_PATTERN, **extra)


@dataclass(frozen=True, slots=True)
class NumberRule:
    """A finite number in [lo, hi] (hi excluded when hi_open); typed input must be a number."""

    lo: float = -math.inf
    hi: float = math.inf
    hi_open: bool = False
    required: bool = False

    @property
    def words(self) -> str:
        if self.lo == -math.inf and self.hi == math.inf:
            return "must be finite"
        if self.hi == math.inf:
            return f"must be >= {_number_text(self.lo)}"
        if self.hi_open:
            return f"must be >= {_number_text(self.lo)} and < {_number_text(self.hi)}"
        return f"must be between {_number_text(self.lo)} and {_number_text(self.hi)}"

    def parse(self, value: Any, *, text: bool = False) -> float | str | None:
        """The number, or the reason it is refused; None when absent (empty text counts as absent)."""
        if value is None or (text and isinstance(value, str) and not value.strip()):
            return REQUIRED if self.required else None
        if isinstance(value, str) and text:
            number = parse_float(value)
            if number is None:
                return f"must be a number, got {show(value)}"
            shown = _number_text(number)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            if isinstance(value, str) and parse_float(value) is not None:
                return f"must be a JSON number, not a string: {show(value)}"
            return f"must be a number, got {show(value)}"
        else:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf if value > 0 else -math.inf  # an integer beyond any float
            shown = show(value)
        if not math.isfinite(number):
            return f"must be finite, got {shown}"
        if number < self.lo or number > self.hi or (self.hi_open and number == self.hi):
            return f"{self.words}, got {shown}"
        return number

    def reason(self, value: Any, *, text: bool = False) -> str | None:
        out = self.parse(value, text=text)
        return out if isinstance(out, str) else None

    def check(self, field: str, value: Any, *, text: bool = False) -> float | None:
        out = self.parse(value, text=text)
        if isinstance(out, str):
            raise InputError(field, out)
        return out

    def field(self, **extra: Any) -> Any:
        """The rule as pydantic metadata for ``Annotated[float, ...]``: JSON numbers only."""
        lo = None if self.lo == -math.inf else self.lo
        hi = None if self.hi == math.inf else self.hi
        if self.hi_open:
            return Field(strict=True, ge=lo, lt=hi, allow_inf_nan=False, **extra)
        return Field(strict=True, ge=lo, le=hi, allow_inf_nan=False, **extra)


@dataclass(frozen=True, slots=True)
class TimestampRule:
    """An instant: ISO 8601 with a UTC offset or epoch seconds, in [lo, hi) (module docstring)."""

    lo: float
    hi: float

    @property
    def lo_dt(self) -> datetime:
        return datetime.fromtimestamp(self.lo, UTC)

    @property
    def hi_dt(self) -> datetime:
        return datetime.fromtimestamp(self.hi, UTC)

    @property
    def words(self) -> str:
        first, last = self.lo_dt.year, self.hi_dt.year - 1
        return f"must be in the years {first}-{last} UTC (epoch in seconds, not milliseconds)"

    def parse(self, value: Any, *, text: bool = False) -> float | str | None:
        """Epoch seconds (microsecond precision), the reason it is refused, or None when absent."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            stripped = value.strip() if text else value
            if _ISO.fullmatch(stripped) is None:
                number = parse_float(stripped)
                if text and number is not None:
                    return self._bounded(number, _number_text(number))
                if number is not None:
                    return f"epoch seconds must be a JSON number, not a string: {show(value)}"
                if _NAIVE.fullmatch(stripped) is not None:
                    return f"has no UTC offset: {show(value)}"
                return f"must be ISO 8601 with a UTC offset or epoch seconds, got {show(value)}"
            try:
                stamp = datetime.fromisoformat(stripped.upper())  # RFC 3339 allows t and z
            except ValueError:
                return f"is not a valid date and time: {show(value)}"
            try:  # compared as datetimes, as pydantic compares them (floats round the last microsecond)
                inside = self.lo_dt <= stamp < self.hi_dt
            except OverflowError:  # year 1 with an offset east of UTC
                inside = False
            return stamp.timestamp() if inside else f"{self.words}, got {show(value)}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be ISO 8601 with a UTC offset or epoch seconds, got {show(value)}"
        try:
            number = float(value)
        except OverflowError:
            number = math.inf if value > 0 else -math.inf  # an integer beyond any float
        return self._bounded(number, show(value))

    def _bounded(self, seconds: float, shown: str) -> float | str:
        if not math.isfinite(seconds):
            return f"must be finite, got {shown}"
        if not self.lo <= seconds < self.hi:
            return f"{self.words}, got {shown}"
        return seconds

    def reason(self, value: Any, *, text: bool = False) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return REQUIRED
        out = self.parse(value, text=text)
        return out if isinstance(out, str) else None

    def check(self, field: str, value: Any, *, text: bool = False) -> float:
        """Epoch seconds; InputError naming field when absent or refused."""
        out = self.parse(value, text=text)
        if out is None:
            raise InputError(field, REQUIRED)
        if isinstance(out, str):
            raise InputError(field, out)
        return out


#: 1970-01-01T00:00:00Z to 9999-01-01T00:00:00Z, excluded (module docstring).
TIMESTAMP = TimestampRule(0.0, 253370764800.0)
LAT = NumberRule(-90.0, 90.0, required=True)
LON = NumberRule(-180.0, 180.0, required=True)
ACCURACY = NumberRule(0.0)
SPEED = NumberRule()
HEADING = NumberRule(0.0, 360.0, hi_open=True)
DEVICE_ID = TextRule(64, required=True)
#: A dilution of precision (HDOP): accuracy_m is HDOP x UERE_M (ingest/fixes.py).
DOP = NumberRule(0.0)
#: Values read only so that junk is refused, not kept (a handset's altitude, battery level).
FINITE = NumberRule()
#: officer_id, callsign, status and source of a ping.
TEXT = TextRule(64)
#: Ids that are keys in the store and in URLs: fences, plans, incidents.
ID = TextRule(128, required=True)
#: A ping's fence_id: the id of a fence, optional.
FENCE_REF = TextRule(ID.limit)
#: Names and labels shown to people: fence names, incident categories.
NAME = TextRule(200)
#: A fence's largest buffer_m, metres, by default (setting max_buffer_m): past a couple of
#: kilometres a hot spot is a district, and its buffered area took seconds to build.
BUFFER_MAX_M = 2000.0
#: What people write to each other: officers' feedback and supervisors' replies (one line, as typed on a phone).
MESSAGE = TextRule(1000, required=True)

#: Every ping field and its rule, in the order reasons are given (SEMANTICS.md "Inputs").
PING_RULES: dict[str, TextRule | NumberRule | TimestampRule] = {
    "device_id": DEVICE_ID,
    "ts": TIMESTAMP,
    "lat": LAT,
    "lon": LON,
    "accuracy_m": ACCURACY,
    "officer_id": TEXT,
    "callsign": TEXT,
    "status": TEXT,
    "source": TEXT,
    "speed_mps": SPEED,
    "heading_deg": HEADING,
    "fence_id": FENCE_REF,
}


def field_reason(rule: TextRule | NumberRule | TimestampRule, value: Any, *, text: bool = False) -> str | None:
    """Why value breaks rule (text: read from text, as CSV cells and query parameters are)."""
    if isinstance(rule, TextRule):
        return rule.reason(value)
    return rule.reason(value, text=text)


def ping_faults(row: Any, *, text: bool = False) -> list[tuple[str | None, str]]:
    """Every (field, reason) wrong with one ping, in PING_RULES order; a non-object is one fault."""
    if not isinstance(row, dict):
        return [(None, f"a ping must be a JSON object, not {json_kind(row)}")]
    faults: list[tuple[str | None, str]] = []
    for name, rule in PING_RULES.items():
        reason = field_reason(rule, row.get(name), text=text)
        if reason is not None:
            faults.append((name, reason))
    return faults


def unknown_fence_rows(extras: Sequence[Mapping[str, Any] | None], known: Container[str]) -> list[int]:
    """Rows naming a fence_id that is not a known fence: refused live (DLQ) and in replay alike."""
    return [
        i
        for i, e in enumerate(extras)
        if e is not None and e.get("fence_id") is not None and e["fence_id"] not in known
    ]


def unknown_fence(fence_id: str) -> str:
    """The reason a ping naming fence_id is refused, as the DLQ and replay both say it."""
    return f"fence_id: unknown fence {show(fence_id)}"
