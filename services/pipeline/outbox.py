"""What one batch produces, events and dead letters, held until the broker acknowledges it (step 2)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from geofence.events import Event
from services.pipeline.seams import Message

#: Bytes of the original message (and of its key) a dead letter copies. JSON escapes a control
#: character in six bytes, so a copy stays under 400 KB, well inside Kafka's 1 MB default record
#: limit: one bad message too large to copy whole must not stop the matcher on every partition.
ORIGINAL_MAX = 64 * 1024
KEY_MAX = 1024


def dlq_record(message: Message, reason: str) -> tuple[bytes | None, bytes]:
    """The DLQ message: the original bytes (the first ORIGINAL_MAX, saying so when cut), the
    reason and where the message came from (its offset finds the whole message in the log)."""
    value = message.value or b""
    key = message.key[:KEY_MAX] if message.key else message.key
    body: dict[str, Any] = {
        "reason": reason,
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
        "key": key.decode("utf-8", "replace") if key else None,
    }
    if len(value) > ORIGINAL_MAX or (message.key and len(message.key) > KEY_MAX):
        body["truncated"] = {"original_bytes": len(value), "key_bytes": len(message.key or b"")}
        value = value[:ORIGINAL_MAX]
    try:
        body["original"] = value.decode("utf-8")
    except UnicodeDecodeError:
        body["original_b64"] = base64.b64encode(value).decode()
    return key, orjson.dumps(body)


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
