"""In-memory twins of the log and the store (services.pipeline.seams), to run matchers in-process.

`MemoryLog` is a broker in dicts: topics of partitioned logs, consumer groups whose members share
a topic's partitions and hear of every rebalance, and switches a test flips: `refusing` (every
send fails, after delivering the first half of its records, as a broker going away mid-send),
`acks` (cleared: sends wait for their acks, so a batch stays in flight) and `restart()` (the
memory-only broker comes back empty). `MemoryStore` keeps checkpoints and the events they
recorded in dicts, and fails while `refusing`. Both copy what crosses them, as a broker and a
database do, so nothing is shared with a matcher's own objects.

The group follows Kafka's eager protocol, as aiokafka does: on every change of membership each
member gives up all its partitions (`release`), then each takes its share (`adopt`); the
rebalance runs in the next poll of any member, as it runs while members poll in Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from geofence.events import Event
from geofence.fences import Fence
from geofence.pings import PingBatch
from services.measures.calibration import FixRow
from services.pipeline.seams import NotAssigned, RebalanceListener
from services.replay import partition_for
from services.store import Checkpoint, DeviceNow, Observations
from services.store.database import json_dumps


@dataclass(frozen=True, slots=True)
class MemoryMessage:
    """One message of a MemoryLog; `timestamp` counts the topic's appends, so a log written again differs."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class _Group:
    members: list[MemoryConsumer] = field(default_factory=list)
    stale: bool = False  # membership changed since the last rebalance
    generation: int = 0  # rebalances begun, as Kafka's generation id
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class MemoryLog:
    """Topics with their partition counts (created as `ensure_topics` would); see the module docstring.

    batch: most messages one poll returns per partition, small so that a short log makes many batches.
    """

    def __init__(self, partitions: Mapping[str, int], *, batch: int = 50) -> None:
        self.partitions = dict(partitions)
        self.batch = batch
        self.topics: dict[str, list[list[MemoryMessage]]] = {}
        self.groups: dict[str, _Group] = {}
        self.committed: dict[tuple[str, str, int], int] = {}  # (group, topic, partition) -> offset
        self.refusing = False  # set: every send fails after delivering half its records
        self.max_record_bytes = 1024 * 1024  # larger records are refused, as Kafka's default refuses them
        self.acks = asyncio.Event()  # cleared: sends wait for their acks
        self.acks.set()
        self.appended: dict[str, int] = {}  # messages ever appended to each topic, across restarts
        self._news = asyncio.Event()
        self._create_missing()

    # ------------------------------------------------------------------ what a test does

    def append(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> MemoryMessage:
        """Add a message where Kafka's default partitioner puts its key (partition 0 without one)."""
        if topic not in self.topics:  # as a broker that creates topics on first use
            self._create_missing()
        if partition is None:
            partition = partition_for(key.decode(), self.partitions[topic]) if key else 0
        log = self.topics[topic][partition]
        self.appended[topic] = timestamp = self.appended.get(topic, 0) + 1
        message = MemoryMessage(topic, partition, len(log), timestamp, key, value)
        log.append(message)
        self._wake()
        return message

    def messages(self, topic: str) -> list[MemoryMessage]:
        """Every message of topic, partition after partition, each in offset order."""
        return [m for log in self.topics.get(topic, []) for m in log]

    def end(self, topic: str, partition: int) -> int:
        """The offset the partition's next message gets (0 while the topic is missing)."""
        partitions = self.topics.get(topic)
        return len(partitions[partition]) if partitions else 0

    def generation(self, group: str) -> int:
        """How many rebalances of group have begun (a rebalance revokes first, then assigns)."""
        return self.groups[group].generation

    def restart(self) -> None:
        """The memory-only broker restarts: every topic and committed offset is gone."""
        self.topics.clear()
        self.committed.clear()
        self._wake()

    # ------------------------------------------------------------------ the Log seam

    async def ensure_topics(self) -> None:
        self._create_missing()

    async def producer(self) -> MemoryProducer:
        return MemoryProducer(self)

    async def consumer(self, group: str, topic: str, listener: RebalanceListener) -> MemoryConsumer:
        """Join group; it rebalances in the next poll (no await here: the caller holds it first)."""
        consumer = MemoryConsumer(self, group, topic, listener)
        joined = self.groups.setdefault(group, _Group())
        joined.members.append(consumer)
        joined.stale = True
        return consumer

    # ------------------------------------------------------------------ internals

    def _create_missing(self) -> None:
        for topic, count in self.partitions.items():
            self.topics.setdefault(topic, [[] for _ in range(count)])

    def _wake(self) -> None:
        """Wake every poll waiting for news (appends, seeks, membership)."""
        self._news.set()
        self._news = asyncio.Event()

    async def _wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._news.wait(), timeout_s)

    async def _leave(self, consumer: MemoryConsumer) -> None:
        group = self.groups[consumer.group]
        group.members.remove(consumer)
        group.stale = True
        self._wake()

    async def _rebalance(self, group_id: str, topic: str) -> None:
        group = self.groups[group_id]
        async with group.lock:
            if not group.stale:
                return
            group.stale = False
            group.generation += 1
            members = list(group.members)
            for member in members:
                revoked = sorted(member.assigned)
                if revoked:
                    await member.listener.release(revoked)
                member.assigned = set()
            for i, member in enumerate(members):
                member.assigned = {p for p in range(self.partitions[topic]) if p % len(members) == i}
                member.positions = {p: self.committed.get((group_id, topic, p), 0) for p in member.assigned}
                await member.listener.adopt(sorted(member.assigned))


class MemoryConsumer:
    """A member of a MemoryLog consumer group (the Consumer seam)."""

    def __init__(self, log: MemoryLog, group: str, topic: str, listener: RebalanceListener) -> None:
        self.log = log
        self.group = group
        self.topic = topic
        self.listener = listener
        self.assigned: set[int] = set()
        self.positions: dict[int, int] = {}
        self.highwaters: dict[int, int] = {}

    async def poll(self, timeout_ms: int) -> dict[int, list[MemoryMessage]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            await self.log._rebalance(self.group, self.topic)
            polled = self._read()
            if polled or loop.time() >= deadline:
                return polled
            await self.log._wait(deadline - loop.time())

    def _read(self) -> dict[int, list[MemoryMessage]]:
        partitions = self.log.topics.get(self.topic)
        if partitions is None:
            return {}
        polled = {}
        for p in sorted(self.assigned):
            log, position = partitions[p], self.positions[p]
            polled[p] = log[position : position + self.log.batch]  # past the end: nothing (Matcher._check_short_logs)
            self.positions[p] += len(polled[p])
            self.highwaters[p] = len(log)
        return {p: messages for p, messages in polled.items() if messages}

    def seek(self, partition: int, offset: int) -> None:
        if partition not in self.assigned:
            raise NotAssigned(partition)
        self.positions[partition] = offset
        self.log._wake()

    def highwater(self, partition: int) -> int | None:
        return self.highwaters.get(partition)

    async def end_offsets(self, partitions: Sequence[int]) -> dict[int, int]:
        if not self.assigned.issuperset(partitions):
            raise NotAssigned(*partitions)
        return {p: self.log.end(self.topic, p) for p in partitions}

    async def commit(self, offsets: Mapping[int, int]) -> None:
        for p, offset in offsets.items():
            self.log.committed[self.group, self.topic, p] = offset

    async def stop(self) -> None:
        """Leave the group: the others share its partitions at their next poll."""
        await self.log._leave(self)
        self.assigned = set()


class MemoryProducer:
    """Appends to a MemoryLog (the Producer seam); fails while the log is `refusing`."""

    def __init__(self, log: MemoryLog) -> None:
        self.log = log

    async def send(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> int:
        delivered = records[: len(records) // 2] if self.log.refusing else records
        too_large = 0
        for topic, key, value in delivered:
            if len(value) + len(key or b"") > self.log.max_record_bytes:
                too_large += 1
            else:
                self.log.append(topic, key, value)
        if self.log.refusing:
            raise ConnectionError("the log refused the send (MemoryLog.refusing)")
        if records:  # nothing sent, no ack to wait for
            await self.log.acks.wait()
        return too_large

    async def topics(self) -> set[str]:
        return set(self.log.topics)

    async def stop(self) -> None:
        """Nothing to flush: send returns only once its records are in the log."""


def _copied(value: Any) -> Any:
    """value after a trip through the database's JSON, as the store keeps it."""
    return orjson.loads(json_dumps(value))


class MemoryStore:
    """Fences, checkpoints and the events and device states they recorded, in dicts (the MatcherStore seam).

    events: each recorded event by event_id, the first one kept, as the store inserts them once.
    """

    def __init__(self, fences: Sequence[Fence] = ()) -> None:
        self.fences = list(fences)
        self.version = 1
        self.checkpoints: dict[tuple[str, str, int], Checkpoint] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.devices: dict[str, DeviceNow] = {}
        self.refusing = False  # set: every checkpoint fails, the database is away

    async def load_fences(self) -> tuple[list[Fence], int]:
        return list(self.fences), self.version

    async def fence_version(self) -> int:
        return self.version

    async def load_checkpoint(self, group: str, topic: str, partition: int) -> Checkpoint | None:
        cp = self.checkpoints.get((group, topic, partition))
        return None if cp is None else replace(cp, stream=_copied(cp.stream), devices=_copied(cp.devices))

    async def save_checkpoint(self, cp: Checkpoint, observations: Observations | None = None) -> None:
        """Upsert the checkpoint's devices and record the observations, all or nothing."""
        if self.refusing:
            raise ConnectionError("the store refused the checkpoint (MemoryStore.refusing)")
        key = (cp.group, cp.topic, cp.partition)
        old = self.checkpoints.get(key)
        devices = {**(old.devices if old else {}), **_copied(cp.devices)}
        self.checkpoints[key] = replace(cp, stream=_copied(cp.stream), devices=devices)
        if observations is not None:
            for e in observations.events:
                body = e.to_dict() if isinstance(e, Event) else _copied(e)
                self.events.setdefault(body["event_id"], body)
            self.devices.update(observations.devices)


class NoCapture:
    """The calibration hook with no check open: it captures nothing (the Capture seam)."""

    async def refresh(self) -> None:
        """No check to poll."""

    def select(self, batch: PingBatch) -> list[FixRow]:
        return []

    async def save(self, rows: Sequence[FixRow]) -> None:
        """Nothing was selected, so nothing to write."""
