"""Poison pills: a bad message whose dead letter would be too large never stops the matcher.

205 KB of control characters, escaped six-fold in the dead letter's JSON, made a record over
Kafka's 1 MB limit: the matcher retried it for ever on every partition. Now the dead letter
copies a bounded part of the message and says so, and a record the log still refuses is
skipped, logged and counted while the pings behind it go on.
"""

from __future__ import annotations

import orjson
import pytest
from support.memory_matcher import DLQ, GROUP, PINGS, memory_log, memory_matcher, run_until

from services.metrics import Metrics
from services.pipeline.memory import MemoryLog, MemoryStore
from services.pipeline.outbox import ORIGINAL_MAX

POISON = b"\x01" * (205 * 1024)
GOOD = orjson.dumps({"device_id": "R1", "ts": 1_790_000_000, "lat": 51.5, "lon": -0.12})


async def run_past_poison(log: MemoryLog, store: MemoryStore, metrics: Metrics) -> None:
    """Run a matcher until its checkpoint stands past the poison pill and the ping behind it."""
    for value in (GOOD, POISON, GOOD):
        log.append(PINGS, b"R1", value)

    def past() -> bool:
        cp = store.checkpoints.get((GROUP, PINGS, 0))
        return cp is not None and cp.next_offset == 3

    await run_until(memory_matcher(log, store, metrics), past, "a checkpoint past the poison pill")


async def test_matcher_poison_pill_dead_letter_truncated_with_offset_and_stream_goes_on() -> None:
    log, store = memory_log(), MemoryStore()
    await run_past_poison(log, store, Metrics())
    (letter,) = log.messages(DLQ)
    assert len(letter.value or b"") < log.max_record_bytes
    body = orjson.loads(letter.value or b"")
    assert body["offset"] == 1 and body["reason"].startswith("malformed JSON")
    assert body["truncated"] == {"original_bytes": len(POISON), "key_bytes": 2}
    assert body["original"] == POISON[:ORIGINAL_MAX].decode()


async def test_matcher_record_the_log_refuses_is_skipped_and_counted_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log, store, metrics = memory_log(), MemoryStore(), Metrics()
    log.max_record_bytes = 2000  # even the truncated dead letter is too large here
    await run_past_poison(log, store, metrics)
    assert log.messages(DLQ) == []
    assert metrics.registry.get_sample_value("hotspots_records_skipped_total") == 1.0
    assert any("too large" in r.getMessage() for r in caplog.records)
