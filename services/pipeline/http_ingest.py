"""Pings POSTed to the API, written to the pings topic as a radio gateway would write them.

They are validated by the same rules as the Kafka path (ingest/ping_message.py) and then go
through Kafka like every other ping: the matcher is the one writer of state.
"""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from geofence.events import format_ts
from geofence.pings import PingBatch
from services.errors import Unavailable
from services.metrics import Metrics

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


async def produce_pings(producer: AIOKafkaProducer | None, topic: str, batch: PingBatch, metrics: Metrics) -> int:
    """Write the pings to `topic` and wait for Kafka's acknowledgement; how many were written.

    Unavailable (retry later) when there is no producer yet or Kafka does not acknowledge in time.
    """
    messages = ping_messages(batch)
    if not messages:
        return 0
    if producer is None:
        raise Unavailable("Kafka is not reachable; retry later")
    try:
        futures = [await producer.send(topic, v, key=k) for k, v in messages]
        await asyncio.wait_for(asyncio.gather(*futures), PRODUCE_TIMEOUT_S)
    except (KafkaError, TimeoutError) as exc:
        raise Unavailable(f"Kafka did not accept the pings ({type(exc).__name__}); retry") from None
    metrics.pings_ingested_http.inc(len(messages))
    return len(messages)
