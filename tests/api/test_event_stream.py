"""GET /v1/events/stream over a real HTTP server: resumable from a snapshot's seq, capped per key,
closed for a revoked key, ended at once when the service stops.

The presence and devices answers carry the seq of the newest event they reflect; a client that
opens the stream after it misses no event recorded between the snapshot and the stream (the
control-room page did: it read a cached snapshot, then opened the stream at the newest event).
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from support.api import serve_on_port

from api.context import ServiceContext
from geofence.events import Event, EventType
from services.access.keys import create_key, revoke_key
from services.access.roles import Role
from services.metrics import Metrics
from services.settings import Settings
from services.store import DeviceNow, Store

T0 = 1_790_000_000.0
#: Every wait here ends by this deadline: a hung stream or server fails its test, never stalls it.
WAIT_S = 10.0
#: A revoked key's stream ends within the key cache (1 s) plus the stream's recheck (2 s), and a poll.
REVOKED_WITHIN_S = 4.0


@dataclass
class Served:
    url: str
    ctx: ServiceContext
    viewer: dict[str, str]
    viewer_token: str


def enter(i: int, device: str, fence: str = "A") -> Event:
    return Event(EventType.ENTER, device, fence, T0 + i, 51.5, -0.1)


def inside(device: str, i: int, fence: str = "A") -> dict[str, DeviceNow]:
    now = DeviceNow(T0, T0 + i, 51.5, -0.1, None, False, None, None, None, {fence: T0 + i})
    return {device: now}


@pytest.fixture
async def served(db_url: str) -> AsyncIterator[Served]:
    token = await create_key(db_url, Role.VIEWER, "control room")
    store = await Store.open(db_url)
    ctx = ServiceContext(Settings(max_streams_per_key=2), store, Metrics())
    try:
        async with serve_on_port(ctx, WAIT_S) as url:
            yield Served(url, ctx, {"authorization": f"Bearer {token}"}, token)
    finally:
        await ctx.feed.stop()
        await store.close()


async def events_of(lines: AsyncIterator[str], n: int) -> list[dict[str, object]]:
    """The first n events of an open stream (with their seq); other messages (fence version) skipped."""
    out: list[dict[str, object]] = []
    seq, kind = None, None
    async with asyncio.timeout(WAIT_S):
        async for line in lines:
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind != "fences":
                out.append({**orjson.loads(line[6:]), "seq": seq})
                if len(out) == n:
                    break
    return out


async def test_stream_after_the_presence_seq_delivers_an_event_recorded_after_the_snapshot(served: Served) -> None:
    store = served.ctx.store
    await store.record([enter(1, "d1")], inside("d1", 1))
    async with httpx.AsyncClient(base_url=served.url, headers=served.viewer, timeout=WAIT_S) as client:
        presence = (await client.get("/v1/presence")).json()
        devices = (await client.get("/v1/presence/devices")).json()
        # After the snapshot, before the stream opens: the page must still get this ENTER.
        await store.record([enter(2, "d2")], inside("d2", 2))
        latest = await store.last_event_seq()
        again = (await client.get("/v1/presence")).json()  # within the cache's refresh: the same snapshot
        assert presence["seq"] == devices["seq"] == again["seq"] == latest - 1
        assert [d["device_id"] for f in again["fences"] for d in f["devices"]] == ["d1"]
        async with client.stream("GET", "/v1/events/stream", params={"after": presence["seq"]}) as response:
            got = await events_of(response.aiter_lines(), 1)
    assert [(e["device_id"], e["seq"]) for e in got] == [("d2", latest)]


async def test_stream_beyond_the_keys_cap_answers_429_until_one_closes(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, headers=served.viewer, timeout=WAIT_S) as client:
        async with client.stream("GET", "/v1/events/stream") as one, client.stream("GET", "/v1/events/stream") as two:
            assert one.status_code == two.status_code == 200
            refused = await client.get("/v1/events/stream")
        assert refused.status_code == 429
        assert refused.json() == {"detail": "this key already has 2 open event streams"}
        deadline = time.monotonic() + WAIT_S
        while True:
            async with client.stream("GET", "/v1/events/stream") as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "the closed streams' slots never came back"
            await asyncio.sleep(0.05)  # the server has yet to notice the closed connections


async def test_stream_of_a_revoked_key_ends_within_seconds(served: Served, db_url: str) -> None:
    store = served.ctx.store
    async with (
        httpx.AsyncClient(base_url=served.url, headers=served.viewer, timeout=WAIT_S) as client,
        client.stream("GET", "/v1/events/stream") as response,
    ):
        await store.record([enter(1, "d1")], inside("d1", 1))
        lines = response.aiter_lines()
        assert [e["device_id"] for e in await events_of(lines, 1)] == ["d1"]
        key_id = served.viewer_token.split("_")[1]
        assert await revoke_key(db_url, key_id)  # by another process: `hotspots keys revoke`
        revoked = time.monotonic()
        async with asyncio.timeout(WAIT_S):
            rest = [line async for line in lines]
        ended_after = time.monotonic() - revoked
    assert ended_after < REVOKED_WITHIN_S
    assert not any(line.startswith("data: ") for line in rest)


async def test_stream_ends_at_once_when_the_service_stops(served: Served) -> None:
    async with (
        httpx.AsyncClient(base_url=served.url, headers=served.viewer, timeout=WAIT_S) as client,
        client.stream("GET", "/v1/events/stream") as response,
    ):
        lines = response.aiter_lines()
        assert await anext(lines) == "retry: 1000"
        stopping = time.monotonic()
        served.ctx.feed.close()
        async with asyncio.timeout(WAIT_S):
            _ = [line async for line in lines]
        ended_after = time.monotonic() - stopping
    assert ended_after < 1.0, "well within the server's 2 s grace: a stop still checkpoints"
