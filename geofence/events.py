"""The output record: enter/exit/signal events with deterministic ids."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np
import orjson

from geofence.pings import FloatArray


class EventType(StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    SIGNAL_LOST = "signal_lost"
    SIGNAL_RESTORED = "signal_restored"


class ExitReason(StrEnum):
    LEFT = "left"
    SIGNAL_LOST = "signal_lost"
    FENCE_REMOVED = "fence_removed"


#: Enum values by member: a dict lookup costs a fraction of the enum's `.value` property.
_VALUE: dict[StrEnum, str] = {m: m.value for m in (*EventType, *ExitReason)}


def format_ts(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with a Z, keeping sub-second precision when present."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def format_ts_many(ts: FloatArray) -> list[str]:
    """format_ts of each of ts, vectorised: the same split and half-even rounding to the
    microsecond as datetime.fromtimestamp, so the same text."""
    frac, whole = np.modf(ts)
    us = np.rint(frac * 1e6)
    whole += np.floor_divide(us, 1e6)  # a fraction rounding up to a whole second, or below zero
    us = np.mod(us, 1e6)
    micros = whole.astype(np.int64) * 1_000_000 + us.astype(np.int64)
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us").tolist()
    return [t[:-7] + "Z" if u == 0 else t + "Z" for t, u in zip(text, us.tolist(), strict=True)]


def event_id(device_id: str, fence_id: str | None, type_: EventType, ts: float) -> str:
    """Deterministic id from (device, fence, type, ts) so consumers can drop repeats."""
    key = f"{device_id}\x1f{fence_id or ''}\x1f{_VALUE[type_]}\x1f{ts!r}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


class Event(NamedTuple):
    """One geofence event, as in SEMANTICS.md "Events" (a tuple: cheap to make in bulk)."""

    type: EventType
    device_id: str
    fence_id: str | None
    ts: float
    lat: float
    lon: float
    dwell_s: float | None = None
    reason: ExitReason | None = None
    gap_s: float | None = None
    gap_start: float | None = None
    extras: Mapping[str, Any] | None = None
    fence_version: int | None = None  # version of the fence set the event was matched against

    @property
    def event_id(self) -> str:
        return event_id(self.device_id, self.fence_id, self.type, self.ts)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of SEMANTICS.md; optional fields appear only where they apply."""
        gap_start = self.gap_start if self.gap_start is not None else self.ts
        lost = format_ts(gap_start) if self.type is EventType.SIGNAL_LOST else ""
        return self._body(self.event_id, format_ts(self.ts), lost)

    def _body(self, id_: str, ts: str, gap_start: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event_id": id_,
            "type": _VALUE[self.type],
            "device_id": self.device_id,
            "fence_id": self.fence_id,
            "ts": ts,
            "lat": self.lat,
            "lon": self.lon,
        }
        if self.type is EventType.EXIT:
            out["dwell_s"] = _seconds(self.dwell_s)
            out["reason"] = _VALUE[self.reason] if self.reason else None
        if self.type is EventType.SIGNAL_RESTORED:
            out["gap_s"] = _seconds(self.gap_s)
        if self.fence_version is not None and self.fence_id is not None:
            out["fence_version"] = self.fence_version
        if self.type is EventType.SIGNAL_LOST:
            out["gap_start"] = gap_start
        if self.extras:
            for key, value in self.extras.items():
                if value is not None and key not in out:
                    out[key] = value
        return out

    def to_json(self) -> bytes:
        """The one serialised form (UTF-8 JSON): live and replay write the same bytes for an event."""
        return orjson.dumps(self.to_dict())


_NEWLINE = orjson.Fragment(b"\n")


def events_jsonl(events: Sequence[Event]) -> bytes:
    """Events as JSON lines, each line exactly the event's to_json(): timestamps are formatted
    for the whole batch at once and orjson is called once, which is what makes replay's
    output cheap (a call per event costs more than the event's serialisation)."""
    if not events:
        return b""
    stamps = format_ts_many(np.fromiter((e.ts for e in events), np.float64, len(events)))
    lost = [i for i, e in enumerate(events) if e.type is EventType.SIGNAL_LOST]
    starts = [e.ts if e.gap_start is None else e.gap_start for e in (events[i] for i in lost)]
    gap_start = dict(zip(lost, format_ts_many(np.array(starts, dtype=np.float64)), strict=True))
    bodies = [
        e._body(event_id(e.device_id, e.fence_id, e.type, e.ts), stamp, gap_start.get(i, ""))
        for i, (e, stamp) in enumerate(zip(events, stamps, strict=True))
    ]
    # One orjson call for the batch: [e1,NL,e2,NL,...] where NL is a raw newline, which compact
    # JSON never contains (it escapes newlines in strings), so ",\n," marks the line breaks exactly.
    lines: list[Any] = [_NEWLINE] * (2 * len(bodies))
    lines[::2] = bodies
    text = orjson.dumps(lines)
    return text[1:-3].replace(b",\n,", b"\n") + b"\n"


def _seconds(value: float | None) -> float | None:
    """Durations to the microsecond, the resolution of timestamps, without float noise."""
    return None if value is None else round(value, 6)
