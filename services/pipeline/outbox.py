"""What one batch produces, events and dead letters, held until the broker acknowledges it (step 2)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from geofence.events import Event
from services.pipeline.seams import Message


def dlq_record(message: Message, reason: str) -> tuple[bytes | None, bytes]:
    """The DLQ message: the original bytes, the reason and where the message came from."""
    value = message.value or b""
    body: dict[str, Any] = {
        "reason": reason,
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
        "key": message.key.decode("utf-8", "replace") if message.key else None,
    }
    try:
        body["original"] = value.decode("utf-8")
    except UnicodeDecodeError:
        body["original_b64"] = base64.b64encode(value).decode()
    return message.key, orjson.dumps(body)


@dataclass(slots=True)
class Outbox:
    """Records of one batch to produce before anything becomes durable."""

    events: list[Event] = field(default_factory=list)
    dlq: list[tuple[bytes | None, bytes]] = field(default_factory=list)

    def records(self, events_topic: str, dlq_topic: str) -> list[tuple[str, bytes | None, bytes]]:
        """(topic, key, value) of every record: events keyed by device, dead letters by their ping's key."""
        out: list[tuple[str, bytes | None, bytes]] = [
            (events_topic, e.device_id.encode(), e.to_json()) for e in self.events
        ]
        out += [(dlq_topic, key, value) for key, value in self.dlq]
        return out
