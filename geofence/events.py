"""The output record: enter/exit/signal events with deterministic ids."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import orjson


class EventType(StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    SIGNAL_LOST = "signal_lost"
    SIGNAL_RESTORED = "signal_restored"


class ExitReason(StrEnum):
    LEFT = "left"
    SIGNAL_LOST = "signal_lost"
    FENCE_REMOVED = "fence_removed"


def format_ts(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with a Z, keeping sub-second precision when present."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def event_id(device_id: str, fence_id: str | None, type_: EventType, ts: float) -> str:
    """Deterministic id from (device, fence, type, ts) so consumers can drop repeats."""
    key = f"{device_id}\x1f{fence_id or ''}\x1f{type_.value}\x1f{ts!r}"
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
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.type.value,
            "device_id": self.device_id,
            "fence_id": self.fence_id,
            "ts": format_ts(self.ts),
            "lat": self.lat,
            "lon": self.lon,
        }
        if self.type is EventType.EXIT:
            out["dwell_s"] = _seconds(self.dwell_s)
            out["reason"] = self.reason.value if self.reason else None
        if self.type is EventType.SIGNAL_RESTORED:
            out["gap_s"] = _seconds(self.gap_s)
        if self.fence_version is not None and self.fence_id is not None:
            out["fence_version"] = self.fence_version
        if self.type is EventType.SIGNAL_LOST:
            out["gap_start"] = format_ts(self.gap_start if self.gap_start is not None else self.ts)
        if self.extras:
            for key, value in self.extras.items():
                if value is not None and key not in out:
                    out[key] = value
        return out

    def to_json(self) -> bytes:
        """The one serialised form (UTF-8 JSON): live and replay write the same bytes for an event."""
        return orjson.dumps(self.to_dict())


def _seconds(value: float | None) -> float | None:
    """Durations to the microsecond, the resolution of timestamps, without float noise."""
    return None if value is None else round(value, 6)
