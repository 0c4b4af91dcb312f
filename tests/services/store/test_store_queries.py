"""The query tables (events, visits, devices, presence, lost gaps) on SQLite and PostgreSQL.

A real Engine produces the events and device states, recorded batch by batch as the pipeline
does; the stored figures must then agree with the engine's own (presence, dwell_totals,
device_totals), and hand-worked timelines pin down the range clipping and the UTC buckets.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from support.helpers import T0, P, feed, make_engine
from support.observations import (
    Recorded,
    by_key,
    dump,
    engine_presence,
    engine_run,
    officers,
    published,
    record_all,
    stored_presence,
    track,
)

from geofence.events import Event, EventType, ExitReason
from services.store import (
    Checkpoint,
    DeviceNow,
    Observations,
    Store,
    devices_now,
)

HOUR = 3600.0
DAY = 86_400.0


# ---------------------------------------------------------------------- against a real engine


@pytest.fixture(scope="module")
def workload() -> Recorded:
    rec = engine_run()
    kinds = {e.type for obs in rec.batches for e in obs.events if isinstance(e, Event)}
    assert kinds == set(EventType), "the workload should produce every kind of event"
    assert engine_presence(rec.engine), "and leave some visits open"
    return rec


async def test_record_workload_presence_equals_engine_open_visits(store: Store, workload: Recorded) -> None:
    await record_all(store, workload)
    assert await stored_presence(store) == engine_presence(workload.engine)


async def test_dwell_workload_by_device_and_fence_equals_engine_dwell_totals(store: Store, workload: Recorded) -> None:
    await record_all(store, workload)
    rows = await store.dwell(workload.start, workload.end, group_by=("fence", "device"))
    got = {(r.device_id, r.fence_id): (r.visits, r.dwell_s) for r in rows}
    expected = workload.engine.dwell_totals()
    assert got.keys() == expected.keys()
    for key, (n, dwell) in expected.items():
        assert got[key][0] == n, key
        assert got[key][1] == pytest.approx(dwell, abs=1e-6), key


async def test_dwell_workload_by_fence_sums_engine_dwell_over_devices(store: Store, workload: Recorded) -> None:
    await record_all(store, workload)
    expected: dict[str, list[float]] = {}
    for (_, fence), (n, dwell) in workload.engine.dwell_totals().items():
        acc = expected.setdefault(fence, [0, 0.0])
        acc[0] += n
        acc[1] += dwell
    rows = await store.dwell(workload.start, workload.end, group_by="fence")
    assert [r.fence_id for r in rows] == sorted(expected)
    for r in rows:
        assert r.fence_id is not None and r.device_id is None and r.inside_s is None
        assert r.visits == expected[r.fence_id][0]
        assert r.dwell_s == pytest.approx(expected[r.fence_id][1], abs=1e-6)


async def test_dwell_workload_by_device_totals_equal_engine_device_totals(store: Store, workload: Recorded) -> None:
    await record_all(store, workload)
    rows = by_key(await store.dwell(workload.start, workload.end, group_by="device"))
    expected = workload.engine.device_totals()
    assert {d for _, d, _ in rows} == set(expected)
    assert sum(t["lost_s"] > 0 for t in expected.values()) >= 3, "the workload should lose some signals"
    for device, totals in expected.items():
        row = rows[(None, device, None)]
        for name in ("active_s", "inside_s", "outside_s", "lost_s"):
            assert getattr(row, name) == pytest.approx(totals[name], abs=1e-6), (device, name)


async def test_record_workload_twice_in_a_row_and_replayed_changes_nothing(store: Store, workload: Recorded) -> None:
    await record_all(store, workload, times=2)
    once = await dump(store)
    await record_all(store, workload)  # the whole stream again, after later visits exist
    assert await dump(store) == once
    assert len(once["events"]) == sum(len(obs.events) for obs in workload.batches)
    rows = await store.dwell(workload.start, workload.end, group_by=("fence", "device"))
    expected = workload.engine.dwell_totals()
    assert {(r.device_id, r.fence_id): r.visits for r in rows} == {k: n for k, (n, _) in expected.items()}


async def test_record_workload_device_now_matches_engine_last_ping(store: Store, workload: Recorded) -> None:
    await record_all(store, workload)
    engine = workload.engine
    s = max(engine.machine.inside)  # a device inside something
    device_id = str(engine.devices.ids[s])
    got = await store.device_now(device_id)
    assert got is not None and got.device_id == device_id
    assert got.updated_at == pytest.approx(time.time(), abs=60)
    now = got.now
    assert (now.last_ts, now.lat, now.lon, now.lost) == (
        engine.devices.last_ts[s],
        engine.devices.last_lat[s],
        engine.devices.last_lon[s],
        False,
    )
    assert now.inside == engine.machine.inside[s]
    assert now.last_ts - now.first_ts == pytest.approx(engine.devices.active_s[s] + engine.devices.lost_s[s])


# ---------------------------------------------------------------------- hand-worked timelines


async def test_dwell_partial_range_counts_only_overlap_with_visit(store: Store) -> None:
    # Visit 22:00-22:12 (0 to 720 s), device pinging until 22:30; range 22:05-22:30.
    rec = engine_run(track(0, 1800, (0, 720)))
    await record_all(store, rec)
    assert [(r.visits, r.dwell_s) for r in await store.dwell(T0 + 300, T0 + 1800)] == [(0, 420.0)]
    assert [(r.visits, r.dwell_s) for r in await store.dwell(T0 - 60, T0 + 300)] == [(1, 300.0)]
    assert await store.dwell(T0 + 720, T0 + 1800) == []
    [row] = await store.dwell(T0 + 300, T0 + 1800, group_by="device")
    assert (row.active_s, row.inside_s, row.outside_s, row.lost_s) == (1500.0, 420.0, 1080.0, 0.0)


async def test_dwell_open_visit_counts_up_to_last_ping_not_now(store: Store) -> None:
    rec = engine_run(track(0, 180, (60, 10_000)))
    await record_all(store, rec)
    assert [(r.fence_id, r.visits, r.dwell_s) for r in await store.dwell(T0, T0 + DAY)] == [("A", 1, 120.0)]
    assert await stored_presence(store) == {("d1", "A"): T0 + 60}


async def test_dwell_signal_loss_in_range_counts_as_lost_not_active(store: Store) -> None:
    # In A from 0 to 600 s, silent until 1500 s (lost at 600, restored at 1500), then outside.
    rec = engine_run(track(0, 600, (0, 10_000)) + track(1500, 1800, (0, 0)))
    await record_all(store, rec)
    totals = rec.engine.device_totals()["d1"]
    assert (totals["active_s"], totals["inside_s"], totals["lost_s"]) == (900.0, 600.0, 900.0)
    [whole] = await store.dwell(T0, T0 + 1801, group_by="device")
    assert (whole.active_s, whole.inside_s, whole.outside_s, whole.lost_s) == (900.0, 600.0, 300.0, 900.0)
    [part] = await store.dwell(T0 + 300, T0 + 1600, group_by="device")
    assert (part.active_s, part.inside_s, part.outside_s, part.lost_s) == (400.0, 300.0, 100.0, 900.0)
    assert (part.visits, part.dwell_s) == (0, 300.0)


async def test_dwell_overlapping_fences_count_once_inside_per_device(store: Store) -> None:
    # In A from 0, in A and B from 300, in B only from 600, out at 900; pings until 1200.
    pings = [P(t, "a" if t < 300 else "ab" if t < 600 else "b" if t < 900 else "out") for t in range(0, 1201, 60)]
    rec = engine_run(pings)
    await record_all(store, rec)
    [row] = await store.dwell(T0, T0 + 1201, group_by="device")
    assert (row.visits, row.dwell_s, row.inside_s, row.outside_s) == (2, 600.0 + 600.0, 900.0, 300.0)
    fences = await store.dwell(T0, T0 + 1201, group_by="fence")
    assert [(r.fence_id, r.visits, r.dwell_s) for r in fences] == [("A", 1, 600.0), ("B", 1, 600.0)]


async def test_dwell_group_by_hour_splits_visit_crossing_hour_boundary(store: Store) -> None:
    # Visit 22:50-23:10 UTC (3000 to 4200 s after T0 = 22:00), pinging 22:40-23:20.
    rec = engine_run(track(2400, 4800, (3000, 4200)))
    await record_all(store, rec)
    rows = await store.dwell(T0, T0 + 2 * HOUR, group_by="hour")
    assert [(r.bucket, r.visits, r.dwell_s) for r in rows] == [(T0, 1, 600.0), (T0 + HOUR, 0, 600.0)]
    per_device = await store.dwell(T0, T0 + 2 * HOUR, group_by=("device", "hour"))
    assert [(r.device_id, r.bucket, r.active_s, r.inside_s, r.outside_s) for r in per_device] == [
        ("d1", T0, 1200.0, 600.0, 600.0),
        ("d1", T0 + HOUR, 1200.0, 600.0, 600.0),
    ]
    clipped = await store.dwell(T0 + HOUR + 300, T0 + 2 * HOUR, group_by=("fence", "hour"))
    assert [(r.fence_id, r.bucket, r.visits, r.dwell_s) for r in clipped] == [("A", T0 + HOUR, 0, 300.0)]


async def test_dwell_group_by_day_splits_visit_crossing_utc_midnight(store: Store) -> None:
    # Visit 23:50-00:10 UTC (6600 to 7800 s after T0 = 22:00).
    rec = engine_run(track(6000, 8400, (6600, 7800)))
    await record_all(store, rec)
    midnight = T0 + 2 * HOUR
    assert midnight % DAY == 0
    rows = await store.dwell(T0, T0 + DAY, group_by="day")
    assert [(r.bucket, r.visits, r.dwell_s) for r in rows] == [(midnight - DAY, 1, 600.0), (midnight, 0, 600.0)]


async def test_dwell_bad_group_by_raises_value_error(store: Store) -> None:
    with pytest.raises(ValueError, match="group_by"):
        await store.dwell(T0, T0 + 1, group_by=("day", "hour"))
    with pytest.raises(ValueError, match="group_by"):
        await store.dwell(T0, T0 + 1, group_by="week")  # type: ignore[arg-type]


async def test_dwell_fence_filter_leaves_device_totals_out(store: Store) -> None:
    rec = engine_run(track(0, 1800, (0, 720)))
    await record_all(store, rec)
    [row] = await store.dwell(T0, T0 + 1801, fence_id="A", group_by="device")
    assert (row.device_id, row.visits, row.dwell_s, row.active_s) == ("d1", 1, 720.0, None)
    assert await store.dwell(T0, T0 + 1801, fence_id="B", group_by="device") == []


# ---------------------------------------------------------------------- presence and devices


async def test_presence_filters_by_fence_device_officer_and_callsign(store: Store) -> None:
    await record_all(store, engine_run(officers(), batch_size=5))
    everyone = {("d1", "A"): T0, ("d2", "A"): T0 + 120, ("d2", "B"): T0 + 120}
    assert await stored_presence(store) == everyone
    by_fence = await store.presence()
    assert list(by_fence) == ["A", "B"]
    assert [(p.device_id, p.officer_id, p.callsign, p.last_ts) for p in by_fence["A"]] == [
        ("d1", "PC1", "Alpha 1", T0 + 600),
        ("d2", "PC2", "Bravo 2", T0 + 600),
    ]
    assert await stored_presence(store, fence_id="B") == {("d2", "B"): T0 + 120}
    assert await stored_presence(store, device_id="d1") == {("d1", "A"): T0}
    assert await stored_presence(store, officer_id="PC2") == {("d2", "A"): T0 + 120, ("d2", "B"): T0 + 120}
    assert await stored_presence(store, callsign="Alpha 1", fence_id="A") == {("d1", "A"): T0}
    assert await stored_presence(store, callsign="nobody") == {}


async def test_record_device_leaving_fence_removes_its_presence(store: Store) -> None:
    pings = track(0, 600, (0, 300))
    await record_all(store, engine_run(pings[:3], batch_size=3))
    assert await stored_presence(store) == {("d1", "A"): T0}
    engine = make_engine()
    events, _ = feed(engine, pings)
    events += [e.to_dict() for e in engine.flush()]
    await store.record(events, devices_now(engine.checkpoint()[1]))
    assert await stored_presence(store) == {}
    now = await store.device_now("d1")
    assert now is not None and now.now.inside == {} and now.now.last_ts == T0 + 600


async def test_device_now_fields_round_trip_and_unknown_is_none(store: Store) -> None:
    given = DeviceNow(T0, T0 + 60, 51.5, -0.1, 8.5, True, "PC9", "Zulu 9", "tetra", {})
    await store.record([], {"r1": given, "r2": DeviceNow(T0, T0, 1.0, 2.0, None, False, None, None, None, {"F": T0})})
    got = await store.device_now("r1")
    assert got is not None and got.now == given
    assert await store.device_now("nobody") is None


async def test_record_older_first_ts_never_moves_later(store: Store) -> None:
    first = DeviceNow(T0, T0 + 60, 51.5, -0.1, None, False, None, None, None, {})
    await store.record([], {"r1": first})
    await store.record([], {"r1": DeviceNow(T0 + 50, T0 + 120, 51.6, -0.2, 5.0, False, "PC1", None, None, {})})
    got = await store.device_now("r1")
    assert got is not None
    assert (got.now.first_ts, got.now.last_ts, got.now.lat, got.now.officer_id) == (T0, T0 + 120, 51.6, "PC1")


# ---------------------------------------------------------------------- events


def mixed_track() -> list[P]:
    """d1 in and out of A, d2 into B and lost for a while, d3 outside: every kind of event."""
    pings = track(0, 1200, (120, 600), "a", "d1")
    pings += track(0, 300, (60, 10_000), "b", "d2") + track(1000, 1200, (0, 0), "b", "d2")
    pings += track(0, 1200, (0, 0), "a", "d3")
    return sorted(pings, key=lambda p: p.t)


async def test_events_page_by_seq_pages_every_event_once_in_order(store: Store) -> None:
    rec = engine_run(mixed_track(), batch_size=7)
    await record_all(store, rec)
    events = published(rec)
    assert {e["type"] for e in events} == set(EventType)
    pages: list[list[Any]] = []
    after = 0
    while page := await store.events_page(after_seq=after, limit=2):
        pages.append(page)
        after = page[-1].seq
    rows = [r for page in pages for r in page]
    assert all(len(p) == 2 for p in pages[:-1])
    assert [r.body for r in rows] == events
    assert [r.seq for r in rows] == sorted({r.seq for r in rows})
    assert await store.last_event_seq() == rows[-1].seq
    assert await store.events_page(after_seq=rows[-1].seq) == []
    assert [r.event_id for r in await store.events_page(after_seq=rows[2].seq, limit=3)] == [
        r.event_id for r in rows[3:6]
    ]


async def test_events_page_filters_by_type_fence_device_and_time(store: Store) -> None:
    rec = engine_run(mixed_track(), batch_size=7)
    await record_all(store, rec)
    rows = await store.events_page(limit=1000)

    def expect(keep: Any) -> list[str]:
        return [r.event_id for r in rows if keep(r)]

    async def got(**filters: Any) -> list[str]:
        return [r.event_id for r in await store.events_page(limit=1000, **filters)]

    assert await got(types=["enter"]) == expect(lambda r: r.type == "enter")
    assert await got(types=["exit", "signal_lost"]) == expect(lambda r: r.type in ("exit", "signal_lost"))
    assert await got(fence_id="A") == expect(lambda r: r.fence_id == "A")
    assert await got(device_id="d2") == expect(lambda r: r.device_id == "d2")
    assert await got(since=T0 + 300, until=T0 + 1000) == expect(lambda r: T0 + 300 <= r.ts < T0 + 1000)
    assert await got(device_id="d2", types=["signal_restored"]) == expect(
        lambda r: r.device_id == "d2" and r.type == "signal_restored"
    )
    assert len(await got(device_id="d2", types=["signal_restored"])) == 1
    lost = [r for r in rows if r.type == "signal_lost"]
    assert [(r.device_id, r.ts, r.fence_id, r.body["gap_start"]) for r in lost] == [
        ("d2", T0 + 300, None, "2026-11-21T22:05:00Z")
    ]


async def test_record_published_dicts_same_rows_as_events(store: Store) -> None:
    rec = engine_run(mixed_track(), batch_size=7)
    for obs in rec.batches:  # as a consumer of the events topic would have them
        dicts = [orjson.loads(orjson.dumps(e.to_dict())) for e in obs.events if isinstance(e, Event)]
        await store.record(dicts, obs.devices)
    from_dicts = await dump(store)
    await record_all(store, rec)  # the same events as Event objects: nothing new
    assert await dump(store) == from_dicts
    assert [r.body for r in await store.events_page(limit=1000)] == published(rec)


async def test_record_event_dict_with_epoch_ts_stores_it_published_as_iso(store: Store) -> None:
    enter = Event(EventType.ENTER, "d1", "A", T0 + 0.5, 0.0, 0.0, extras={"officer_id": "PC1"})
    given = {**enter.to_dict(), "ts": T0 + 0.5}
    await store.record([given], {})
    [row] = await store.events_page()
    assert (row.ts, row.officer_id, row.callsign, row.body) == (T0 + 0.5, "PC1", None, enter.to_dict())


async def test_record_exit_without_recorded_enter_inserts_whole_visit(store: Store) -> None:
    # A visit open when the store was upgraded: only its EXIT is ever recorded.
    exit_ = Event(EventType.EXIT, "d1", "A", T0 + 720, 0.0, 0.0, dwell_s=720.0, reason=ExitReason.LEFT)
    later = Event(EventType.ENTER, "d1", "A", T0 + 900, 0.0, 0.0)
    for _ in range(2):
        await store.record([exit_, later], {"d1": DeviceNow(T0, T0 + 960, 0, 0, None, False, None, None, None, {})})
    rows = await store.dwell(T0 + 300, T0 + 1800, group_by=("fence", "device"))
    assert [(r.visits, r.dwell_s) for r in rows] == [(1, 420.0 + 60.0)]
    assert len((await dump(store))["visits"]) == 2


async def test_record_restore_without_recorded_loss_inserts_whole_gap(store: Store) -> None:
    restored = Event(EventType.SIGNAL_RESTORED, "d1", None, T0 + 900, 0.0, 0.0, gap_s=600.0)
    for _ in range(2):
        await store.record([restored], {"d1": DeviceNow(T0, T0 + 900, 0, 0, None, False, None, None, None, {})})
    [row] = await store.dwell(T0, T0 + 1000, group_by="device")
    assert (row.active_s, row.lost_s, row.outside_s) == (300.0, 600.0, 300.0)
    assert (await dump(store))["lost_gaps"] == [("d1", T0 + 300, T0 + 900)]


# ---------------------------------------------------------------------- with the checkpoint


def checkpoint(next_offset: int, devices: dict[str, dict[str, Any]]) -> Checkpoint:
    return Checkpoint("matcher", "pings", 0, next_offset, None, {"version": 1}, devices)


async def test_save_checkpoint_with_observations_records_them_with_offset(store: Store) -> None:
    engine = make_engine()
    events, _ = feed(engine, track(0, 600, (0, 300)))
    records = engine.checkpoint()[1]
    await store.save_checkpoint(checkpoint(7, records), Observations(events, devices_now(records)))
    assert [r.body for r in await store.events_page()] == events
    assert (await store.load_checkpoint("matcher", "pings", 0)).next_offset == 7  # type: ignore[union-attr]


async def test_save_checkpoint_failing_after_observations_records_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine()
    events, _ = feed(engine, track(0, 600, (0, 300)))
    records = engine.checkpoint()[1]
    write = store._record

    async def write_then_fail(*args: Any) -> None:
        await write(*args)
        raise RuntimeError("crash before commit")

    monkeypatch.setattr(store, "_record", write_then_fail)
    with pytest.raises(RuntimeError, match="crash before commit"):
        await store.save_checkpoint(checkpoint(7, records), Observations(events, devices_now(records)))
    assert await store.load_checkpoint("matcher", "pings", 0) is None
    assert await dump(store) == {name: [] for name in ("events", "visits", "presence", "lost_gaps", "devices")}


# ---------------------------------------------------------------------- scale


def big_batch(v: int) -> tuple[list[Event], dict[str, DeviceNow]]:
    """10,000 events (an ENTER and an EXIT for 5,000 devices) and 20,000 changed devices."""
    base = T0 + v * 3600
    events: list[Event] = []
    for i in range(5_000):
        d, f = f"device-{i:06d}", f"HS{i % 400:05d}"
        extras = {"officer_id": f"PC{i}", "callsign": f"Unit {i}"}
        events.append(Event(EventType.ENTER, d, f, base + i * 0.01, 51.5, -0.1, extras=extras, fence_version=1))
        events.append(
            Event(
                EventType.EXIT,
                d,
                f,
                base + 600 + i * 0.01,
                51.5,
                -0.1,
                dwell_s=600.0,
                reason=ExitReason.LEFT,
                extras=extras,
                fence_version=1,
            )
        )
    devices = {
        f"device-{i:06d}": DeviceNow(
            base - 3600,
            base + 900,
            51.5 + i * 1e-6,
            -0.1,
            6.0,
            False,
            f"PC{i}",
            f"Unit {i}",
            "tetra",
            {f"HS{i % 400:05d}": base + 700} if i % 2 else {},
        )
        for i in range(20_000)
    }
    return events, devices


async def test_record_10k_events_20k_devices_twice_keeps_every_event_and_presence(store: Store) -> None:
    for v in range(2):  # first call inserts every device, the second updates every one
        events, devices = big_batch(v)
        await store.record(events, devices)
    assert await store.last_event_seq() == 20_000
    assert sum(len(v) for v in (await store.presence()).values()) == 10_000
    [row] = await store.dwell(T0, T0 + 2 * 3600, group_by="fence", fence_id="HS00007")
    assert row.visits == 13 * 2
    assert row.dwell_s == pytest.approx(13 * 2 * 600.0)
