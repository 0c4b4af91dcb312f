"""The matcher's commit order (services/pipeline/matcher.py) under failure, in-process.

Matchers run on the in-memory twins of the log and the store (services/pipeline/memory.py), so
each failure happens exactly where the test puts it: a send refused, a checkpoint refused, a
partition revoked while a batch is in flight, a broker that comes back with a new log. Each
test holds the outcome against an uninterrupted run over the same pings: the same events (once
each, after dropping repeated event_ids where the contract allows repeats), the same recorded
events, and the same engine state in the last checkpoint.

The pings are a simulated patrol (services.workload) with radio gaps, so the events include
visits, signal losses and restorations; event time alone drives the watermark.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from support.memory_matcher import DLQ, EVENTS, GROUP, PINGS, memory_matcher
from support.pipeline import assert_same_events, first_of_each_id, poll_until

from ingest.geojson_fences import fences_from_geojson
from services.pipeline.matcher import Matcher
from services.pipeline.memory import MemoryLog, MemoryStore
from services.pipeline.partition import fingerprint
from services.pipeline.writer import ThreadWriter
from services.store import Checkpoint, Observations
from services.workload import make_workload

PARTITIONS = 2
#: Longest wait for a matcher to get somewhere: a batch in memory takes milliseconds, so this
#: only keeps a broken test from hanging.
DEADLINE_S = 10.0
#: A checkpoint interval no test reaches: checkpoints are then written on revocation and shutdown only.
NEVER_S = 3600.0

WORKLOAD = make_workload(8, 6, 3 * 3600.0, seed=11, gaps_per_hour=1.0)
FENCES = fences_from_geojson(WORKLOAD.fences)
#: (key, value) of every ping message, in stream order.
MESSAGES = [
    (device.encode(), orjson.dumps({"device_id": device, "ts": ts, "lat": lat, "lon": lon, "accuracy_m": acc}))
    for device, ts, lat, lon, acc in zip(
        WORKLOAD.pings.device_id.tolist(),
        WORKLOAD.pings.ts.tolist(),
        WORKLOAD.pings.lat.tolist(),
        WORKLOAD.pings.lon.tolist(),
        WORKLOAD.pings.accuracy_m.tolist(),
        strict=True,
    )
]
HALF = len(MESSAGES) // 2


def new_log(messages: Sequence[tuple[bytes, bytes]] = ()) -> MemoryLog:
    log = MemoryLog({PINGS: PARTITIONS, EVENTS: PARTITIONS, DLQ: PARTITIONS})
    append(log, messages)
    return log


def append(log: MemoryLog, messages: Sequence[tuple[bytes, bytes]]) -> None:
    for key, value in messages:
        log.append(PINGS, key, value)


def start(matcher: Matcher) -> Callable[[], Awaitable[None]]:
    """Run the matcher's loop; the function returned stops it (with its final checkpoint)."""
    stop = asyncio.Event()
    task = asyncio.create_task(matcher.run(stop))

    async def stopped() -> None:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)

    return stopped


@asynccontextmanager
async def running(matcher: Matcher) -> AsyncIterator[Matcher]:
    """The matcher running for the block."""
    stop = start(matcher)
    try:
        yield matcher
    finally:
        await stop()


def checkpointed(log: MemoryLog, store: MemoryStore) -> bool:
    """Every partition's checkpoint stands after the last message of its log as it is now."""
    for p in range(PARTITIONS):
        cp = store.checkpoints.get((GROUP, PINGS, p))
        last = log.topics[PINGS][p][-1:]
        if cp is None or not last or cp.log_fingerprint != fingerprint(last[0]):
            return False
    return True


async def until_checkpointed(log: MemoryLog, store: MemoryStore) -> None:
    await poll_until(lambda: checkpointed(log, store), "every partition checkpointed", DEADLINE_S)


async def until_committed(log: MemoryLog, store: MemoryStore) -> None:
    """Kafka's offsets (step 4, after the checkpoint's write) have caught up with the store's."""
    expected = {(GROUP, PINGS, p): offset for p, offset in offsets(store).items()}
    await poll_until(lambda: log.committed == expected, "the offsets committed to Kafka", DEADLINE_S)


def offsets(store: MemoryStore) -> dict[int, int]:
    return {cp.partition: cp.next_offset for cp in store.checkpoints.values()}


def events(log: MemoryLog) -> list[dict[str, Any]]:
    return [orjson.loads(m.value or b"") for m in log.messages(EVENTS)]


def consumed(matcher: Matcher) -> float:
    return matcher.metrics.registry.get_sample_value("hotspots_pings_consumed_total") or 0.0


def engine_state(store: MemoryStore) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """Each partition's checkpointed engine: the stream state and every device."""
    return {cp.partition: (cp.stream, cp.devices) for cp in store.checkpoints.values()}


@dataclass(frozen=True)
class Outcome:
    events: list[dict[str, Any]]
    store: MemoryStore


async def uninterrupted() -> Outcome:
    """One matcher, nothing failing, over every ping."""
    log, store = new_log(MESSAGES), MemoryStore(FENCES)
    async with running(memory_matcher(log, store)):
        await until_checkpointed(log, store)
    return Outcome(events(log), store)


async def test_uninterrupted_run_has_every_kind_of_event_and_no_repeats() -> None:
    """The reference run is worth comparing against: visits, losses and restorations, each once."""
    expected = await uninterrupted()
    ids = [e["event_id"] for e in expected.events]
    assert len(ids) == len(set(ids)) == len(expected.store.events)
    assert {e["type"] for e in expected.events} == {"enter", "exit", "signal_lost", "signal_restored"}
    assert {cp.partition for cp in expected.store.checkpoints.values()} == set(range(PARTITIONS))


@pytest.mark.parametrize("recovery", ["retried", "restarted", "revoked"])
async def test_matcher_produce_fails_nothing_checkpointed_then_same_event_ids_again(recovery: str) -> None:
    """Sends refused halfway through a batch: no checkpoint, no offset commit, not even when the
    partitions are revoked meanwhile. Retried in the same process, or by the next owner of the
    partitions (which resumes from the last checkpoint), the batch's events are produced again
    with the same event_ids, so a consumer dropping repeats sees one uninterrupted run."""
    expected = await uninterrupted()
    log, store = new_log(MESSAGES[:HALF]), MemoryStore(FENCES)
    first = memory_matcher(log, store)
    stop_first = start(first)
    await until_checkpointed(log, store)
    before, committed = offsets(store), dict(log.committed)
    log.refusing = True
    append(log, MESSAGES[HALF:])
    await poll_until(lambda: first.health.error is not None, "a refused send", DEADLINE_S)
    assert "refused" in str(first.health.error)
    assert offsets(store) == before and log.committed == committed
    if recovery == "retried":
        log.refusing = False
        await until_checkpointed(log, store)
        await stop_first()
    elif recovery == "restarted":
        await stop_first()  # its batch still unacknowledged: the final checkpoint is skipped
        assert offsets(store) == before
        log.refusing = False
        async with running(memory_matcher(log, store)):
            await until_checkpointed(log, store)
    else:
        second = memory_matcher(log, store)
        async with running(second):
            await poll_until(lambda: bool(second.parts), "the second matcher to take partitions", DEADLINE_S)
            await stop_first()  # its batch still unacknowledged; the second takes every partition
            assert offsets(store) == before
            log.refusing = False
            await until_checkpointed(log, store)
    produced = events(log)
    assert len(produced) > len({e["event_id"] for e in produced})  # some were produced twice
    assert_same_events(first_of_each_id(produced), expected.events)
    assert store.events == expected.store.events
    assert engine_state(store) == engine_state(expected.store)


async def test_matcher_checkpoint_fails_offsets_not_committed_then_retried_nothing_lost() -> None:
    """The store refuses checkpoints while the batches go on: events are produced, but no offset
    moves, in the store or in Kafka; once the store is back the next checkpoint writes what the
    failed ones held, so the store ends as after an uninterrupted run."""
    expected = await uninterrupted()
    log, store = new_log(MESSAGES[:HALF]), MemoryStore(FENCES)
    async with running(memory_matcher(log, store)) as matcher:
        await until_checkpointed(log, store)
        await until_committed(log, store)
        before, committed = offsets(store), dict(log.committed)
        store.refusing = True
        append(log, MESSAGES[HALF:])
        await poll_until(lambda: len(events(log)) == len(expected.events), "every event produced", DEADLINE_S)
        await poll_until(lambda: str(matcher.health.error).startswith("store:"), "a refused checkpoint", DEADLINE_S)
        assert offsets(store) == before and log.committed == committed
        store.refusing = False
        await until_checkpointed(log, store)
    assert_same_events(events(log), expected.events)  # once each: production never failed
    assert store.events == expected.store.events
    assert store.devices == expected.store.devices
    assert store.checkpoints == expected.store.checkpoints
    assert log.committed == {(GROUP, PINGS, p): log.end(PINGS, p) for p in range(PARTITIONS)}


async def test_matcher_partition_revoked_mid_batch_new_owner_continues_same_events() -> None:
    """A second matcher joins while the first has a batch in flight (sent, not yet acknowledged),
    checkpointing only on revocation and shutdown: the revocation waits for that batch, then
    checkpoints the partitions, and the new owners resume from there, so the two matchers give
    the uninterrupted run's events, each ping processed once."""
    expected = await uninterrupted()
    log, store = new_log(MESSAGES), MemoryStore(FENCES)
    log.acks.clear()
    first, second = (
        memory_matcher(log, store, checkpoint_interval_s=NEVER_S),
        memory_matcher(log, store, checkpoint_interval_s=NEVER_S),
    )
    async with running(first):
        await poll_until(lambda: first.pending is not None, "a batch in flight", DEADLINE_S)
        async with running(second):
            await poll_until(lambda: log.generation(GROUP) == 2, "the rebalance to begin", DEADLINE_S)
            assert first.pending is not None and not store.checkpoints
            log.acks.set()
            await poll_until(lambda: bool(second.parts), "the second matcher to take partitions", DEADLINE_S)
            handed_over = offsets(store)
            assert sorted(first.parts) == [0] and sorted(second.parts) == [1]
            assert 0 < handed_over[1] < log.end(PINGS, 1)
            await poll_until(lambda: len(events(log)) >= len(expected.events), "every event", DEADLINE_S)
    assert consumed(second) > 0
    assert consumed(first) + consumed(second) == len(MESSAGES)
    assert_same_events(events(log), expected.events)
    assert store.events == expected.store.events
    assert store.checkpoints == expected.store.checkpoints


@pytest.mark.parametrize("new_log_is", ["shorter", "different"])
async def test_matcher_log_reset_reads_new_log_from_start_engine_state_kept(new_log_is: str) -> None:
    """The broker comes back empty and is written again (a memory-only broker's restart): the
    checkpoint's offset is past the new log's end, or holds another message. The matcher reads
    each partition from its beginning with the engine state kept, so the result is that of one
    log holding the old messages, then the new."""
    expected = await uninterrupted()
    split = 2 * len(MESSAGES) // 3 if new_log_is == "shorter" else len(MESSAGES) // 3
    log, store = new_log(MESSAGES[:split]), MemoryStore(FENCES)
    async with running(memory_matcher(log, store)):
        await until_checkpointed(log, store)
    before = events(log)
    old_ends = offsets(store)
    log.restart()
    append(log, MESSAGES[split:])
    new_ends = {p: log.end(PINGS, p) for p in range(PARTITIONS)}
    if new_log_is == "shorter":
        assert all(new_ends[p] < old_ends[p] for p in range(PARTITIONS))
    else:
        assert all(new_ends[p] > old_ends[p] for p in range(PARTITIONS))
    async with running(memory_matcher(log, store)):
        await until_checkpointed(log, store)
    assert offsets(store) == new_ends
    assert_same_events(before + events(log), expected.events)
    assert store.events == expected.store.events
    assert engine_state(store) == engine_state(expected.store)


class GatedStore(MemoryStore):
    """A store whose checkpoints wait at a gate (a slow database), counting how many are in flight."""

    def __init__(self, fail_first: bool) -> None:
        super().__init__(FENCES)
        self.gate = threading.Event()
        self.fail_first = fail_first
        self.in_flight = self.most_in_flight = self.saves = 0

    async def save_checkpoint(self, cp: Checkpoint, observations: Observations | None = None) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.to_thread(self.gate.wait, DEADLINE_S)  # another could run meanwhile, if one were begun
            self.saves += 1
            if self.fail_first and self.saves == 1:
                raise ConnectionError("the store refused the checkpoint")
            await super().save_checkpoint(cp, observations)
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("fail_first", [False, True], ids=["written", "refused"])
async def test_matcher_checkpoint_write_slow_consumes_meanwhile_one_checkpoint_at_a_time(fail_first: bool) -> None:
    """A checkpoint written on the writer's thread takes long: the matcher goes on consuming and
    producing every event meanwhile, begins no second checkpoint while one is in flight, and, once
    the write ends (or fails and is retried), the store holds what an uninterrupted run's does."""
    expected = await uninterrupted()
    log, store = new_log(MESSAGES[:HALF]), GatedStore(fail_first)

    @asynccontextmanager
    async def handle() -> AsyncIterator[MemoryStore]:
        yield store

    matcher = memory_matcher(log, store, writer=ThreadWriter(handle))
    async with running(matcher):
        await poll_until(lambda: store.in_flight == 1, "a checkpoint in flight", DEADLINE_S)
        append(log, MESSAGES[HALF:])
        await poll_until(lambda: consumed(matcher) == len(MESSAGES), "every ping consumed", DEADLINE_S)
        await poll_until(lambda: len(events(log)) == len(expected.events), "every event produced", DEADLINE_S)
        assert not store.checkpoints and store.most_in_flight == 1
        store.gate.set()
        await until_checkpointed(log, store)
    assert store.most_in_flight == 1
    assert_same_events(events(log), expected.events)
    assert store.events == expected.store.events
    assert store.devices == expected.store.devices
    assert engine_state(store) == engine_state(expected.store)
