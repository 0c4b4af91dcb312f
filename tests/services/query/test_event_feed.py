"""The event feed: one reader of the event log per process, fanned out to every open stream.

Each stream gets every event matching its filters once, in seq order, whether it starts behind
the feed, keeps up with it or falls behind; a slow stream never holds more than its queue; a
revoked key's stream ends; `close()` ends them all. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from support.helpers import fence_a

from geofence.events import Event, EventType
from services.query import feed as feed_module
from services.query.feed import EventFeed, EventFilter, Subscription, TooManyStreams
from services.store import Store

T0 = 1_790_000_000.0
#: Every wait below ends by this deadline: a hung stream fails its test, never stalls the suite.
WAIT_S = 10.0
FAST_POLL_S = 0.02
ANY = EventFilter()


def event(i: int, device: str = "d1", fence: str | None = "A", kind: EventType = EventType.ENTER) -> Event:
    return Event(kind, device, fence, T0 + i, 51.5, -0.1)


async def record(store: Store, *events: Event) -> list[int]:
    """Record the events; their seqs."""
    last = await store.last_event_seq()
    await store.record(list(events), {})
    return [e.seq for e in await store.events_page(after_seq=last, limit=1000)]


async def always() -> bool:
    return True


class CountingStore:
    """The store, counting reads of the event log (the feed's polls and the streams' catch-up)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pages = 0

    async def events_page(self, **kwargs: Any) -> Any:
        self.pages += 1
        return await self.store.events_page(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
async def feed(store: Store) -> AsyncIterator[EventFeed]:
    f = EventFeed(store, max_per_key=3, poll_s=FAST_POLL_S)
    yield f
    await f.stop()


def opened(
    feed: EventFeed, after: int, filters: EventFilter = ANY, key: str = "k1",
    allowed: Callable[[], Awaitable[bool]] = always,
) -> Subscription:  # fmt: skip
    return feed.open(key, after, filters, allowed)


def ids_in(chunk: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"id: (\d+)\nevent: ", chunk)]


async def read_ids(sub: Subscription, n: int) -> list[int]:
    """The seqs of the first n events the stream sends."""
    ids: list[int] = []
    frames = sub.frames()
    try:
        async with asyncio.timeout(WAIT_S):
            async for chunk in frames:
                ids += ids_in(chunk)
                if len(ids) >= n:
                    break
    finally:
        await frames.aclose()
    return ids


async def test_feed_stream_after_a_seq_gets_the_stored_events_in_pages_then_the_new_ones(
    store: Store, feed: EventFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "PAGE", 2)  # the catch-up reads several pages
    stored = await record(store, *(event(i) for i in range(6)))
    reading = asyncio.create_task(read_ids(opened(feed, after=stored[0]), 6))
    await asyncio.sleep(0.3)  # caught up, waiting on the feed
    new = await record(store, event(10))
    assert await reading == stored[1:] + new


async def test_feed_streams_share_one_poll_of_the_store(store: Store) -> None:
    counting = CountingStore(store)
    feed = EventFeed(counting, max_per_key=100, poll_s=0.1)  # type: ignore[arg-type]
    try:
        readers = [asyncio.create_task(read_ids(opened(feed, 0, key=f"k{i}"), 1)) for i in range(40)]
        await asyncio.sleep(0.3)
        before = counting.pages
        await asyncio.sleep(1.0)  # about ten polls
        polls = counting.pages - before
        seq = await record(store, event(1))
        assert [await r for r in readers] == [seq] * 40
    finally:
        await feed.stop()
    assert polls <= 15, f"{polls} reads of the event log in 1 s for 40 streams: one poller makes ~10"


async def test_feed_stops_polling_when_the_last_stream_closes(store: Store) -> None:
    counting = CountingStore(store)
    feed = EventFeed(counting, max_per_key=3, poll_s=FAST_POLL_S)  # type: ignore[arg-type]
    seq = await record(store, event(1))
    assert await read_ids(opened(feed, 0), 1) == seq
    await asyncio.sleep(0.2)
    before = counting.pages
    await asyncio.sleep(0.3)
    assert counting.pages == before


async def test_feed_slow_stream_holds_at_most_its_queue_then_catches_up_without_a_gap(store: Store) -> None:
    feed = EventFeed(store, max_per_key=3, poll_s=FAST_POLL_S, queue_max=5)
    try:
        sub = opened(feed, after=0)
        frames = sub.frames()
        async with asyncio.timeout(WAIT_S):
            await anext(frames)  # where it starts
            first = asyncio.create_task(anext(frames))
            await asyncio.sleep(0.2)  # joined the feed
            sent = await record(store, event(0))
            got = ids_in(await first)  # ...and now the client reads no more for a while
            for i in range(1, 5):
                sent += await record(store, *(event(10 * i + j) for j in range(4)))
                await asyncio.sleep(0.1)  # one poll each: 16 events for a queue of 5
                assert sub.queued <= 5
            assert not sub.joined, "dropped from the fan-out once its queue overflowed"
            while len(got) < len(sent):
                got += ids_in(await anext(frames))
        assert got == sent
    finally:
        await frames.aclose()
        await feed.stop()


async def test_feed_streams_get_only_the_events_their_filters_match(store: Store, feed: EventFeed) -> None:
    wanted = {
        "fence B": EventFilter(fence_id="B"),
        "device d2": EventFilter(device_id="d2"),
        "losses": EventFilter(types=frozenset({"signal_lost"})),
    }
    readers = {name: asyncio.create_task(read_ids(opened(feed, 0, f, key=name), 1)) for name, f in wanted.items()}
    await asyncio.sleep(0.2)
    seqs = await record(
        store, event(1, "d1", "A"), event(2, "d1", "B"), event(3, "d2", "A"),
        event(4, "d3", None, EventType.SIGNAL_LOST),
    )  # fmt: skip
    got = {name: await r for name, r in readers.items()}
    assert got == {"fence B": [seqs[1]], "device d2": [seqs[2]], "losses": [seqs[3]]}


async def test_feed_refuses_a_key_past_its_cap_until_one_of_its_streams_closes(feed: EventFeed) -> None:
    subs = [opened(feed, 0) for _ in range(3)]
    with pytest.raises(TooManyStreams, match="3 open event streams"):
        opened(feed, 0)
    opened(feed, 0, key="another key").close()
    subs[0].close()
    subs[0].close()  # twice gives back one slot only
    opened(feed, 0)
    with pytest.raises(TooManyStreams):
        opened(feed, 0)


async def test_feed_stream_ends_once_its_key_is_revoked(
    store: Store, feed: EventFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "RECHECK_S", 0.1)
    valid = True

    async def allowed() -> bool:
        return valid

    reading = asyncio.create_task(read_ids(opened(feed, 0, allowed=allowed), 2))
    await asyncio.sleep(0.2)
    seq = await record(store, event(1))
    await asyncio.sleep(0.3)
    valid = False
    await asyncio.sleep(0.3)  # past the recheck
    assert reading.done(), "the stream ended within RECHECK_S of the revoke"
    await record(store, event(2))
    assert await reading == seq
    for _ in range(3):
        opened(feed, 0)  # its slot is free again


async def test_feed_close_ends_every_stream_at_once(feed: EventFeed) -> None:
    readers = [asyncio.create_task(read_ids(opened(feed, 0), 1)) for _ in range(3)]
    await asyncio.sleep(0.2)
    feed.close()
    assert await asyncio.wait_for(asyncio.gather(*readers), 1.0) == [[], [], []]


async def test_feed_stream_says_when_the_fence_version_moves(
    store: Store, feed: EventFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "FENCE_CHECK_S", 0.05)
    frames = opened(feed, 0).frames()
    try:
        async with asyncio.timeout(WAIT_S):
            await anext(frames)
            before = await anext(frames)
            version = await store.upsert_fences([fence_a()])
            after = await anext(frames)
    finally:
        await frames.aclose()
    assert before == b'event: fences\ndata: {"fence_version":%d}\n\n' % (version - 1)
    assert after == b'event: fences\ndata: {"fence_version":%d}\n\n' % version
