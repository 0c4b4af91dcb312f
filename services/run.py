"""`hotspots run`: the matcher and the HTTP API in one process, wired from one Settings."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Iterator
from contextlib import AsyncExitStack
from functools import partial

import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from api.app import create_app
from api.context import ServiceContext
from ingest.geojson_fences import load_fences
from services.broker import EmbeddedBroker, ensure_topics
from services.matcher import PROBE_INTERVAL_S, RETRY_MAX_S, Health, Matcher, sleep_or_stop
from services.metrics import Metrics
from services.settings import Settings
from services.store import Store, database_url

log = logging.getLogger("hotspots")

#: gc.set_threshold for the service: measured 40k -> 74k pings/s through one matcher.
GC_THRESHOLDS = (50_000, 20, 100)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service stops all its parts together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_service(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Start every part the role asks for and run until stop is set (or SIGINT/SIGTERM)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s: stopping", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Every batch makes hundreds of thousands of short-lived objects; at the default thresholds
    # the cyclic collector ran twice a second over the whole heap (a quarter of the matcher's
    # time, pauses up to 180 ms). Collect the young generation far less often.
    gc.set_threshold(*GC_THRESHOLDS)
    async with AsyncExitStack() as stack:
        bootstrap = settings.kafka_bootstrap
        if bootstrap is None:
            broker = EmbeddedBroker(log_dir=settings.data_dir)
            await broker.start()
            stack.push_async_callback(broker.stop)
            bootstrap = broker.bootstrap
            log.info("embedded Kafka-compatible broker (Tansu, memory only) on %s", bootstrap)
        store = await Store.open(database_url(settings.database_url, settings.data_dir))
        stack.push_async_callback(store.close)
        if settings.fences is not None:
            fences = load_fences(settings.fences)
            for fence in fences:
                for warning in fence.warnings:
                    log.warning(warning)
            version = await store.upsert_fences(fences)
            log.info("upserted %d fences from %s (fence set version %d)", len(fences), settings.fences, version)
        topics = {settings.topic_pings: settings.partitions, settings.topic_events: settings.partitions}
        topics[settings.topic_dlq] = settings.partitions
        # Raw pings (with officers' positions) live only in these topics: they expire there.
        retention = {"retention.ms": str(int(settings.ping_retention_days * 86_400_000))}
        ensure = partial(
            ensure_topics, bootstrap, topics, configs={settings.topic_pings: retention, settings.topic_dlq: retention}
        )
        ctx = ServiceContext(settings, store, Metrics(), Health())
        tasks: list[asyncio.Task[None]] = []
        if settings.role in ("all", "matcher"):
            matcher = Matcher(
                bootstrap=bootstrap,
                group=settings.group_id,
                topics=(settings.topic_pings, settings.topic_events, settings.topic_dlq),
                params=settings.engine,
                store=store,
                metrics=ctx.metrics,
                wall_clock=settings.wall_clock_watermark,
                checkpoint_interval_s=settings.checkpoint_interval_s,
                ensure_topics=ensure,
                health=ctx.health,
            )
            ctx.matcher_running = True
            tasks.append(asyncio.create_task(matcher.run(stop), name="matcher"))
        if settings.role in ("all", "api"):
            tasks.append(asyncio.create_task(_ingest_producer(ctx, bootstrap, stop), name="ingest-producer"))
            server = _Server(
                uvicorn.Config(
                    create_app(ctx), host=settings.api_host, port=settings.api_port, lifespan="off", log_level="warning"
                )
            )
            tasks.append(asyncio.create_task(server.serve(), name="api"))
            log.info("HTTP API on http://%s:%d (docs at /docs)", settings.api_host, settings.api_port)
        # Run until asked to stop, or until a part ends by itself (a failure): then stop them all.
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        # A part that returned while nobody asked it to stop failed too: say so, exit non-zero.
        quit_early = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
        quit_early = quit_early if not stop.is_set() else []
        stop.set()
        if settings.role in ("all", "api"):
            server.should_exit = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("%s failed: %r", task.get_name(), result)
                raise result
        if quit_early:
            names = ", ".join(t.get_name() for t in quit_early)
            log.error("%s stopped by itself: service stopped", names)
            raise RuntimeError(f"{names} stopped by itself")


async def _ingest_producer(ctx: ServiceContext, bootstrap: str, stop: asyncio.Event) -> None:
    """Keep a producer for HTTP ingest connected; in an API-only process, also report the broker."""
    delay = 0.2
    while not stop.is_set():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, request_timeout_ms=10_000)
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            if not ctx.matcher_running:
                ctx.health.broker, ctx.health.error = False, f"broker unreachable: {type(exc).__name__}"
            await sleep_or_stop(stop, delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        ctx.producer = producer
        try:
            while not stop.is_set():
                if not ctx.matcher_running:
                    try:
                        await asyncio.wait_for(producer.client.fetch_all_metadata(), PROBE_INTERVAL_S)
                        ctx.health.broker, ctx.health.error = True, None
                    except (KafkaError, OSError, TimeoutError) as exc:
                        ctx.health.broker, ctx.health.error = False, f"broker unreachable: {type(exc).__name__}"
                await sleep_or_stop(stop, PROBE_INTERVAL_S)
        finally:
            ctx.producer = None
            await producer.stop()
