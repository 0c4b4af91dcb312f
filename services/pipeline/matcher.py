"""The matcher: pings from Kafka through the engine to events, with an exactly-once effect.

One Engine per assigned partition: pings are keyed by device, so a partition holds whole
devices, and its event time (watermark) is its own, as Kafka Streams' stream time is per task.
A lagging partition never makes another partition's devices look lost, and the events of a
partition do not depend on which process holds it, so one matcher or several give the same
events.

The commit order, for every polled batch (this is the one place it is written down):

1. process: parse the messages, run each partition's engine; collect events and DLQ records;
2. produce events to the events topic and rejects to the DLQ, and wait for every ack;
3. every `checkpoint_interval_s` (and on revocation or shutdown): write each partition's
   changed engine state, its next offset, and the events and device states the query API
   serves, to the store in ONE transaction (events keyed by event_id, so a replay adds none).
   A partition's state is captured on the loop, between batches, after step 2 of the last one;
   a writer (services.pipeline.writer, a thread of its own in service) writes it while the loop
   goes on consuming. One checkpoint at a time: the next partition is captured only once the
   last is written, and a write that fails hands its capture back to be written with the next.
   Revocation and shutdown wait for the write in flight, then write theirs;
4. commit the same offsets to Kafka, for lag tools only: they are never read back.

A crash before step 3 replays from the previous checkpoint; the events it produces again
carry the same event_ids, so consumers that drop repeated ids see exactly one run.

A checkpoint also records a fingerprint of the last message it consumed. On assignment the
matcher reads that message again: if it is gone (the log is shorter, as after a restart of
the memory-only embedded broker) or different (a new log), the stored offset belongs to a log
that no longer exists, and the partition is read from its beginning; the engine state is kept.
Such a broker also comes back without topics: the broker probe behind /readyz creates them
again (with their partition counts) as soon as it finds them missing.

The log and the store are reached through the small seams of services.pipeline.seams: aiokafka
(services.pipeline.kafka) and Store in service, the in-memory twins of services.pipeline.memory
in tests/services/pipeline/test_commit_order.py, which holds this order against a failure
between any two of its steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from geofence.engine import Engine
from geofence.events import Event, EventType
from geofence.index import FenceIndex
from geofence.params import EngineParams
from ingest.ping_message import ParsedPings, parse_messages
from ingest.rules import unknown_fence, unknown_fence_rows
from services.measures.calibration import FixRow
from services.metrics import Metrics
from services.pipeline.admission import Admission
from services.pipeline.outbox import Outbox, dlq_record
from services.pipeline.partition import Partition, fingerprint
from services.pipeline.seams import (
    LOG_ERRORS,
    STORE_ERRORS,
    Capture,
    Consumer,
    Log,
    MatcherStore,
    Message,
    NotAssigned,
    Producer,
)
from services.pipeline.writer import LoopWriter, Writer
from services.store import Checkpoint

log = logging.getLogger(__name__)

#: How long one poll waits for records when the topic is quiet; also the wall-clock tick.
POLL_TIMEOUT_MS = 100
#: First and longest wait between retries while the broker is away.
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
#: How often the broker's reachability is probed for /readyz.
PROBE_INTERVAL_S = 2.0
#: On the way out, how long unacked events may take to reach the broker before we give up
#: (they are produced again on the next start, which replays from the last checkpoint).
SHUTDOWN_PRODUCE_S = 10.0
#: How often the matcher looks for fence changes made through the API (they apply within this).
FENCE_POLL_S = 2.0
#: Kafka offset commits are informational; never let one hold the loop up for long.
COMMIT_TIMEOUT_S = 5.0
#: Lag is measured in passing: a broker away or a partition revoked meanwhile skips one measure.
LAG_ERRORS: tuple[type[Exception], ...] = (*LOG_ERRORS, NotAssigned)


@dataclass(slots=True)
class Health:
    """What /readyz reports about the matcher; updated by the matcher, read by the API."""

    broker: bool = False
    assigned: bool = False
    error: str | None = None
    checkpoint_failures: int = 0  # in a row: nothing the matcher does is being saved meanwhile


@dataclass(slots=True)
class Captured:
    """One partition's checkpoint, captured on the loop, to be written off it."""

    part: Partition
    checkpoint: Checkpoint
    events: list[Event]
    fixes: list[FixRow]
    commit: bool  # its offset moved since the last checkpoint: commit it to Kafka once written


class Matcher:
    """Consumes pings, runs the engines, produces events; see the module docstring for order."""

    def __init__(
        self,
        *,
        log: Log,
        group: str,
        topics: tuple[str, str, str],
        params: EngineParams,
        store: MatcherStore,
        capture: Capture,
        metrics: Metrics,
        wall_clock: bool,
        checkpoint_interval_s: float,
        health: Health | None = None,
        parse: Callable[[Sequence[bytes | None]], ParsedPings] = parse_messages,
        writer: Writer | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.log = log
        self.admission = admission  # live only: replays and in-memory tests run on event time alone
        self.group = group
        self.pings_topic, self.events_topic, self.dlq_topic = topics
        self.params = params
        self.store = store
        self.metrics = metrics
        self.wall_clock = wall_clock
        self.checkpoint_interval_s = checkpoint_interval_s
        self.health = health or Health()
        self.parse = parse  # message values -> pings and rejects: JSON pings, or LIP records (ingest.lip_records)
        self.capture = capture  # fixes of open calibration checks
        self.index = FenceIndex([])
        self.fence_version = -1
        self.parts: dict[int, Partition] = {}
        self.lock = asyncio.Lock()
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.pending: Outbox | None = None  # processed but not yet acked: produced again first
        self.fences_checked = time.monotonic()
        self.seeks = 0  # consumer seeks so far: tells records polled before a seek from those after
        self.log_ends: dict[int, int] = {}  # partition -> the log's end at the last fetch: what a lost log held
        self.last_checkpoint = time.monotonic()
        self.writer = writer or LoopWriter(store)  # step 3, off the loop when a ThreadWriter
        self.writing: asyncio.Task[None] | None = None  # the checkpoint being written
        self.to_capture: list[int] = []  # partitions of this round of checkpoints still to capture
        self.uncommitted: dict[int, int] = {}  # offsets written, not yet committed to Kafka (step 4)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Until stop is set: consume, process, produce, checkpoint; survive broker outages."""
        await self.load_fences()
        prober = asyncio.create_task(self._probe(stop))
        try:
            delay = RETRY_FIRST_S
            while not stop.is_set():
                try:
                    await self._connect()
                    delay = RETRY_FIRST_S
                    await self._loop(stop)
                except LOG_ERRORS as exc:
                    self.health.broker = False
                    self.health.error = f"{type(exc).__name__}: {exc}"
                    log.warning("kafka unavailable (%s); retrying in %.1f s", self.health.error, delay)
                    await sleep_or_stop(stop, delay)
                    delay = min(delay * 2, RETRY_MAX_S)
        finally:
            prober.cancel()
            await self._shutdown()

    async def _connect(self) -> None:
        """Start the clients that are not running; with both already up, the probe judges the broker."""
        connected = False
        if self.producer is None:
            await self.log.ensure_topics()
            self.producer = await self.log.producer()
            connected = True
        if self.consumer is None:
            self.consumer = await self.log.consumer(self.group, self.pings_topic, self)
            connected = True
        if connected:  # not after a failed batch with both clients up: the broker may still be away
            self.health.broker = True
            self.health.error = None

    async def _shutdown(self) -> None:
        try:
            async with self.lock:
                if self.pending is not None and self.producer is not None:
                    await asyncio.wait_for(self._produce(self.pending), SHUTDOWN_PRODUCE_S)
                    self.pending = None
                await self._checkpoint_now(list(self.parts))
        except LOG_ERRORS + STORE_ERRORS as exc:
            log.warning("final checkpoint skipped (the next start replays from the previous one): %s", exc)
        await self._written()  # one still in flight when the final one was skipped ends before its writer
        await self.writer.close()
        for client in (self.consumer, self.producer):
            if client is not None:
                try:
                    await client.stop()
                except LOG_ERRORS as exc:  # pragma: no cover - best effort on the way out
                    log.warning("stopping kafka client: %s", exc)
        self.consumer = self.producer = None

    async def _probe(self, stop: asyncio.Event) -> None:
        """Keep Health.broker honest while the consumer retries quietly inside aiokafka.

        Also keep our topics there: a broker that restarted empty has none, and it may be back
        before any probe saw it gone, so each probe looks for them (in a metadata request for
        all topics, which creates none) rather than only after an outage it noticed.
        """
        topics = {self.pings_topic, self.events_topic, self.dlq_topic}
        while not stop.is_set():
            await sleep_or_stop(stop, PROBE_INTERVAL_S)
            producer = self.producer
            if producer is None:
                continue
            try:
                if not topics <= await asyncio.wait_for(producer.topics(), PROBE_INTERVAL_S):
                    self.health.broker, self.health.error = False, "topics missing (broker restarted empty?)"
                    await self._forget_log()
                    await self.log.ensure_topics()
                self.health.broker = True
                await self._measure_lag()
            except LOG_ERRORS as exc:
                self.health.broker = False
                self.health.error = f"broker unreachable: {type(exc).__name__}"

    async def _measure_lag(self) -> None:
        """Lag per partition: the log's end minus the next offset to process.

        The end is the larger of the last fetch's high watermark (stale while a backlog is
        prefetched) and ListOffsets (Tansu answers it with the last batch's base offset).
        """
        consumer = self.consumer
        if consumer is None or not self.parts:
            return
        partitions = list(self.parts)
        ends: Mapping[int, int]
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(partitions), PROBE_INTERVAL_S)
        except LAG_ERRORS:
            ends = {}
        for p in partitions:
            part = self.parts.get(p)
            end = max(consumer.highwater(p) or 0, ends.get(p, 0))
            if part is not None and end:
                self.metrics.consumer_lag.labels(partition=str(p)).set(max(end - part.next_offset, 0))

    # ------------------------------------------------------------------ fences

    async def load_fences(self, outbox: Outbox | None = None) -> None:
        """Swap in the store's fences if they changed; visits in deleted fences end now."""
        fences, version = await self.store.load_fences()
        if version == self.fence_version:
            return
        self.index = await asyncio.to_thread(FenceIndex, fences, version)  # seconds for big sets: off the loop
        self.fence_version = version
        for part in self.parts.values():
            removed = part.engine.set_index(self.index)
            part.unrecorded += removed
            if outbox is not None:
                outbox.events += removed
        self.metrics.fences_loaded.set(len(fences))
        log.info("fence set version %d: %d fences", version, len(fences))

    async def _fences_changed(self) -> bool:
        """Whether the fence set moved on (checked at most every FENCE_POLL_S)."""
        if time.monotonic() - self.fences_checked < FENCE_POLL_S:
            return False
        self.fences_checked = time.monotonic()
        try:
            return await self.store.fence_version() != self.fence_version
        except STORE_ERRORS as exc:
            log.warning("cannot check for fence changes: %s", exc)
            return False

    # ------------------------------------------------------------------ partitions

    async def adopt(self, partitions: Sequence[int]) -> None:
        """Restore newly assigned partitions from their checkpoints and position the consumer."""
        assert self.consumer is not None
        async with self.lock:
            for p in partitions:
                if p in self.parts:  # kept across a rejoin (e.g. after a broker outage): re-verify
                    part = self.parts[p]
                else:
                    part = await self._restore(p)
                    self.parts[p] = part
                part.expect_last_message()
                self._seek(p, part)
            self.health.assigned = bool(self.parts)
            self.metrics.devices_tracked.set(sum(len(x.engine.devices) for x in self.parts.values()))

    async def _restore(self, p: int) -> Partition:
        cp = await self.store.load_checkpoint(self.group, self.pings_topic, p)
        if cp is None:
            return Partition(Engine(self.index, self.params))
        engine = Engine.restore({**cp.stream, "devices": cp.devices}, self.index, self.params)
        return Partition(engine, cp.next_offset, cp.log_fingerprint, None, cp.next_offset)

    async def release(self, partitions: Sequence[int]) -> None:
        """Checkpoint revoked partitions, then forget them: their next owner restores them."""
        async with self.lock:
            mine = [p for p in partitions if p in self.parts]
            try:
                await self._checkpoint_now(mine)
            finally:
                for p in mine:
                    del self.parts[p]
                self.health.assigned = bool(self.parts)

    # ------------------------------------------------------------------ the loop

    async def _loop(self, stop: asyncio.Event) -> None:
        consumer = self.consumer
        assert consumer is not None
        while not stop.is_set():
            if self.pending is not None:  # a batch whose records the broker has not yet acked
                async with self.lock:
                    await self._produce(self.pending)
                    self.pending = None
            seeks = self.seeks
            polled = await consumer.poll(POLL_TIMEOUT_MS)
            await self.capture.refresh()
            started = time.perf_counter()
            async with self.lock:
                outbox = Outbox()
                now = time.time() if self.wall_clock else None
                for p, records in polled.items():
                    part = self.parts.get(p)
                    if part is None or not records:
                        continue  # revoked while we waited
                    if part.sought > seeks:
                        # Positioned while we polled (adopted: aiokafka fetches from the Kafka-
                        # committed offset until adopt seeks): these records may predate the
                        # seek. Drop them and seek again; aiokafka refetches from there.
                        self._seek(p, part)
                        continue
                    verified = part.verified(records)
                    if verified is None:
                        self._reset_log(p, part, f"found {fingerprint(records[0])}, not {part.fingerprint}")
                    elif verified:
                        self._process(part, verified, now, outbox)
                if now is not None:
                    for part in self.parts.values():
                        ticked = part.engine.advance(now)
                        outbox.events += ticked
                        part.unrecorded += ticked
                if await self._fences_changed():
                    await self.load_fences(outbox)
                self._check_short_logs()
                self.pending = outbox
                await self._produce(outbox)
                self.pending = None
                if polled:
                    self.metrics.batch_seconds.observe(time.perf_counter() - started)
                if self.writing is not None and self.writing.done():
                    await self._written()
                self._start_checkpoint()
            if self.uncommitted:
                commit, self.uncommitted = self.uncommitted, {}
                await self._commit_offsets(commit)

    def _check_short_logs(self) -> None:
        """A log shorter than the checkpoint's offset answers with nothing: detect it by its end."""
        consumer = self.consumer
        assert consumer is not None
        for p, part in self.parts.items():
            if part.verify_at is None:
                continue
            end = consumer.highwater(p)
            if end is not None and end <= part.verify_at:
                self._reset_log(p, part, f"the log ends at {end}")

    def _reset_log(self, p: int, part: Partition, why: str) -> None:
        log.warning(
            "partition %d: the log no longer holds checkpoint offset %d (%s; broker reset?); reading it from the start",
            p,
            part.next_offset,
            why,
        )
        lost = max(self.log_ends.pop(p, 0) - part.next_offset, 0)  # fetched past, never processed
        if lost:
            log.error("partition %d: %d pings in the lost log were never processed: lost", p, lost)
            self.metrics.pings_lost.inc(lost)
        part.restart()
        self._seek(p, part)

    async def _forget_log(self) -> None:
        """The pings topic is gone: its next log starts at 0, wherever we stood in the old one.

        Without this a consumer that kept its assignment would go on fetching at its old
        positions, and skip the start of the new log once that grows past them.
        """
        async with self.lock:
            for p, part in self.parts.items():
                if part.next_offset > 0 or part.verify_at is not None:
                    with contextlib.suppress(NotAssigned):  # being revoked: adopt will verify
                        self._reset_log(p, part, "the topic is gone")

    def _seek(self, p: int, part: Partition) -> None:
        """Position the consumer where the partition reads next: the message to verify, if any."""
        assert self.consumer is not None
        self.seeks += 1
        part.sought = self.seeks
        self.consumer.seek(p, part.position)

    def _process(self, part: Partition, records: Sequence[Message], now: float | None, outbox: Outbox) -> None:
        m = self.metrics
        m.pings_consumed.inc(len(records))
        parsed = self.parse([r.value for r in records])
        for r in parsed.rejects:
            outbox.dlq.append(dlq_record(records[r.index], f"{r.field}: {r.reason}" if r.field else r.reason))
            m.pings_rejected.labels(reason="invalid").inc()
        source = np.delete(np.arange(len(records)), [r.index for r in parsed.rejects])  # message of each ping
        batch = parsed.batch
        unknown = self._unknown_fences(batch.extras)
        if len(unknown):
            for i in unknown.tolist():
                outbox.dlq.append(dlq_record(records[source[i]], unknown_fence(batch.extras[i]["fence_id"])))
            m.pings_rejected.labels(reason="unknown_fence").inc(len(unknown))
            keep = np.setdiff1d(np.arange(len(batch)), unknown)
            batch = batch.take(keep)
            source = source[keep]
        if self.admission is not None:  # a broken clock's pings never move the watermark
            batch, source, refused = self.admission.admit(batch, source, time.time())
            for i, reason in refused:
                outbox.dlq.append(dlq_record(records[i], reason))
                m.pings_rejected.labels(reason=reason).inc()
        part.fixes += self.capture.select(batch)
        result = part.engine.process(batch, now=now)
        for i in result.late.tolist():
            outbox.dlq.append(dlq_record(records[source[i]], "late"))
        m.pings_late.inc(len(result.late))
        m.pings_rejected.labels(reason="late").inc(len(result.late))
        m.pings_duplicate.inc(len(result.duplicate))
        outbox.events += result.events
        part.unrecorded += result.events
        last = records[-1]
        part.consumed(last)
        end = self.consumer.highwater(last.partition) if self.consumer else None
        if end is not None:  # refined by _measure_lag, which also asks the broker for the log's end
            m.consumer_lag.labels(partition=str(last.partition)).set(max(end - part.next_offset, 0))
            self.log_ends[last.partition] = end

    def _unknown_fences(self, extras: np.ndarray) -> np.ndarray:
        """Pings naming a hot spot (fence_id) that does not exist."""
        if not len(extras):
            return np.empty(0, dtype=np.int64)
        return np.array(unknown_fence_rows(extras.tolist(), self.index.position), dtype=np.int64)

    async def _produce(self, outbox: Outbox) -> None:
        """Send events and DLQ records and wait for every ack (step 2 of the commit order)."""
        producer = self.producer
        assert producer is not None
        too_large = await producer.send(outbox.records(self.events_topic, self.dlq_topic))
        if too_large:  # nothing makes them fit later: skipped, said and counted, never retried for ever
            log.error("%d records too large for the broker were skipped (hotspots_records_skipped)", too_large)
            self.metrics.records_skipped.inc(too_large)
        now = time.time()
        for e in outbox.events:
            self.metrics.events.labels(type=e.type.value).inc()
            if e.type is not EventType.SIGNAL_LOST:  # a loss is stamped with the last ping, not a new one
                self.metrics.ping_to_event_seconds.observe(max(now - e.ts, 0.0))

    def _capture(self, partitions: Sequence[int]) -> list[Captured]:
        """Step 3, first half: take what changed in each partition since its last checkpoint.

        Call with the lock held; with a batch pending nothing is taken (what is captured is acked).
        """
        if self.pending is not None:
            return []
        out = []
        for p in partitions:
            part = self.parts[p]
            if part.next_offset == part.checkpointed_offset and not part.engine.dirty and not part.unrecorded:
                continue  # nothing consumed or changed since the last checkpoint
            stream, devices = part.engine.checkpoint()
            cp = Checkpoint(self.group, self.pings_topic, p, part.next_offset, part.fingerprint, stream, devices)
            commit = part.next_offset > 0 and part.next_offset != part.checkpointed_offset
            out.append(Captured(part, cp, part.unrecorded, part.fixes, commit))
            part.unrecorded, part.fixes = [], []
        return out

    async def _write(self, captured: Sequence[Captured]) -> None:
        """Step 3, second half: write the captures in order; one that fails is handed back with the
        rest, to be captured again, with what came since, by the next checkpoint."""
        started = time.perf_counter()
        for i, c in enumerate(captured):
            try:
                await self.capture.save(c.fixes)  # first: a crash before the checkpoint captures them again
                await self.writer.write(c.checkpoint, c.events)
            except BaseException:
                for rest in captured[i:]:
                    self._hand_back(rest)
                raise
            c.part.checkpointed_offset = c.checkpoint.next_offset
            if c.commit:
                self.uncommitted[c.checkpoint.partition] = c.checkpoint.next_offset
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        self.metrics.devices_tracked.set(sum(len(x.engine.devices) for x in self.parts.values()))

    @staticmethod
    def _hand_back(c: Captured) -> None:
        """A capture not written: its devices count as changed again, its events and fixes as unrecorded."""
        engine = c.part.engine
        engine.dirty.update(engine.devices.slots(np.array(list(c.checkpoint.devices), dtype=object)).tolist())
        c.part.unrecorded[:0] = c.events
        c.part.fixes[:0] = c.fixes

    def _start_checkpoint(self) -> None:
        """Every `checkpoint_interval_s` a round: one partition captured at a time (the loop stalls
        for one partition's capture, not all of theirs), written in the background, the next
        captured only once it is written (`_written` collects the outcome): never two at once."""
        if self.writing is not None:
            return
        if not self.to_capture:
            if time.monotonic() - self.last_checkpoint < self.checkpoint_interval_s:
                return
            self.to_capture, self.last_checkpoint = sorted(self.parts, reverse=True), time.monotonic()
        while self.to_capture:
            p = self.to_capture.pop()
            captured = self._capture([p]) if p in self.parts else []
            if captured:
                self.writing = asyncio.create_task(self._write(captured), name="checkpoint")
                return

    async def _written(self) -> None:
        """Wait for the checkpoint in flight, if any; a failure is reported and retried later."""
        task, self.writing = self.writing, None
        if task is None:
            return
        try:
            await task
        except STORE_ERRORS as exc:  # the store is away: keep going, retry later
            self.health.checkpoint_failures += 1
            self.health.error = f"store: {type(exc).__name__}: {exc}"
            log.warning("checkpoint failed, will retry: %s", exc)
        else:
            self.health.checkpoint_failures = 0

    async def _checkpoint_now(self, partitions: Sequence[int]) -> None:
        """Step 3 for partitions let go (revoked, or on shutdown), with the lock held: the write in
        flight, then theirs, both awaited; a failure of theirs is raised."""
        await self._written()
        captured = self._capture(partitions)
        if captured:
            await self._write(captured)

    async def _commit_offsets(self, offsets: dict[int, int]) -> None:
        """Step 4: informational only, for lag tools; the store holds the offsets that count."""
        if self.consumer is None:
            return
        try:
            await asyncio.wait_for(self.consumer.commit(offsets), COMMIT_TIMEOUT_S)
        except LOG_ERRORS as exc:
            log.info("kafka offset commit skipped: %s", exc)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake up at once when the service is asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
