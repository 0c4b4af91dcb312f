"""The log seams (services.pipeline.seams) on a real Kafka-compatible broker, through aiokafka."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, MessageSizeTooLargeError, RecordTooLargeError

from services.pipeline.seams import Message, NotAssigned, RebalanceListener

#: Most records taken in one poll: large enough to amortise per-batch work, small enough to keep
#: a batch well under 100 ms at full speed.
MAX_POLL_RECORDS = 20_000
#: How long the broker may hold a fetch for more data: a ping produced meanwhile waits about half
#: of it (measured on Tansu: 500 ms gives p50 77 ms, 20 ms gives 5 ms), so keep it short.
FETCH_MAX_WAIT_MS = 20


class KafkaLog:
    """Clients of the broker at bootstrap; ensure creates the service's topics (see broker.ensure_topics)."""

    def __init__(self, bootstrap: str, ensure: Callable[[], Awaitable[None]]) -> None:
        self.bootstrap = bootstrap
        self.ensure = ensure

    async def ensure_topics(self) -> None:
        await self.ensure()

    async def producer(self) -> KafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, request_timeout_ms=10_000
        )
        await producer.start()
        return KafkaProducer(producer)

    async def consumer(self, group: str, topic: str, listener: RebalanceListener) -> KafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=MAX_POLL_RECORDS,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await consumer.start()
        consumer.subscribe([topic], listener=_Listener(listener))
        return KafkaConsumer(consumer, topic)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance callbacks, told with partition numbers."""

    def __init__(self, listener: RebalanceListener) -> None:
        self.listener = listener

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.listener.release([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.listener.adopt([tp.partition for tp in assigned])


class KafkaConsumer:
    """An AIOKafkaConsumer subscribed to one topic."""

    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic

    async def poll(self, timeout_ms: int) -> dict[int, list[Message]]:
        polled = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=MAX_POLL_RECORDS)
        return {tp.partition: records for tp, records in polled.items()}

    def seek(self, partition: int, offset: int) -> None:
        try:
            self.consumer.seek(TopicPartition(self.topic, partition), offset)
        except IllegalStateError as exc:
            raise NotAssigned(partition) from exc

    def highwater(self, partition: int) -> int | None:
        end: int | None = self.consumer.highwater(TopicPartition(self.topic, partition))
        return end

    async def end_offsets(self, partitions: Sequence[int]) -> dict[int, int]:
        try:
            ends = await self.consumer.end_offsets([TopicPartition(self.topic, p) for p in partitions])
        except IllegalStateError as exc:
            raise NotAssigned(*partitions) from exc
        return {tp.partition: end for tp, end in ends.items()}

    async def commit(self, offsets: Mapping[int, int]) -> None:
        await self.consumer.commit({TopicPartition(self.topic, p): offset for p, offset in offsets.items()})

    async def stop(self) -> None:
        await self.consumer.stop()


class KafkaProducer:
    """An AIOKafkaProducer that waits for the acks of what it sends."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> int:
        futures = []
        too_large = 0
        for topic, key, value in records:
            try:
                futures.append(await self.producer.send(topic, value, key=key))
            except MessageSizeTooLargeError:  # over the producer's max_request_size
                too_large += 1
        for outcome in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(outcome, RecordTooLargeError):  # over the broker's or topic's limit
                too_large += 1
            elif isinstance(outcome, BaseException):
                raise outcome
        return too_large

    async def topics(self) -> set[str]:
        cluster = await self.producer.client.fetch_all_metadata()
        names: set[str] = cluster.topics()
        return names

    async def stop(self) -> None:
        await self.producer.stop()
