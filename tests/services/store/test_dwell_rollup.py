"""Dwell over whole days from the rollup: the same figures as the plain computation over visits.

Times are seconds around M, a UTC midnight; D is a day. The visits, worked by hand:

    d1 in A  M-1800 .. M+1800        crosses midnight M           (ENTER, then EXIT a batch later)
    d1 in A  M+D+3600 .. M+D+4200    within day M+D               (ENTER and EXIT in one batch)
    d2 in B  M+2D-600 .. M+3D+600    crosses two midnights        (ENTER, then EXIT a batch later)
    d4 in B  M+D-600 .. M+D+600      crosses midnight M+D         (EXIT only: the whole visit from dwell_s)
    d3 in A  M+3D-1200 .. open       last ping M+3D+300, crosses midnight M+3D
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from geofence.events import Event, EventType, ExitReason
from services.store import MIGRATIONS_DIR, DeviceNow, DwellRow, Store

M = datetime(2026, 11, 22, tzinfo=UTC).timestamp()
D = 86_400.0


def enter(device: str, fence: str, ts: float) -> Event:
    return Event(EventType.ENTER, device, fence, ts, 0.0, 0.0, fence_version=1)


def leave(device: str, fence: str, ts: float, dwell_s: float) -> Event:
    return Event(EventType.EXIT, device, fence, ts, 0.0, 0.0, dwell_s, ExitReason.LEFT, fence_version=1)


def device(last_ts: float, inside: dict[str, float] | None = None) -> DeviceNow:
    return DeviceNow(M - D, last_ts, 0.0, 0.0, None, False, None, None, None, inside or {})


BATCHES: list[tuple[list[Event], dict[str, DeviceNow]]] = [
    ([enter("d1", "A", M - 1800), enter("d2", "B", M + 2 * D - 600)], {}),
    ([leave("d1", "A", M + 1800, 3600.0), leave("d4", "B", M + D + 600, 1200.0)], {}),
    ([enter("d1", "A", M + D + 3600), leave("d1", "A", M + D + 4200, 600.0)], {"d1": device(M + D + 4800)}),
    (
        [leave("d2", "B", M + 3 * D + 600, D + 1200.0), enter("d3", "A", M + 3 * D - 1200)],
        {"d2": device(M + 3 * D + 900), "d3": device(M + 3 * D + 300, {"A": M + 3 * D - 1200}), "d4": device(M + D)},
    ),
]


async def record(store: Store) -> None:
    for events, devices in BATCHES:
        await store.record(events, devices)


def figures(rows: list[DwellRow]) -> list[tuple[Any, ...]]:
    return [(r.fence_id, r.bucket, r.visits, pytest.approx(r.dwell_s, abs=1e-6)) for r in rows]


def summed_over_devices(rows: list[DwellRow]) -> list[tuple[Any, ...]]:
    """Rows grouped with a device dimension (the plain computation), summed over the devices."""
    sums: dict[tuple[str | None, float | None], list[Any]] = defaultdict(lambda: [0, 0.0])
    for r in rows:
        sums[(r.fence_id, r.bucket)][0] += r.visits
        sums[(r.fence_id, r.bucket)][1] += r.dwell_s
    return [(f, b, n, pytest.approx(s, abs=1e-6)) for (f, b), (n, s) in sorted(sums.items()) if n or s]


async def test_dwell_over_days_by_fence_from_rollup_equals_hand_worked_and_plain(store: Store) -> None:
    await record(store)
    whole = await store.dwell(M - 3600, M + 3 * D + 7200)
    assert figures(whole) == [("A", None, 3, 3600.0 + 600.0 + 1500.0), ("B", None, 2, D + 1200.0 + 1200.0)]
    # Both ends inside a day: d1's first visit counts 2700 s and no ENTER, d2's visit up to M+3D+300.
    lo, hi = M - 900, M + 3 * D + 300
    part = await store.dwell(lo, hi)
    assert figures(part) == [("A", None, 2, 2700.0 + 600.0 + 1500.0), ("B", None, 2, D + 900.0 + 1200.0)]
    assert figures(part) == summed_over_devices(await store.dwell(lo, hi, group_by=("fence", "device")))
    assert figures(await store.dwell(lo, hi, fence_id="A")) == [("A", None, 2, 4800.0)]


async def test_dwell_over_days_by_day_from_rollup_equals_hand_worked_and_plain(store: Store) -> None:
    await record(store)
    lo, hi = M - 900, M + 3 * D + 300
    days = await store.dwell(lo, hi, group_by="day")
    assert figures(days) == [
        (None, M - D, 0, 900.0),  # d1 before midnight, entered before the range
        (None, M, 1, 1800.0 + 600.0),  # d1 after midnight; d4 before midnight M+D, entered that day
        (None, M + D, 2, 600.0 + 600.0 + 600.0),  # d4 after midnight; d1's second visit; d2 entered
        (None, M + 2 * D, 1, D + 1200.0),  # d2 all day; d3 entered, open
        (None, M + 3 * D, 0, 300.0 + 300.0),  # d2 clipped by the range; d3 up to its last ping
    ]
    assert figures(days) == summed_over_devices(await store.dwell(lo, hi, group_by=("device", "day")))
    by_fence = await store.dwell(lo, hi, group_by=("fence", "day"))
    assert figures(by_fence) == summed_over_devices(await store.dwell(lo, hi, group_by=("fence", "device", "day")))


async def test_dwell_rollup_counts_each_visit_once_when_observations_are_recorded_again(store: Store) -> None:
    await record(store)
    before = figures(await store.dwell(M - 3600, M + 3 * D + 7200, group_by="day"))
    await record(store)  # a matcher replaying after a crash records the same events again
    await store.record([e for events, _ in BATCHES for e in events], {})
    assert figures(await store.dwell(M - 3600, M + 3 * D + 7200, group_by="day")) == before
    assert await store.dwell(M - 3600, M + 3 * D + 7200) == await store.dwell(M - 3600, M + 3 * D + 7200)
    [a, b] = await store.dwell(M - 3600, M + 3 * D + 7200)
    assert (a.visits, b.visits) == (3, 2)


async def test_query_version_moves_with_every_write_of_observations(store: Store) -> None:
    first = await store.query_version()
    await store.record([], {"d9": device(M)})
    assert await store.query_version() == first + 1
    await store.record([enter("d9", "A", M)], {})
    assert await store.query_version() == first + 2


def _migrate(conn: sa.Connection, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    if revision == "head":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


async def test_migration_fills_rollup_from_visits_recorded_before_it(store: Store) -> None:
    await record(store)
    want = figures(await store.dwell(M - 900, M + 3 * D + 300, group_by=("fence", "day")))
    async with store.write() as conn:  # back to the schema before the rollup, visits kept, and up again
        await conn.run_sync(_migrate, "0004")
        await conn.run_sync(_migrate, "head")
    assert figures(await store.dwell(M - 900, M + 3 * D + 300, group_by=("fence", "day"))) == want
    async with store.read() as conn:
        longest = (await conn.execute(sa.text("SELECT longest_visit_s FROM query_state"))).scalar_one()
    assert longest == D + 1200.0  # d2's visit
