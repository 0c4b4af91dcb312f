"""Group commit: many small writes in one transaction, each caller waiting for its own commit.

Every audited request writes one audit entry; a transaction (and, on SQLite, an fsync and the
single write lock) per entry capped the API at a few hundred requests a second. Here the entries
arriving while a transaction is under way are written together by the next one, so the number of
transactions follows the database's speed, not the request rate, and still no caller returns
before its entry is durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Items written in batches by `write` (one transaction per call), in the order added."""

    def __init__(self, write: Callable[[list[T]], Awaitable[None]]) -> None:
        self._write = write
        self._items: list[T] = []
        self._committed: asyncio.Future[None] | None = None  # of the batch being gathered
        self._writer: asyncio.Task[None] | None = None

    async def add(self, item: T) -> None:
        """Returns once item is committed; raises what the write raised if that failed."""
        if self._committed is None:
            self._committed = asyncio.get_running_loop().create_future()
        committed = self._committed
        self._items.append(item)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await asyncio.shield(committed)  # a caller that goes away does not take its entry with it

    async def flush(self) -> None:
        """Wait until everything added has been written (before closing the store)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        while self._items:
            items, committed = self._items, self._committed
            self._items, self._committed = [], None
            assert committed is not None
            try:
                await self._write(items)
            except Exception as exc:  # the callers of this batch get the error; the next batch is tried
                committed.set_exception(exc)
                committed.exception()  # retrieved here too: no warning if every caller went away
            else:
                committed.set_result(None)
