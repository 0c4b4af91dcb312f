"""Query answers computed once, shared by concurrent requests and reused until the store changes.

Dashboards ask the same questions many times a second (who is in which hot spot, this week's
dwell per hot spot), and the matcher changes the answers a few times a second at most. So an
answer is kept per query with the store's version (`query_state.version`, bumped by every write
of observations), and at most every `refresh_s` the version is read again: unchanged, the answer
stands; changed, it is computed again, once, however many requests are waiting.

Staleness bound: an answer reflects every write committed `2 * refresh_s` before the request
(and usually `refresh_s`): an answer older than `refresh_s` is still served while one refresh
runs in the background, one older than `2 * refresh_s` is never served, the request waits for
the refresh. Each answer is computed from one transaction, so it is consistent with the events
as of one commit.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Bodies smaller than this are not worth compressing.
MIN_GZIP_BYTES = 1024


@dataclass(frozen=True, slots=True)
class JsonBody:
    """A serialised answer and, when it is large, its gzip form: both made once, sent many times."""

    raw: bytes
    gzipped: bytes | None

    @classmethod
    def of(cls, raw: bytes) -> JsonBody:
        return cls(raw, gzip.compress(raw, compresslevel=5, mtime=0) if len(raw) >= MIN_GZIP_BYTES else None)


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    version: int
    checked: float  # clock reading taken before the version read that validated it


class FreshCache(Generic[K, V]):
    """Answers by key, each valid for its store version; see the module docstring."""

    def __init__(
        self,
        version: Callable[[], Awaitable[int]],
        refresh_s: float,
        max_entries: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._version = version
        self.refresh_s = refresh_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._refreshing: dict[K, asyncio.Task[_Entry[V]]] = {}

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        """The answer for key: kept, or computed by `compute` (once for all concurrent callers)."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry.checked < self.refresh_s:
            return entry.value
        task = self._refreshing.get(key)
        if task is None:
            task = self._refreshing[key] = asyncio.create_task(self._refresh(key, entry, compute))
            task.add_done_callback(lambda t: self._done(key, t))
        if entry is not None and now - entry.checked < 2 * self.refresh_s:
            return entry.value
        return (await asyncio.shield(task)).value  # a caller that goes away leaves it to the others

    async def _refresh(self, key: K, entry: _Entry[V] | None, compute: Callable[[], Awaitable[V]]) -> _Entry[V]:
        checked = self._clock()
        version = await self._version()
        if entry is not None and entry.version == version:
            entry.checked = checked
        else:
            entry = _Entry(await compute(), version, checked)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return entry

    def _done(self, key: K, task: asyncio.Task[_Entry[V]]) -> None:
        if self._refreshing.get(key) is task:
            del self._refreshing[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure is the waiting callers' to report, not the loop's
