"""Pings POSTed to the API, written to the pings topic as a radio gateway would write them.

They are validated by the same rules as the Kafka path (ingest/ping_message.py) and then go
through Kafka like every other ping: the matcher is the one writer of state.

A 202 means the pings are durable: Kafka acknowledged them with acks=all (the producers of
services/run.py), and with the memory-only embedded broker they are also in the journal
(services/pipeline/journal.py), fsynced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from geofence.events import format_ts
from geofence.pings import PingBatch
from services.errors import Unavailable
from services.metrics import Metrics
from services.pipeline.journal import Journal, Record

#: How long ingest waits for Kafka to acknowledge before telling the client to retry.
PRODUCE_TIMEOUT_S = 10.0


def ping_messages(batch: PingBatch) -> list[tuple[bytes, bytes]]:
    """(key, value) Kafka messages for validated pings, in SEMANTICS.md form."""
    out = []
    extras = batch.extras.tolist() if len(batch.extras) else [None] * len(batch)
    rows = zip(
        batch.device_id.tolist(), batch.ts.tolist(), batch.lat.tolist(), batch.lon.tolist(),
        batch.accuracy_m.tolist(), extras, strict=True,
    )  # fmt: skip
    for device, ts, lat, lon, acc, extra in rows:
        msg: dict[str, object] = {"device_id": device, "ts": format_ts(ts), "lat": lat, "lon": lon}
        if acc == acc:  # not NaN: accuracy known
            msg["accuracy_m"] = acc
        if extra:
            msg.update({k: v for k, v in extra.items() if v is not None})
        out.append((device.encode(), orjson.dumps(msg)))
    return out


async def produce_pings(
    producer: AIOKafkaProducer | None, topic: str, batch: PingBatch, metrics: Metrics, journal: Journal | None = None
) -> int:
    """Write the pings to `topic`, wait for Kafka's acknowledgement and, with a journal, for
    their fsync there; how many were written.

    Unavailable (retry later) when there is no producer yet, Kafka does not acknowledge in time
    or the journal cannot be written.
    """
    messages = ping_messages(batch)
    if not messages:
        return 0
    if producer is None:
        raise Unavailable("Kafka is not reachable; retry later")
    try:
        placed = await asyncio.wait_for(publish(producer, topic, messages), PRODUCE_TIMEOUT_S)
    except (KafkaError, TimeoutError) as exc:
        raise Unavailable(f"Kafka did not accept the pings ({type(exc).__name__}); retry") from None
    if journal is not None:
        try:
            await journal.append([Record(p, o, k, v) for (k, v), (p, o) in zip(messages, placed, strict=True)])
        except OSError as exc:
            raise Unavailable(f"the pings could not be made durable ({exc}); retry") from None
    metrics.pings_ingested_http.inc(len(messages))
    return len(messages)


async def publish(
    producer: AIOKafkaProducer, topic: str, messages: Sequence[tuple[bytes, bytes]]
) -> list[tuple[int, int]]:
    """Send (key, value) messages in order; (partition, offset) of each once all are acknowledged."""
    futures = [await producer.send(topic, value, key=key) for key, value in messages]
    return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]


async def republish(bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    """`publish` with a producer of its own (acks=all), for the journal's recovery at start."""
    if not messages:
        return []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, request_timeout_ms=10_000)
    await producer.start()
    try:
        return await publish(producer, topic, messages)
    finally:
        await producer.stop()
