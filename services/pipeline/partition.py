"""One assigned partition: its engine, where it stands in the log, and whether that log is still the one it read.

A checkpoint stores the fingerprint of the last message it consumed; on assignment the matcher
reads that message again (`verify_at`) and compares, as the matcher's module docstring says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from geofence.engine import Engine
from geofence.events import Event
from services.measures.calibration import FixRow
from services.pipeline.seams import Message


def fingerprint(message: Message) -> str:
    """Identifies a message within its log: offset, timestamp and a hash of key and value."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(message.key or b"")
    digest.update(b"\x00")
    digest.update(message.value or b"")
    return f"{message.offset}:{message.timestamp}:{digest.hexdigest()}"


@dataclass(slots=True)
class Partition:
    """One assigned partition: its engine and where it stands in the log."""

    engine: Engine
    next_offset: int = 0
    fingerprint: str | None = None
    verify_at: int | None = None  # offset whose fingerprint must match before reading on
    checkpointed_offset: int = -1
    unrecorded: list[Event] = field(default_factory=list)  # events since the last checkpoint, for the store
    fixes: list[FixRow] = field(default_factory=list)  # calibration fixes captured since the last checkpoint
    sought: int = 0  # Matcher.seeks when the consumer was last positioned for this partition

    @property
    def position(self) -> int:
        """Where the consumer must read next: the message to verify, if any."""
        return self.verify_at if self.verify_at is not None else self.next_offset

    def expect_last_message(self) -> None:
        """Re-read the last message consumed before reading on (on every assignment)."""
        self.verify_at = self.next_offset - 1 if self.next_offset > 0 else None

    def verified(self, messages: Sequence[Message]) -> Sequence[Message] | None:
        """The messages past the re-read one; None if the log is not the one the checkpoint read."""
        if self.verify_at is None:
            return messages
        first = messages[0]
        self.verify_at = None
        if first.offset == self.next_offset - 1 and fingerprint(first) == self.fingerprint:
            return messages[1:]
        return None

    def consumed(self, last: Message) -> None:
        """The messages up to last are processed."""
        self.next_offset = last.offset + 1
        self.fingerprint = fingerprint(last)

    def restart(self) -> None:
        """The log is new: read it from its beginning, with the engine state kept."""
        self.verify_at = None
        self.next_offset = 0
        self.fingerprint = None
