"""The live event feed: one poller per process fans the event log out to every open stream.

Each open `GET /v1/events/stream` used to poll the store by itself, four times a second: 200
streams took a core. Now one task per process reads the events after the last seq it has seen
(every POLL_S, as that loop did) and hands every subscription the ones matching its filters,
serialised once, through a queue of at most QUEUE_MAX events. A subscription that starts behind
the feed (Last-Event-ID, `after=`) reads the gap from the store itself, then takes from its
queue; one whose queue overflows (a client reading slower than events come) is dropped from the
fan-out and catches up from the store the same way, at its own pace. So memory per stream is
bounded and each stream gets every matching event once, in seq order (the store makes seqs
visible in commit order, so paging by seq skips none).

The feed runs while someone subscribes; every FENCE_CHECK_S it also reads the fence-set version
and each stream says when it moves (`event: fences`), so a page reloads its hot spots. Each
stream re-checks its key every RECHECK_S and ends once it is revoked. `close()` (at stop) ends
every stream at once, so the server's graceful shutdown need not wait for them.

Counts are per process: with `api_workers` > 1 each API process has its own feed and cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import orjson

from services.query.attribution import attributed_events
from services.store import Store, StoredEvent

log = logging.getLogger(__name__)

#: How often the feed looks for new events: well under the 2 s a control room notices.
POLL_S = 0.25
#: Events read per query at most; a stream catching up gets them in pages.
PAGE = 500
#: Events waiting for one stream at most; beyond, it catches up from the store instead.
QUEUE_MAX = 2_000
#: How often a stream re-checks its key: a revoked key's stream ends within this (plus the key cache).
RECHECK_S = 2.0
#: How often the feed reads the fence-set version (as often as matchers do).
FENCE_CHECK_S = 2.0
#: Longest pause after the store failed a read; the feed retries, streams stay open meanwhile.
RETRY_MAX_S = 5.0
#: The client's reconnection delay (ms), sent first on every stream.
RETRY_MS = 1000


class TooManyStreams(Exception):
    """The key already holds `max_streams_per_key` open streams in this process."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a stream wants; None matches any. `officer_id` keeps an officer key's stream to
    the events naming that officer (server-side: the client cannot widen it)."""

    types: frozenset[str] | None = None
    fence_id: str | None = None
    device_id: str | None = None
    officer_id: str | None = None

    def matches(self, e: StoredEvent) -> bool:
        return (
            (self.types is None or e.type in self.types)
            and (self.fence_id is None or e.fence_id == self.fence_id)
            and (self.device_id is None or e.device_id == self.device_id)
            and (self.officer_id is None or e.officer_id == self.officer_id)
        )


def frame(e: StoredEvent) -> bytes:
    """An event as one Server-Sent Events message; its id is the seq a client resumes after."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (e.seq, e.type.encode(), orjson.dumps(e.body))


def fences_frame(version: int) -> bytes:
    """The fence-set version, without an id (it moves no client's resume point)."""
    return b"event: fences\ndata: %s\n\n" % orjson.dumps({"fence_version": version})


class Subscription:
    """One open stream: its filters, the seq it has reached, and the events handed to it not yet sent."""

    def __init__(
        self, feed: EventFeed, key_id: str, after: int, filters: EventFilter, allowed: Callable[[], Awaitable[bool]]
    ) -> None:
        self.key_id = key_id
        self.filters = filters
        self.last = after
        self.joined = False  # in the feed's fan-out (else: catching up from the store)
        self._feed = feed
        self._allowed = allowed
        self._pending: list[tuple[int, bytes]] = []
        self._wake = asyncio.Event()
        self._recheck = time.monotonic() + RECHECK_S
        self._closed = False

    def offer(self, items: list[tuple[int, bytes]]) -> bool:
        """Queue (seq, frame) pairs from the feed; False (queue cleared) when they would not fit."""
        if len(self._pending) + len(items) > self._feed.queue_max:
            self._pending.clear()
            self.joined = False
            self._wake.set()
            return False
        self._pending += items
        self._wake.set()
        return True

    @property
    def queued(self) -> int:
        """Events handed to this stream and not yet sent (never more than the feed's queue_max)."""
        return len(self._pending)

    def wake(self) -> None:
        self._wake.set()

    async def frames(self) -> AsyncIterator[bytes]:
        """The stream's body: where it starts, then the events after it, until revoked or closed."""
        try:
            # Reconnect after a second, with Last-Event-ID: the id here is where this stream starts, so
            # a client that got no event before a drop still resumes without a gap.
            yield b"retry: %d\nid: %d\n\n" % (RETRY_MS, self.last)
            feed, fence_version = self._feed, None
            while not feed.closed and not await self._revoked():
                if not self.joined:
                    async with contextlib.aclosing(self._catch_up()) as chunks:
                        async for chunk in chunks:
                            yield chunk
                elif self._pending:
                    ready = [f for seq, f in self._pending if seq > self.last]
                    self.last = max(self.last, self._pending[-1][0])
                    self._pending.clear()
                    if ready:
                        yield b"".join(ready)
                elif feed.fence_version is not None and fence_version != feed.fence_version:
                    fence_version = feed.fence_version
                    yield fences_frame(fence_version)
                else:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), max(self._recheck - time.monotonic(), 0.0))
        finally:
            self.close()

    async def _revoked(self) -> bool:
        """Whether the key was revoked, asked at most every RECHECK_S."""
        if time.monotonic() < self._recheck:
            return False
        if not await self._allowed():
            return True
        self._recheck = time.monotonic() + RECHECK_S
        return False

    async def _catch_up(self) -> AsyncGenerator[bytes, None]:
        """Join the fan-out, then read from the store what came before the feed's position."""
        upto = await self._feed.join(self)
        f = self.filters
        types = None if f.types is None else sorted(f.types)
        while self.last < upto and not self._feed.closed and not await self._revoked():
            # The officer filter is applied after attribution: a radio's events name its officer only then.
            page = await self._feed.store.events_page(
                types=types, fence_id=f.fence_id, device_id=f.device_id, after_seq=self.last, limit=PAGE
            )
            rows = await attributed_events(self._feed.store, page)
            upto_rows = [r for r in rows if r.seq <= upto]
            if upto_rows:
                self.last = upto_rows[-1].seq
                shown = [r for r in upto_rows if f.officer_id is None or r.officer_id == f.officer_id]
                if shown:
                    yield b"".join(frame(r) for r in shown)
            if len(upto_rows) < PAGE:
                self.last = max(self.last, upto)  # none left that matches up to the feed's position

    def close(self) -> None:
        """Leave the feed and give the key's slot back; safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._feed.leave(self)


class EventFeed:
    """The process's one reader of the event log and its subscriptions; see the module docstring."""

    def __init__(self, store: Store, max_per_key: int, poll_s: float = POLL_S, queue_max: int = QUEUE_MAX) -> None:
        self.store = store
        self.max_per_key = max_per_key
        self.poll_s = poll_s
        self.queue_max = queue_max
        self.fence_version: int | None = None
        self.closed = False
        self._subs: set[Subscription] = set()
        self._open: Counter[str] = Counter()
        self._cursor = 0  # seq of the last event handed out
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._stop = asyncio.Event()

    def open(
        self, key_id: str, after: int, filters: EventFilter, allowed: Callable[[], Awaitable[bool]]
    ) -> Subscription:
        """A stream for key_id of the events after `after`; TooManyStreams at the key's cap.

        `allowed` says whether the key may still read (checked every RECHECK_S). The caller
        iterates `frames()`, which ends by closing the subscription; `close()` it if it never does.
        """
        if self._open[key_id] >= self.max_per_key:
            raise TooManyStreams(f"this key already has {self.max_per_key} open event streams")
        self._open[key_id] += 1
        return Subscription(self, key_id, after, filters, allowed)

    async def latest(self) -> int:
        """Where a stream without a cursor starts: the newest event now."""
        return self._cursor if self._task is not None else await self.store.last_event_seq()

    async def join(self, sub: Subscription) -> int:
        """Add sub to the fan-out (starting the feed if idle); the seq from which its queue is fed."""
        if self._task is None:
            async with self._starting:
                if self._task is None and not self.closed:
                    self._cursor = await self.store.last_event_seq()
                    self.fence_version = await self.store.fence_version()
                    self._task = asyncio.create_task(self._run(), name="event-feed")
        if not self.closed:  # nothing awaited since the check: the feed runs, and sees sub at its next poll
            self._subs.add(sub)
            sub.joined = True
        return self._cursor

    def leave(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        self._open[sub.key_id] -= 1
        if self._open[sub.key_id] <= 0:
            del self._open[sub.key_id]

    def close(self) -> None:
        """End every stream now and stop polling (at service stop)."""
        self.closed = True
        self._stop.set()
        for sub in self._subs:
            sub.wake()
        self._subs.clear()

    async def stop(self) -> None:
        """`close`, then wait for the poller to finish its read: the store may be closed after this
        (a read cut off by a closing store or event loop would leave its connection checked out)."""
        self.close()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        fences_due, failures = 0.0, 0
        while self._subs and not self.closed:
            try:
                if time.monotonic() >= fences_due:
                    self._fences_moved(await self.store.fence_version())
                    fences_due = time.monotonic() + FENCE_CHECK_S
                page = await self.store.events_page(after_seq=self._cursor, limit=PAGE)
                rows = await attributed_events(self.store, page)
            except Exception as exc:  # the store is away: streams stay open, the feed retries
                failures += 1
                if failures == 1:
                    log.warning("event feed: reading the store failed (%r); retrying", exc)
                await self._pause(min(self.poll_s * 2**failures, RETRY_MAX_S))
                continue
            failures = 0
            if rows:
                self._cursor = rows[-1].seq
                self._fan_out(rows)
            if len(rows) < PAGE:
                await self._pause(self.poll_s)
        self._task = None  # checked and cleared with no await between: join() restarts it

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _fences_moved(self, version: int) -> None:
        if version != self.fence_version:
            self.fence_version = version
            for sub in self._subs:
                sub.wake()

    def _fan_out(self, rows: Iterable[StoredEvent]) -> None:
        """Each subscription's matching events, filtered once per distinct filter, serialised once."""
        items = [(r, r.seq, frame(r)) for r in rows]
        by_filter: dict[EventFilter, list[tuple[int, bytes]]] = {}
        for sub in list(self._subs):
            wanted = by_filter.get(sub.filters)
            if wanted is None:
                wanted = by_filter[sub.filters] = [(seq, f) for r, seq, f in items if sub.filters.matches(r)]
            if wanted and not sub.offer(wanted):
                self._subs.discard(sub)  # it reads the store until it is level again
