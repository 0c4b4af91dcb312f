"""Live admission (services/pipeline/admission.py): a broken clock's pings blind nobody.

A matcher on the in-memory log runs with the wall clock, as in service. One radio sends a fix
dated 9998 and one dated 1970: both go to the DLQ with their reason and are counted, and the
event time in the checkpoint (what a restart resumes from) still follows the radios whose
clocks are right.
"""

from __future__ import annotations

import time

import orjson
from support.memory_matcher import DLQ, PINGS, memory_log, memory_matcher, run_until

from services.metrics import Metrics
from services.pipeline.admission import Admission
from services.pipeline.memory import MemoryStore
from services.settings import Settings

ADMISSION = Admission(max_future_s=300.0, max_age_s=31 * 86_400.0)


def ping(device: str, ts: float | str) -> tuple[bytes, bytes]:
    return device.encode(), orjson.dumps({"device_id": device, "ts": ts, "lat": 51.5, "lon": -0.12})


async def test_matcher_ping_far_ahead_or_too_old_goes_to_dlq_and_no_device_is_lost() -> None:
    now = time.time()
    log, store, metrics = memory_log(), MemoryStore(), Metrics()
    messages = [
        ping("R1", now - 10),
        ping("R2", now - 5),
        ping("BROKEN", "9998-06-01T00:00:00Z"),  # a clock far ahead
        ping("OLD", 1e6),  # 1970: older than the retention
        ping("R1", now - 1),
    ]
    for key, value in messages:
        log.append(PINGS, key, value)
    matcher = memory_matcher(log, store, metrics, wall_clock=True, admission=ADMISSION)
    await run_until(matcher, lambda: len(log.messages(DLQ)) == 2, "two dead letters")
    letters = [orjson.loads(m.value or b"") for m in log.messages(DLQ)]
    assert {d["key"]: d["reason"] for d in letters} == {"BROKEN": "future", "OLD": "too_old"}
    for reason in ("future", "too_old"):
        assert metrics.registry.get_sample_value("hotspots_pings_rejected_total", {"reason": reason}) == 1.0
    (cp,) = store.checkpoints.values()
    assert cp.stream["max_ts"] < time.time() and cp.stream["watermark"] < time.time()
    assert set(cp.devices) == {"R1", "R2"} and not any(d["lost"] for d in cp.devices.values())


def test_admission_window_defaults_to_the_ping_retention() -> None:
    assert Admission.from_settings(Settings(ping_retention_days=7)) == Admission(300.0, 7 * 86_400.0)
    assert Admission.from_settings(Settings(max_age_days=2, max_future_s=60)) == Admission(60.0, 2 * 86_400.0)
