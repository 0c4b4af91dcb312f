"""`hotspots simulate` keeps sending through an outage, as radios do (services/simulate.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.simulate import Retryable, send_until_delivered

PINGS = [{"device_id": "R1", "ts": "2026-11-21T22:00:00Z", "lat": 51.5, "lon": -0.12}]


class FlakySink:
    """Fails with `error` the first `failures` sends, then takes the pings."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.delivered, self.attempts = failures, error, [], 0

    async def send(self, pings: list[dict[str, Any]]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        self.delivered += pings

    async def close(self) -> None:
        """Nothing to close."""


async def test_simulate_connection_errors_retried_until_the_same_pings_are_delivered() -> None:
    sink = FlakySink(3, Retryable("ConnectError: connection refused"))
    await send_until_delivered(sink, PINGS, asyncio.Event(), first_s=0.01)
    assert (sink.attempts, sink.delivered) == (4, PINGS)


async def test_simulate_refusal_no_retry_cures_is_raised_at_once() -> None:
    sink = FlakySink(1, RuntimeError("POST /v1/pings answered 401"))
    with pytest.raises(RuntimeError, match="401"):
        await send_until_delivered(sink, PINGS, asyncio.Event(), first_s=0.01)
    assert sink.attempts == 1
