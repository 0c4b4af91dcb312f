"""Where the matcher's checkpoints are written (step 3 of its commit order): on its own loop, or on a thread.

Turning a second's events and changed devices into rows, JSON and SQL costs the CPU of a few
hundred milliseconds; done on the matcher's event loop it stalled consuming, and so every ping's
latency, once a second. `ThreadWriter` writes on a thread of its own, with its own event loop and
its own store handle (an async driver's connections belong to the loop that opened them), so
the loop only captures the state and goes on consuming. `LoopWriter` writes on the caller's
loop through the matcher's own store (tests, tools). Either writes what it is given in order,
and the matcher hands it one checkpoint at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from geofence.events import Event
from services.pipeline.seams import MatcherStore
from services.store import Checkpoint, Observations, devices_now

#: How long closing waits for the writer's thread to finish what it was given.
CLOSE_TIMEOUT_S = 30.0


class Writer(Protocol):
    async def write(self, cp: Checkpoint, events: Sequence[Event]) -> None:
        """Save cp with the events and device states it covers, in one transaction (or fail)."""
        ...

    async def close(self) -> None: ...


async def _save(store: MatcherStore, cp: Checkpoint, events: Sequence[Event]) -> None:
    await store.save_checkpoint(cp, Observations(events, devices_now(cp.devices)))


class LoopWriter:
    """Writes on the caller's event loop, through the matcher's store."""

    def __init__(self, store: MatcherStore) -> None:
        self._store = store

    async def write(self, cp: Checkpoint, events: Sequence[Event]) -> None:
        await _save(self._store, cp, events)

    async def close(self) -> None:
        """Nothing of its own to close."""


class ThreadWriter:
    """Writes on a thread with its own event loop and a store handle opened there by `handle`.

    The thread starts with the first write; if the handle cannot be opened (the database is
    away), that write fails and the next one tries again.
    """

    def __init__(self, handle: Callable[[], AbstractAsyncContextManager[MatcherStore]]) -> None:
        self._handle = handle
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: MatcherStore | None = None
        self._stop: asyncio.Event | None = None

    async def write(self, cp: Checkpoint, events: Sequence[Event]) -> None:
        if self._thread is None or not self._thread.is_alive():
            await self._start()
        assert self._loop is not None and self._store is not None
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_save(self._store, cp, events), self._loop))

    async def close(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        self._thread = None
        if thread is None or loop is None or stop is None:
            return
        loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(thread.join, CLOSE_TIMEOUT_S)

    async def _start(self) -> None:
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="checkpoint-writer", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(ready)

    def _main(self, ready: concurrent.futures.Future[None]) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            async with self._handle() as store:
                self._loop, self._store, self._stop = asyncio.get_running_loop(), store, asyncio.Event()
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:  # the handle failed to open: the write waiting for it fails
            if not ready.done():
                ready.set_exception(exc)
            else:
                raise
