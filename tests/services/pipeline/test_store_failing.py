"""A store that keeps refusing checkpoints (a NUL byte PostgreSQL cannot hold, a full disk) is
counted where /readyz sees it, and the count clears once a checkpoint is written again."""

from __future__ import annotations

import orjson
from support.memory_matcher import PINGS, memory_log, memory_matcher, run_until

from services.pipeline.memory import MemoryStore


async def test_matcher_failing_checkpoints_are_counted_in_health_until_one_succeeds() -> None:
    log, store = memory_log(), MemoryStore()
    log.append(PINGS, b"R1", orjson.dumps({"device_id": "R1", "ts": 1_790_000_000, "lat": 51.5, "lon": -0.12}))
    store.refusing = True
    matcher = memory_matcher(log, store, checkpoint_interval_s=0.01)
    failures: list[int] = []

    def failed_three_times_then_recovered() -> bool:
        failures.append(matcher.health.checkpoint_failures)
        if matcher.health.checkpoint_failures >= 3:
            store.refusing = False
        return max(failures) >= 3 and matcher.health.checkpoint_failures == 0

    await run_until(matcher, failed_three_times_then_recovered, "three failed checkpoints, then one written")
