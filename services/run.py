"""`hotspots run`: the matcher and the HTTP API, wired from one Settings.

With `api_workers` = 1 both run in this process, on one event loop. With more, this process
binds the API's port and starts that many API processes serving it (the kernel spreads the
connections), so requests never wait behind the matcher's batches and checkpoints, and the
API's work spreads over several cores; the matcher, if the role has one, stays here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing as mp
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from api.app import create_app
from api.context import ServiceContext
from ingest.geojson_fences import load_fences
from ingest.lip_records import parse_lip_messages
from services.measures.calibration import FixCapture
from services.metrics import Metrics
from services.pipeline.admission import Admission
from services.pipeline.broker import BrokerError, EmbeddedBroker, die_with_parent, ensure_topics
from services.pipeline.http_ingest import republish
from services.pipeline.journal import Journal, Positions, join, recover
from services.pipeline.kafka import KafkaLog
from services.pipeline.matcher import PROBE_INTERVAL_S, RETRY_MAX_S, Health, Matcher, sleep_or_stop
from services.pipeline.writer import ThreadWriter
from services.settings import Settings
from services.store import Store, database_url
from services.store.database import private_dir

log = logging.getLogger("hotspots")

#: gc.set_threshold for the service: measured 40k -> 74k pings/s through one matcher.
GC_THRESHOLDS = (50_000, 20, 100)
#: Seconds open requests (event streams) get to finish when the service stops.
SHUTDOWN_GRACE_S = 2


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service stops all its parts together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_service(
    settings: Settings,
    stop: asyncio.Event | None = None,
    listening: socket.socket | None = None,
    journal: Path | None = None,
) -> None:
    """Start every part the role asks for and run until stop is set (or SIGINT/SIGTERM).

    `listening`: the API's socket, bound by the parent of an API worker process; `journal`: the
    embedded broker's journal directory, for an API worker of a service that runs that broker."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s: stopping", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    os.umask(0o077)  # every file the service creates (store, journal, logs) is its owner's only: 0600
    private_dir(settings.data_dir)
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
        url = database_url(settings.database_url, settings.data_dir)
        store = await Store.open(url)
        stack.push_async_callback(store.close)
        if settings.fences is not None:
            fences = load_fences(settings.fences, max_buffer_m=settings.max_buffer_m)
            for fence in fences:
                for warning in fence.warnings:
                    log.warning(warning)
            version = await store.upsert_fences(fences)
            log.info("upserted %d fences from %s (fence set version %d)", len(fences), settings.fences, version)
        topics = {settings.topic_pings: settings.partitions, settings.topic_events: settings.partitions}
        topics[settings.topic_dlq] = settings.partitions
        if settings.topic_lip is not None:
            topics[settings.topic_lip] = settings.partitions
        # Raw pings (with officers' positions) live only in these topics: they expire there.
        retention = {"retention.ms": str(int(settings.ping_retention_days * 86_400_000))}
        ensure = partial(
            ensure_topics,
            bootstrap,
            topics,
            configs={t: retention for t in (settings.topic_pings, settings.topic_dlq, settings.topic_lip) if t},
        )
        ctx = ServiceContext(settings, store, Metrics(), Health())
        outputs = (settings.topic_events, settings.topic_dlq)
        tasks: list[asyncio.Task[None]] = []
        if settings.kafka_bootstrap is None:  # memory-only broker: journal HTTP pings (pipeline/journal.py)
            ctx.journal = await _journal(settings, store, bootstrap, ensure, ctx.metrics)
            tasks.append(asyncio.create_task(_watch_broker(broker, ctx.journal, stop), name="embedded-broker"))
        elif journal is not None:  # an API worker of a service that runs the embedded broker
            ctx.journal = await join(journal, _positions(settings, store))
        if ctx.journal is not None:
            stack.push_async_callback(ctx.journal.close)
        if settings.role in ("all", "matcher"):
            matcher = partial(
                Matcher,
                log=KafkaLog(bootstrap, ensure),
                params=settings.engine,
                store=store,
                capture=FixCapture(store, retention_s=settings.ping_retention_days * 86_400),
                metrics=ctx.metrics,
                wall_clock=settings.wall_clock_watermark,
                checkpoint_interval_s=settings.checkpoint_interval_s,
                admission=Admission.from_settings(settings),
            )
            own_store = partial(Store.opened, url)  # each matcher writes its checkpoints on a thread of its own
            pings = matcher(
                group=settings.group_id,
                topics=(settings.topic_pings, *outputs),
                health=ctx.health,
                writer=ThreadWriter(own_store),
            )
            ctx.matcher_running = True
            tasks.append(asyncio.create_task(pings.run(stop), name="matcher"))
            if settings.topic_lip is not None:  # its own group and engines; /readyz follows the pings matcher
                lip = matcher(
                    group=f"{settings.group_id}-lip",
                    topics=(settings.topic_lip, *outputs),
                    parse=parse_lip_messages,
                    writer=ThreadWriter(own_store),
                )
                tasks.append(asyncio.create_task(lip.run(stop), name="lip-matcher"))
        server: _Server | None = None
        if settings.role in ("all", "api") and settings.api_workers > 1:
            tasks.append(asyncio.create_task(_api_workers(settings, bootstrap, stop), name="api-workers"))
        elif settings.role in ("all", "api"):
            tasks.append(asyncio.create_task(_ingest_producer(ctx, bootstrap, stop), name="ingest-producer"))
            server = _Server(
                uvicorn.Config(
                    create_app(ctx),
                    host=settings.api_host,
                    port=settings.api_port,
                    lifespan="off",
                    log_level="warning",
                    # Event streams never end by themselves: cut them so a stop still checkpoints.
                    timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
                )
            )
            tasks.append(asyncio.create_task(server.serve(None if listening is None else [listening]), name="api"))
            log.info("HTTP API on http://%s:%d", settings.api_host, settings.api_port)
        # Run until asked to stop, or until a part ends by itself (a failure): then stop them all.
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        # A part that returned while nobody asked it to stop failed too: say so, exit non-zero.
        quit_early = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
        quit_early = quit_early if not stop.is_set() else []
        stop.set()
        await ctx.feed.stop()  # open event streams end now: the stop need not wait for them
        if server is not None:
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


async def _journal(
    settings: Settings, store: Store, bootstrap: str, ensure: Callable[[], Awaitable[None]], metrics: Metrics
) -> Journal:
    """The journal of this run, after re-publishing what the last run acknowledged and did not process."""
    await ensure()  # before re-publishing: the broker would create the topic with its own partition count
    positions = _positions(settings, store)
    publish = partial(republish, bootstrap, settings.topic_pings)
    journal, republished = await recover(settings.data_dir / "journal", positions, publish)
    metrics.pings_republished.inc(republished)
    journal.start(positions)
    return journal


def _positions(settings: Settings, store: Store) -> Positions:
    """Where the pings matcher's checkpoints stand: what the journal may forget."""
    return partial(store.checkpoint_positions, settings.group_id, settings.topic_pings)


async def _watch_broker(broker: EmbeddedBroker, journal: Journal, stop: asyncio.Event) -> None:
    """A memory-only broker that dies loses what it held: stop; the next start re-publishes it."""
    code = await broker.wait_exit(stop)
    if code is not None:
        try:
            held = str(await journal.unprocessed())
        except Exception as exc:  # the store is away too: the count waits for the next start
            held = f"some ({exc})"
        raise BrokerError(
            f"the embedded broker exited (code {code}): stopping; {held} acknowledged pings not yet processed "
            "are in the journal and are re-published at the next start"
        )


async def _api_workers(settings: Settings, bootstrap: str, stop: asyncio.Event) -> None:
    """`api_workers` API-only processes on one socket bound here; any of them ending is a failure."""
    listening = socket.create_server((settings.api_host, settings.api_port))
    worker = settings.model_copy(
        update={"role": "api", "api_workers": 1, "fences": None, "kafka_bootstrap": bootstrap}
    )  # the fences are loaded, the broker started, by this process
    spawn = mp.get_context("spawn")
    journal = settings.data_dir / "journal" if settings.kafka_bootstrap is None else None  # theirs beside ours
    procs = [
        spawn.Process(target=_api_worker, args=(worker, listening, journal, os.getpid()), name=f"api-{i}", daemon=True)
        for i in range(settings.api_workers)
    ]
    for proc in procs:
        proc.start()
    log.info("HTTP API on http://%s:%d, %d processes", settings.api_host, settings.api_port, len(procs))
    try:
        while not stop.is_set():
            if ended := [p.name for p in procs if not p.is_alive()]:
                raise RuntimeError(f"API worker {', '.join(ended)} exited")
            await sleep_or_stop(stop, PROBE_INTERVAL_S)
    finally:
        for proc in procs:
            proc.terminate()  # SIGTERM: the worker stops its parts like a service does
        for proc in procs:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
        listening.close()


def _api_worker(settings: Settings, listening: socket.socket, journal: Path | None, parent: int) -> None:
    """An API worker process: the API (and HTTP ingest) of run_service on the parent's socket.

    It dies with its parent: an orphan would hold the port and answer for a service that is gone."""
    if (preexec := die_with_parent(parent)) is not None:
        preexec()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(processName)s: %(message)s")
    asyncio.run(run_service(settings, listening=listening, journal=journal))


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
