"""What the matcher needs from the log and the store: small Protocols, nothing more.

The matcher's commit order (see services/pipeline/matcher.py) is only as good as its handling
of the failures between its steps, so it is written against these seams, not against aiokafka
and SQL: `services.pipeline.kafka` puts aiokafka behind them and `Store` fits them as it is;
`services.pipeline.memory` holds twins that keep everything in memory and fail on request, so
the commit order is tested in-process (tests/services/pipeline/test_commit_order.py).

A seam that fails raises one of LOG_ERRORS or STORE_ERRORS: the other side is away (a twin
told to fail raises ConnectionError, which is both), and the matcher retries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from aiokafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from geofence.fences import Fence
from geofence.pings import PingBatch
from services.measures.calibration import FixRow
from services.pipeline.broker import BrokerError
from services.store import Checkpoint, Observations

#: What a log call raises while the broker is away (or a twin is told to fail).
LOG_ERRORS: tuple[type[Exception], ...] = (KafkaError, OSError, TimeoutError, BrokerError)
#: What a store call raises while the database is away (or a twin is told to fail).
STORE_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, OSError)


class NotAssigned(LookupError):
    """The partition is no longer assigned to this consumer (revoked meanwhile)."""


class Message(Protocol):
    """One message of a log, as a consumer returns it (aiokafka's ConsumerRecord fits)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class RebalanceListener(Protocol):
    """Told, with the group's partition numbers, which partitions a consumer gains and loses."""

    async def adopt(self, partitions: Sequence[int]) -> None: ...
    async def release(self, partitions: Sequence[int]) -> None: ...


class Consumer(Protocol):
    """One member of a consumer group on the pings topic; partitions are numbers."""

    async def poll(self, timeout_ms: int) -> Mapping[int, Sequence[Message]]:
        """The next messages of each assigned partition, from its position; may run the listener."""
        ...

    def seek(self, partition: int, offset: int) -> None:
        """Read the partition from offset on (the fingerprint check re-reads one message so);
        NotAssigned if it was revoked."""
        ...

    def highwater(self, partition: int) -> int | None:
        """The log's end as of the last fetch, None before any."""
        ...

    async def end_offsets(self, partitions: Sequence[int]) -> Mapping[int, int]:
        """The log's end of each partition, asked of the broker; NotAssigned if one was revoked."""
        ...

    async def commit(self, offsets: Mapping[int, int]) -> None:
        """Record the group's offsets where lag tools look (the matcher never reads them back)."""
        ...

    async def stop(self) -> None: ...


class Producer(Protocol):
    """Sends to any topic of the log."""

    async def send(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> int:
        """Send (topic, key, value) records and return once every one is acknowledged; how many
        the log refused as too large (skipped: a record no retry can deliver must not stall)."""
        ...

    async def topics(self) -> set[str]:
        """The topics the log holds now (asking creates none): a broker restarted empty has lost ours."""
        ...

    async def stop(self) -> None: ...


class Log(Protocol):
    """Where the matcher's clients come from."""

    async def ensure_topics(self) -> None:
        """Create the service's topics that are missing, with their partition counts."""
        ...

    async def producer(self) -> Producer: ...

    async def consumer(self, group: str, topic: str, listener: RebalanceListener) -> Consumer:
        """Join group on topic; listener hears of every assignment and revocation."""
        ...


class MatcherStore(Protocol):
    """The store as the matcher uses it: fences in, checkpoints with their observations out."""

    async def load_fences(self) -> tuple[list[Fence], int]: ...
    async def fence_version(self) -> int: ...
    async def load_checkpoint(self, group: str, topic: str, partition: int) -> Checkpoint | None: ...

    async def save_checkpoint(self, cp: Checkpoint, observations: Observations | None = None) -> None:
        """Engine state, offset and what the pings up to it produced, in one transaction."""
        ...


class Capture(Protocol):
    """The calibration hook (services.measures.calibration.FixCapture): fixes of open checks."""

    async def refresh(self) -> None: ...
    def select(self, batch: PingBatch) -> list[FixRow]: ...

    async def save(self, rows: Sequence[FixRow]) -> None:
        """Written before the checkpoint past them, so a crash captures them again."""
        ...
