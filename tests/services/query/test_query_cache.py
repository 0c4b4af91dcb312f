"""The API's shared answers: computed once for concurrent callers, reused while the store's
version is unchanged, never served more than 2 x refresh_s stale; presence filters from memory."""

from __future__ import annotations

import asyncio

from support.observations import engine_run, officers, record_all

from services.query.cache import FreshCache
from services.query.presence import PresenceSnapshot
from services.store import Store


class World:
    """A store version and a clock the test moves by hand; counts the computations."""

    def __init__(self) -> None:
        self.version = 1
        self.now = 0.0
        self.computed = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def read_version(self) -> int:
        return self.version

    async def compute(self) -> str:
        await self.gate.wait()
        self.computed += 1
        return f"answer {self.computed} (version {self.version})"

    def cache(self) -> FreshCache[str, str]:
        return FreshCache(self.read_version, refresh_s=0.25, clock=lambda: self.now)


async def test_concurrent_requests_share_one_computation() -> None:
    w = World()
    cache = w.cache()
    w.gate.clear()
    waiting = [asyncio.create_task(cache.get("q", w.compute)) for _ in range(50)]
    await asyncio.sleep(0)
    w.gate.set()
    assert set(await asyncio.gather(*waiting)) == {"answer 1 (version 1)"}
    assert w.computed == 1


async def test_answer_kept_while_version_unchanged_and_recomputed_when_it_moves() -> None:
    w = World()
    cache = w.cache()
    assert await cache.get("q", w.compute) == "answer 1 (version 1)"
    w.now = 1.0  # long past refresh_s: the version is read again, unchanged
    assert await cache.get("q", w.compute) == "answer 1 (version 1)"
    w.version, w.now = 2, 2.0
    assert await cache.get("q", w.compute) == "answer 2 (version 2)"
    assert await cache.get("other", w.compute) == "answer 3 (version 2)"  # each query its own answer


async def test_stale_answer_served_only_within_twice_refresh_while_refreshing() -> None:
    w = World()
    cache = w.cache()
    await cache.get("q", w.compute)
    w.version, w.now = 2, 0.1
    assert await cache.get("q", w.compute) == "answer 1 (version 1)"  # fresh enough: no version read
    w.gate.clear()
    w.now = 0.4  # between refresh_s and 2 x refresh_s: the old answer now, a refresh behind it
    assert await cache.get("q", w.compute) == "answer 1 (version 1)"
    w.now = 0.6  # past 2 x refresh_s: the caller waits for the refresh
    late = asyncio.create_task(cache.get("q", w.compute))
    await asyncio.sleep(0.01)
    assert not late.done()
    w.gate.set()
    assert await late == "answer 2 (version 2)"
    assert w.computed == 2


async def test_presence_snapshot_filters_equal_store_presence_filters(store: Store) -> None:
    await record_all(store, engine_run(officers(), batch_size=5))
    snapshot = PresenceSnapshot.of(await store.presence(), await store.last_event_seq())
    for filters in (
        {},
        {"fence_id": "B"},
        {"device_id": "d2"},
        {"officer_id": "PC2"},
        {"callsign": "Alpha 1", "fence_id": "A"},
        {"callsign": "Alpha 1", "fence_id": "B"},
        {"officer_id": "PC1", "device_id": "d2"},
        {"callsign": "nobody"},
        {"fence_id": "nowhere"},
    ):
        assert snapshot.select(**filters) == await store.presence(**filters), filters
    assert snapshot.devices == ["d1", "d2"]
