"""`hotspots simulate`: live patrol traffic with current timestamps, for demos and load tests.

Officers walk or drive between the given hot spots and stay 10-15 minutes in each; fixes carry
GPS noise, some are low-accuracy, and radios go quiet for minutes at a time. Pings go to Kafka
(key = device_id) or to POST /v1/pings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from geofence.events import format_ts
from services.pipeline.matcher import sleep_or_stop
from services.workload import device_name, noisy_fixes, plan_patrols

log = logging.getLogger(__name__)

#: How often due pings are sent: small enough for smooth traffic, large enough to batch.
TICK_S = 0.1
#: Progress is logged every this many pings.
REPORT_EVERY = 1000
#: Patrols are planned this far ahead, then planned again.
PLAN_S = 4 * 3600.0
#: First and longest wait between attempts to deliver a batch, as a radio gateway backs off.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0


class Retryable(Exception):
    """The service or broker is away or busy: the same pings may be sent again later."""


@dataclass(frozen=True, slots=True)
class SimulateOptions:
    fences: Path
    devices: int
    rate: float  # pings per second, all devices together
    duration_s: float | None
    kafka_bootstrap: str | None
    url: str
    topic: str
    api_key: str | None
    seed: int


class Sink(Protocol):
    """Where simulated pings go."""

    async def send(self, pings: list[dict[str, Any]]) -> None: ...

    async def close(self) -> None: ...


class KafkaSink:
    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer, self.topic = producer, topic

    async def send(self, pings: list[dict[str, Any]]) -> None:
        try:
            futures = [
                await self.producer.send(self.topic, orjson.dumps(p), key=p["device_id"].encode()) for p in pings
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise Retryable(f"Kafka: {exc}") from exc

    async def close(self) -> None:
        await self.producer.stop()


class HttpSink:
    def __init__(self, url: str, api_key: str | None) -> None:
        headers = {"content-type": "application/x-ndjson"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self.client = httpx.AsyncClient(base_url=url, headers=headers, timeout=10.0)

    async def send(self, pings: list[dict[str, Any]]) -> None:
        body = b"\n".join(orjson.dumps(p) for p in pings)
        try:
            response = await self.client.post("/v1/pings", content=body)
        except httpx.TransportError as exc:  # refused, reset, timed out: the service is away
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise Retryable(f"POST /v1/pings answered {response.status_code}")
        if response.status_code >= 400:
            raise RuntimeError(f"POST /v1/pings answered {response.status_code}: {response.text[:200]}")

    async def close(self) -> None:
        await self.client.aclose()


async def send_until_delivered(
    sink: Sink, pings: list[dict[str, Any]], stop: asyncio.Event, first_s: float = RETRY_FIRST_S
) -> None:
    """Send, and on a Retryable failure send the same pings again, backing off, until they are
    delivered or stop is set (a refusal that no retry can cure, e.g. 401, is raised)."""
    delay = first_s
    while True:
        try:
            await sink.send(pings)
            return
        except Retryable as exc:
            if stop.is_set():
                raise
            log.warning("%d pings not delivered (%s); retrying in %.1f s", len(pings), exc, delay)
            await sleep_or_stop(stop, delay)
            delay = min(delay * 2, RETRY_MAX_S)


async def simulate(opts: SimulateOptions, stop: asyncio.Event | None = None) -> int:
    """Send pings until duration_s has passed or stop is set; returns how many were sent."""
    stop = stop or asyncio.Event()
    fences = json.loads(opts.fences.read_text(encoding="utf-8"))
    rng = np.random.default_rng(opts.seed)
    sink: Sink
    if opts.kafka_bootstrap:
        producer = AIOKafkaProducer(bootstrap_servers=opts.kafka_bootstrap, linger_ms=5, acks="all")
        await producer.start()
        sink = KafkaSink(producer, opts.topic)
    else:
        sink = HttpSink(opts.url, opts.api_key)
    interval = opts.devices / opts.rate
    start = time.time()
    patrols = plan_patrols(fences, opts.devices, PLAN_S, rng)
    planned_at = start
    next_due = start + rng.uniform(0, interval, opts.devices)
    sent = 0
    try:
        while not stop.is_set() and (opts.duration_s is None or time.time() - start < opts.duration_s):
            now = time.time()
            if now - planned_at > PLAN_S * 0.9:
                patrols, planned_at = plan_patrols(fences, opts.devices, PLAN_S, rng), now
            due = np.flatnonzero(next_due <= now)
            pings = []
            for d in due.tolist():
                t = np.array([now - planned_at])
                if not patrols[d].heard(t)[0]:
                    continue  # radio gap: nothing reaches the network
                lon, lat, acc = noisy_fixes(*patrols[d].at(t), rng)
                pings.append(
                    {
                        "device_id": device_name(d),
                        "ts": format_ts(round(now, 3)),
                        "lat": round(float(lat[0]), 7),
                        "lon": round(float(lon[0]), 7),
                        "accuracy_m": round(float(acc[0]), 1),
                        "callsign": f"CX{d:03d}",
                        "source": "radio" if d % 3 else "handset",
                    }
                )
            next_due[due] += interval
            if pings:
                await send_until_delivered(sink, pings, stop)
                sent += len(pings)
                if sent // REPORT_EVERY != (sent - len(pings)) // REPORT_EVERY:
                    log.info("sent %d pings from %d devices", sent, opts.devices)
            await sleep_or_stop(stop, TICK_S)
    finally:
        await sink.close()
    log.info("sent %d pings from %d devices", sent, opts.devices)
    return sent
