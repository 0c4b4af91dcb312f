"""A matcher on the in-memory log and store (services/pipeline/memory.py), run for a test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from geofence.params import EngineParams
from services.metrics import Metrics
from services.pipeline.admission import Admission
from services.pipeline.matcher import Matcher
from services.pipeline.memory import MemoryLog, MemoryStore, NoCapture
from services.pipeline.writer import Writer
from support.pipeline import poll_until

PINGS, EVENTS, DLQ = "pings", "events", "dlq"
GROUP = "matchers"
#: Longest wait for an in-memory matcher to get somewhere (a batch takes milliseconds).
DEADLINE_S = 10.0


def memory_log() -> MemoryLog:
    """The three topics, one partition each."""
    return MemoryLog({PINGS: 1, EVENTS: 1, DLQ: 1})


def memory_matcher(
    log: MemoryLog,
    store: MemoryStore,
    metrics: Metrics | None = None,
    *,
    wall_clock: bool = False,
    checkpoint_interval_s: float = 0.0,
    admission: Admission | None = None,
    writer: Writer | None = None,
) -> Matcher:
    """A matcher on the in-memory log and store; by default on event time alone, checkpointing
    after every batch on its own loop."""
    return Matcher(
        log=log,
        group=GROUP,
        topics=(PINGS, EVENTS, DLQ),
        params=EngineParams(),
        store=store,
        capture=NoCapture(),
        metrics=metrics or Metrics(),
        wall_clock=wall_clock,
        checkpoint_interval_s=checkpoint_interval_s,
        admission=admission,
        writer=writer,
    )


async def run_until(matcher: Matcher, condition: Callable[[], bool] | Callable[[], Awaitable[bool]], what: str) -> None:
    """Run the matcher until condition holds, then stop it (with its final checkpoint)."""
    stop = asyncio.Event()
    task = asyncio.create_task(matcher.run(stop))
    try:
        await poll_until(condition, what, DEADLINE_S)
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)
