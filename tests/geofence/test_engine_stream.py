"""SEMANTICS.md by hand, continued from test_engine_rules.py (containment, debounce, signal loss):
ordering, lateness and duplicates, batch splits and snapshots, event ids, end of input, dwell
totals, event order and counters, on the same fences, places and default parameters (described
at the top of test_engine_rules.py).
"""

from __future__ import annotations

import json

import pytest
from support.helpers import (
    BAD,
    DEBOUNCE_30,
    NO_LATENESS,
    PLACES,
    P,
    batch,
    brief,
    feed,
    fence_a,
    fence_b,
    run,
)

from geofence.engine import Engine
from geofence.index import FenceIndex
from geofence.params import EngineParams
from geofence.pings import PingBatch

# ---------------------------------------------------------------------------- order, lateness, duplicates


@pytest.mark.parametrize(
    ("track", "expected", "duplicates"),
    [
        # the same ping twice
        ([P(0, "a"), P(0, "a")], [("d1", "enter", "A", 0.0)], 1),
        # same device and ts, another position: ignored, so no EXIT
        ([P(0, "a"), P(0, "out"), P(20, "a")], [("d1", "enter", "A", 0.0)], 1),
        # a repeat of ts 10 arriving after ts 20 (within lateness): ignored
        ([P(0, "out"), P(10, "a"), P(20, "a"), P(10, "out")], [("d1", "enter", "A", 10.0)], 1),
        # three copies: two duplicates
        ([P(0, "a"), P(0, "a"), P(0, "out")], [("d1", "enter", "A", 0.0)], 2),
        # same ts on another device is not a duplicate
        ([P(0, "a"), P(0, "a", "d2")], [("d1", "enter", "A", 0.0), ("d2", "enter", "A", 0.0)], 0),
    ],
)
def test_duplicate_same_device_and_ts_ignored_and_counted(track: list[P], expected: list, duplicates: int) -> None:
    events, engine = run(track)
    assert brief(events, device=True) == expected
    assert engine.counters.duplicate == duplicates


@pytest.mark.parametrize("params", [EngineParams(), NO_LATENESS])  # held for reordering / applied at once
def test_duplicate_of_last_applied_ping_ignored_in_later_batch(params: EngineParams) -> None:
    engine = Engine(FenceIndex([fence_a()]), params)
    events, results = feed(engine, [P(0, "a"), P(10, "a"), P(10, "out")], batch_size=1)
    events += [e.to_dict() for e in engine.flush()]
    assert brief(events) == [("enter", "A", 0.0)]
    assert [r.duplicate.tolist() for r in results] == [[], [], [0]]
    assert engine.counters.duplicate == 1


def test_duplicate_indices_returned_in_batch_result() -> None:
    engine = Engine(FenceIndex([fence_a()]), EngineParams())
    result = engine.process(batch([P(0, "a"), P(0, "out"), P(5, "a"), P(5, "a", "d2"), P(5, "a")]))
    assert result.duplicate.tolist() == [1, 4]  # the second ts 0 and the second (d1, 5)
    assert result.late.tolist() == []


@pytest.mark.parametrize(
    ("track", "expected", "late_idx"),
    [
        # 69 < 100 - 30: late, not applied (no ENTER)
        ([P(0, "out"), P(100, "out"), P(69, "a")], [], [2]),
        # 70 = 100 - 30: not late, applied in ts order: ENTER at 70, EXIT at 100
        ([P(0, "out"), P(100, "out"), P(70, "a")], [("enter", "A", 70.0), ("exit", "A", 100.0, 30.0, "left")], []),
        # lateness is per device: d2's first ping at 0 after d1's 100 is on time for d2
        ([P(100, "out"), P(0, "a", "d2")], [("enter", "A", 0.0)], []),
        # two late pings
        (
            [P(0, "out"), P(200, "out"), P(10, "a"), P(20, "a"), P(180, "a")],
            [("enter", "A", 180.0), ("exit", "A", 200.0, 20.0, "left")],
            [2, 3],
        ),
    ],
)
def test_late_ping_not_applied_counted_and_returned(track: list[P], expected: list, late_idx: list[int]) -> None:
    engine = Engine(FenceIndex([fence_a()]), EngineParams())
    result = engine.process(batch(track))
    events = [e.to_dict() for e in [*result.events, *engine.flush()]]
    assert brief(events) == expected
    assert result.late.tolist() == late_idx
    assert engine.counters.late == len(late_idx)


def test_late_repeat_of_applied_ping_far_behind_latest_counted_late() -> None:
    # 0 is released (frontier 100 - 30 = 70) and applied; its repeat arrives 100 s behind the latest
    engine = Engine(FenceIndex([fence_a()]), EngineParams())
    result = engine.process(batch([P(0, "out"), P(100, "out"), P(0, "a")]))
    engine.flush()
    assert (result.late.tolist(), result.duplicate.tolist()) == ([2], [])
    assert (engine.counters.late, engine.counters.duplicate) == (1, 0)


@pytest.mark.parametrize(
    "batch_size",
    [
        None,  # one batch
        1,  # ping by ping
    ],
)
def test_late_repeat_of_released_ping_same_verdict_whatever_batch_split(batch_size: int | None) -> None:
    # d1 0, 10, 20; d2's 45 lifts the frontier to 15: d1's 0 and 10 are released (10 applied last).
    # d1's 0 again: within 30 s of d1's latest (20), not held, not the last applied, older than an
    # applied ping: late
    track = [P(0, "out"), P(10, "out"), P(20, "out"), P(45, "far", "d2"), P(0, "a")]
    events, engine = run(track, batch_size=batch_size)
    assert brief(events) == []
    assert (engine.counters.late, engine.counters.duplicate) == (1, 0)


def test_late_ping_older_than_applied_ping_of_device_behind_frontier() -> None:
    # d2 at 100 puts the frontier at 70; d1's 0 is applied at once; d1's -5 then arrives:
    # within 30 s of d1's latest but older than an applied ping, so late (docs/semantics.md)
    engine = Engine(FenceIndex([fence_a()]), EngineParams())
    result = engine.process(batch([P(100, "far", "d2"), P(0, "out"), P(-5, "a")]))
    events = [e.to_dict() for e in [*result.events, *engine.flush()]]
    assert brief(events) == []
    assert result.late.tolist() == [2]
    assert engine.counters.late == 1


# Sorted track: d1 0 out, 10 a, 20 ab, 30 b, 40 out; d2 5 b, 25 out.
REORDER_TRACK = {
    "d1-0": P(0, "out"),
    "d1-10": P(10, "a"),
    "d1-20": P(20, "ab"),
    "d1-30": P(30, "b"),
    "d1-40": P(40, "out"),
    "d2-5": P(5, "b", "d2"),
    "d2-25": P(25, "out", "d2"),
}
REORDER_EXPECTED = [
    ("d2", "enter", "B", 5.0),
    ("d1", "enter", "A", 10.0),
    ("d1", "enter", "B", 20.0),
    ("d2", "exit", "B", 25.0, 20.0, "left"),
    ("d1", "exit", "A", 30.0, 20.0, "left"),
    ("d1", "exit", "B", 40.0, 20.0, "left"),
]


@pytest.mark.parametrize(
    "order",
    [
        ["d1-0", "d2-5", "d1-10", "d1-20", "d2-25", "d1-30", "d1-40"],  # sorted
        ["d1-10", "d1-0", "d1-20", "d2-5", "d1-30", "d2-25", "d1-40"],  # neighbours swapped
        ["d1-30", "d1-20", "d2-5", "d1-10", "d1-0", "d2-25", "d1-40"],  # d1 reversed up to 30 s back
        ["d2-25", "d1-30", "d1-10", "d2-5", "d1-20", "d1-0", "d1-40"],  # devices interleaved, d1-0 exactly 30 s back
    ],
)
def test_reorder_within_lateness_same_events_as_sorted(order: list[str]) -> None:
    events, engine = run([REORDER_TRACK[k] for k in order])
    assert brief(events, device=True) == REORDER_EXPECTED
    assert engine.counters.late == 0


def test_reorder_device_feed_behind_stream_same_events_per_device() -> None:
    # d2's pings arrive after d1's 40 (frontier 10): on time for d2 (its own latest), applied in
    # order; each device's events are those of sorted input (only the interleaving may differ)
    order = ["d1-30", "d1-20", "d1-10", "d1-0", "d1-40", "d2-5", "d2-25"]
    events, engine = run([REORDER_TRACK[k] for k in order])
    got = brief(events, device=True)
    for device in ("d1", "d2"):
        assert [e for e in got if e[0] == device] == [e for e in REORDER_EXPECTED if e[0] == device]
    assert engine.counters.late == 0


def test_reorder_beyond_lateness_ping_dropped_as_late() -> None:
    # d1-0 arrives after d1-40: 0 < 40 - 30, late; the rest is applied in ts order
    order = ["d1-10", "d2-5", "d1-20", "d2-25", "d1-30", "d1-40", "d1-0"]
    events, engine = run([REORDER_TRACK[k] for k in order])
    assert brief(events, device=True) == REORDER_EXPECTED
    assert engine.counters.late == 1


# Two devices, a duplicate, an uncertain fix and a loss detected by the other device's pings:
# d1 0 out, 10 a, 20 ab (twice), 40 b, 50 out, then silent until 410 a, 420 a;
# d2 5 b, 15 out (uncertain), 25 out, 200 far, 400 far.
# d2's 400 lifts the watermark to 370 > 50 + 300: d1 lost at 50 (no open visit: no EXIT).
MIXED_TRACK = [
    P(0, "out"),
    P(5, "b", "d2"),
    P(10, "a"),
    P(15, "out", "d2", acc=BAD),
    P(20, "ab"),
    P(20, "ab"),
    P(25, "out", "d2"),
    P(40, "b"),
    P(50, "out"),
    P(200, "far", "d2"),
    P(400, "far", "d2"),
    P(410, "a"),
    P(420, "a"),
]
MIXED_EXPECTED = [
    ("d2", "enter", "B", 5.0),
    ("d1", "enter", "A", 10.0),
    ("d1", "enter", "B", 20.0),
    ("d2", "exit", "B", 25.0, 20.0, "left"),
    ("d1", "exit", "A", 40.0, 30.0, "left"),
    ("d1", "exit", "B", 50.0, 30.0, "left"),
    ("d1", "signal_lost", 50.0, 50.0),
    ("d1", "signal_restored", 410.0, 360.0),
    ("d1", "enter", "A", 410.0),
]
# d1: A 10-40 and 410-420 (open, to the last ping 420); B 20-50. d2: B 5-25.
MIXED_DWELL = {("d1", "A"): (2, 40.0), ("d1", "B"): (1, 30.0), ("d2", "B"): (1, 20.0)}
# (active, inside, outside, lost) seconds. d1: active 0-50 and 410-420 = 60, lost 50-410 = 360,
# inside 10-50 (A and B, once) + 410-420 = 50, outside 60 - 50 = 10. d2: active 5-400 = 395,
# inside 5-25 = 20, outside 375, never lost.
MIXED_DEVICES = {"d1": (60.0, 50.0, 10.0, 360.0), "d2": (395.0, 20.0, 375.0, 0.0)}


def device_rows(engine: Engine) -> dict[str, tuple[float, float, float, float]]:
    return {d: (t["active_s"], t["inside_s"], t["outside_s"], t["lost_s"]) for d, t in engine.device_totals().items()}


@pytest.mark.parametrize(
    "batch_size",
    [
        None,  # one batch
        1,  # one ping per batch
        2,
        3,  # cuts between the duplicate pair and elsewhere
        5,
        12,  # all but the last ping, then one
    ],
)
def test_batch_split_same_events_and_dwell(batch_size: int | None) -> None:
    events, engine = run(MIXED_TRACK, batch_size=batch_size)
    assert brief(events, device=True) == MIXED_EXPECTED
    assert engine.dwell_totals() == MIXED_DWELL
    assert device_rows(engine) == MIXED_DEVICES


@pytest.mark.parametrize("batch_size", [None, 1, 2])
def test_batch_split_debounce_same_events(batch_size: int | None) -> None:
    # debounce 30: ENTER A at 10 (confirmed 40), bounce at 50/60 cancelled, EXIT at 100 (confirmed 130)
    track = [P(0, "out"), P(10, "a"), P(25, "a"), P(40, "a"), P(50, "out"), P(60, "a"), P(100, "out"), P(130, "out")]
    events, _ = run(track, params=DEBOUNCE_30, batch_size=batch_size)
    assert brief(events) == [("enter", "A", 10.0), ("exit", "A", 100.0, 90.0, "left")]


@pytest.mark.parametrize(
    "cut",
    [
        1,  # after the first ping
        4,  # d2's uncertain fix seen, pings held for reordering
        5,  # between the two copies of the duplicate
        9,  # after d1's last ping before the silence
        10,  # after d2's 200
        11,  # after d2's 400, before the restoring ping
        12,  # before the very last ping
    ],
)
def test_snapshot_json_restore_midstream_same_events_and_dwell(cut: int) -> None:
    params = EngineParams()
    first = Engine(FenceIndex([fence_a(), fence_b()]), params)
    events, _ = feed(first, MIXED_TRACK[:cut])
    snap = json.loads(json.dumps(first.snapshot()))
    second = Engine.restore(snap, FenceIndex([fence_a(), fence_b()]), params)
    more, _ = feed(second, MIXED_TRACK[cut:])
    events += more + [e.to_dict() for e in second.flush()]
    assert brief(events, device=True) == MIXED_EXPECTED
    assert second.dwell_totals() == MIXED_DWELL
    assert device_rows(second) == MIXED_DEVICES
    assert second.counters.duplicate == 1


@pytest.mark.parametrize("cut", [2, 3, 5, 6])
def test_snapshot_restore_keeps_pending_debounce_candidate(cut: int) -> None:
    # debounce 30, lateness 0: the candidate started at 10 survives the restart, ENTER at 10
    params = EngineParams(debounce_s=30.0, max_lateness_s=0.0)
    track = [P(0, "out"), P(10, "a"), P(25, "a"), P(40, "a"), P(100, "out"), P(120, "out"), P(130, "out")]
    first = Engine(FenceIndex([fence_a()]), params)
    events, _ = feed(first, track[:cut], batch_size=1)
    second = Engine.restore(json.loads(json.dumps(first.snapshot())), FenceIndex([fence_a()]), params)
    more, _ = feed(second, track[cut:], batch_size=1)
    events += more + [e.to_dict() for e in second.flush()]
    assert brief(events) == [("enter", "A", 10.0), ("exit", "A", 100.0, 90.0, "left")]


# ---------------------------------------------------------------------------- event ids


def test_event_id_deterministic_across_runs() -> None:
    first, _ = run(MIXED_TRACK)
    second, _ = run(MIXED_TRACK, batch_size=1)
    assert [e["event_id"] for e in first] == [e["event_id"] for e in second]
    assert len({e["event_id"] for e in first}) == 9  # nine events, nine different ids


@pytest.mark.parametrize(
    ("track_a", "track_b"),
    [
        ([P(10, "a")], [P(11, "a")]),  # ENTER one second later
        ([P(10, "a")], [P(10.5, "a")]),  # half a second later
        ([P(0, "a"), P(10, "out")], [P(0, "a"), P(20, "out")]),  # EXIT later (first event, the ENTER, is equal)
    ],
)
def test_event_id_differs_for_different_ts(track_a: list[P], track_b: list[P]) -> None:
    ids_a = [e["event_id"] for e in run(track_a)[0]]
    ids_b = [e["event_id"] for e in run(track_b)[0]]
    assert ids_a[-1] != ids_b[-1]


def test_event_id_same_ts_differs_by_type_device_and_fence() -> None:
    # all at ts 0: d1 ENTER A, ENTER B; d2 ENTER A; d1's 400 lifts the watermark to 370 > 0 + 300, so
    # both are lost at 0: d1 EXIT A, EXIT B (dwell 0), SIGNAL_LOST; d2 EXIT A, SIGNAL_LOST. 8 events at 0.
    events, _ = run([P(0, "ab"), P(0, "a", "d2"), P(400, "out")])
    at_zero = [
        (e["device_id"], e["type"], e["fence_id"], e["event_id"]) for e in events if e["ts"].endswith("22:00:00Z")
    ]
    assert len(at_zero) == 8
    assert len({row[3] for row in at_zero}) == 8


# ---------------------------------------------------------------------------- end of input


@pytest.mark.parametrize(
    ("track", "expected_events", "dwell"),
    [
        # inside A from 0, last ping 120: open, 120 s
        ([P(0, "a"), P(50, "a"), P(120, "a")], [("enter", "A", 0.0)], {("d1", "A"): (1, 120.0)}),
        # the last ping an uncertain fix at 90: still a ping, dwell to 90
        ([P(0, "a"), P(90, "out", acc=BAD)], [("enter", "A", 0.0)], {("d1", "A"): (1, 90.0)}),
        # d2 pings up to 250 (watermark 220 < 0 + 300): d1 not lost, its open visit counts 0 s
        ([P(0, "a"), P(100, "far", "d2"), P(250, "far", "d2")], [("enter", "A", 0.0)], {("d1", "A"): (1, 0.0)}),
        # one finished visit (10 s) and an open one from 30 to the last ping 45
        (
            [P(0, "a"), P(10, "out"), P(30, "a"), P(45, "a")],
            [("enter", "A", 0.0), ("exit", "A", 10.0, 10.0, "left"), ("enter", "A", 30.0)],
            {("d1", "A"): (2, 25.0)},
        ),
    ],
)
def test_flush_open_visits_stay_open_dwell_to_last_ping(track: list[P], expected_events: list, dwell: dict) -> None:
    events, engine = run(track, fences=[fence_a()])
    assert brief(events) == expected_events
    assert engine.dwell_totals() == dwell


def test_flush_emits_no_exit_or_loss_for_silent_device() -> None:
    engine = Engine(FenceIndex([fence_a()]), EngineParams())
    engine.process(batch([P(0, "a"), P(10, "a")]))
    assert brief([e.to_dict() for e in engine.flush()]) == [("enter", "A", 0.0)]
    assert engine.flush() == []  # a second flush: nothing more


# ---------------------------------------------------------------------------- dwell totals

# One device, two overlapping fences (timeout 300, lateness 30):
#   0 out | 60 a | 120 ab | 180 b | 240 out | 300 a | 360 a | (silence 331 s) | 691 ab | 751 b
# A: 60-180 (120 s), 300-360 (60 s, closed by the loss), 691-751 (60 s)  -> 3 visits, 240 s
# B: 120-240 (120 s), 691-751 (open, to the last ping: 60 s)              -> 2 visits, 180 s
# inside (union): 60-240 (180) + 300-360 (60) + 691-751 (60) = 300 s
# active: 0-360 (360) + 691-751 (60) = 420 s; lost: 360-691 = 331 s; outside: 420 - 300 = 120 s
DWELL_TRACK = [
    P(0, "out"),
    P(60, "a"),
    P(120, "ab"),
    P(180, "b"),
    P(240, "out"),
    P(300, "a"),
    P(360, "a"),
    P(691, "ab"),
    P(751, "b"),
]


def test_dwell_timeline_two_overlapping_fences_events() -> None:
    events, _ = run(DWELL_TRACK)
    assert brief(events) == [
        ("enter", "A", 60.0),
        ("enter", "B", 120.0),
        ("exit", "A", 180.0, 120.0, "left"),
        ("exit", "B", 240.0, 120.0, "left"),
        ("enter", "A", 300.0),
        ("exit", "A", 360.0, 60.0, "signal_lost"),
        ("signal_lost", 360.0, 360.0),
        ("signal_restored", 691.0, 331.0),
        ("enter", "A", 691.0),
        ("enter", "B", 691.0),
        ("exit", "A", 751.0, 60.0, "left"),
    ]


def test_dwell_totals_visits_and_dwell_per_fence() -> None:
    _, engine = run(DWELL_TRACK)
    assert engine.dwell_totals() == {("d1", "A"): (3, 240.0), ("d1", "B"): (2, 180.0)}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("active_s", 420.0),  # 0-360 and 691-751; the lost gap is not active
        ("inside_s", 300.0),  # union of A and B visits: the overlap 120-180 and 691-751 counted once
        ("outside_s", 120.0),  # 0-60 and 240-300
        ("lost_s", 331.0),  # 360-691
        ("pings", 9.0),
    ],
)
def test_device_totals_inside_outside_lost_active(key: str, value: float) -> None:
    _, engine = run(DWELL_TRACK)
    assert engine.device_totals()["d1"][key] == value


def test_device_totals_two_devices_kept_apart() -> None:
    # d1: A 0-50 (finished), then out to 80; d2: B 10-70 open, last ping 70
    track = [P(0, "a"), P(10, "b", "d2"), P(50, "out"), P(70, "b", "d2"), P(80, "out")]
    _, engine = run(track)
    assert device_rows(engine) == {"d1": (80.0, 50.0, 30.0, 0.0), "d2": (60.0, 60.0, 0.0, 0.0)}
    assert engine.dwell_totals() == {("d1", "A"): (1, 50.0), ("d2", "B"): (1, 60.0)}


# ---------------------------------------------------------------------------- event order and record


@pytest.mark.parametrize(
    ("track", "params", "expected"),
    [
        # a -> b in one step: EXIT A then ENTER B, both at 10
        (
            [P(0, "a"), P(10, "b")],
            EngineParams(),
            [("enter", "A", 0.0), ("exit", "A", 10.0, 10.0, "left"), ("enter", "B", 10.0)],
        ),
        # ab -> out -> ab: two EXITs then two ENTERs
        (
            [P(0, "ab"), P(10, "out"), P(20, "ab")],
            EngineParams(),
            [
                ("enter", "A", 0.0),
                ("enter", "B", 0.0),
                ("exit", "A", 10.0, 10.0, "left"),
                ("exit", "B", 10.0, 10.0, "left"),
                ("enter", "A", 20.0),
                ("enter", "B", 20.0),
            ],
        ),
        # debounce 30: a -> b at 10, both changes confirmed at 40: EXIT A before ENTER B
        (
            [P(0, "a"), P(30, "a"), P(40, "b"), P(70, "b")],
            DEBOUNCE_30,
            [("enter", "A", 0.0), ("exit", "A", 40.0, 40.0, "left"), ("enter", "B", 40.0)],
        ),
    ],
)
def test_event_order_exits_before_enters_at_same_ping(track: list[P], params: EngineParams, expected: list) -> None:
    events, _ = run(track, params=params)
    assert brief(events) == expected


OFFICER = {"officer_id": "o-17", "callsign": "K9-2"}


@pytest.mark.parametrize(
    ("track", "expected"),
    [
        # ENTER carries the entering ping's fields
        ([P(0, "a", extras=OFFICER)], [("enter", "o-17", "K9-2")]),
        # EXIT (left) carries the ping that left
        (
            [P(0, "a"), P(10, "out", extras={"officer_id": "o-3", "callsign": "Z1"})],
            [("enter", None, None), ("exit", "o-3", "Z1")],
        ),
        # loss: EXIT and SIGNAL_LOST carry the last ping's fields, SIGNAL_RESTORED the restoring one's
        (
            [P(0, "a", extras=OFFICER), P(400, "out", extras={"officer_id": "o-5", "callsign": "B4"})],
            [
                ("enter", "o-17", "K9-2"),
                ("exit", "o-17", "K9-2"),
                ("signal_lost", "o-17", "K9-2"),
                ("signal_restored", "o-5", "B4"),
            ],
        ),
    ],
)
def test_event_record_carries_officer_id_and_callsign(track: list[P], expected: list) -> None:
    events, _ = run(track)
    assert [(e["type"], e.get("officer_id"), e.get("callsign")) for e in events] == expected


def test_event_record_json_fields() -> None:
    events, _ = run([P(0, "a"), P(612, "out", extras={"officer_id": "o-1"})], params=EngineParams(signal_timeout_s=900))
    exit_event = json.loads(json.dumps(events[1]))
    assert {k: v for k, v in exit_event.items() if k != "event_id"} == {
        "type": "exit",
        "device_id": "d1",
        "fence_id": "A",
        "ts": "2026-11-21T22:10:12Z",  # 22:00:00 + 612 s
        "dwell_s": 612.0,
        "reason": "left",
        "lat": PLACES["out"][0],
        "lon": PLACES["out"][1],
        "officer_id": "o-1",
    }


# ---------------------------------------------------------------------------- counters


def test_counters_pings_applied_uncertain_duplicate_late_events() -> None:
    # 13 pings: 1 duplicate (d1 20), 12 applied, 1 uncertain (d2 15); then one late ping (d1 at 300)
    events, engine = run([*MIXED_TRACK, P(300, "a")])
    c = engine.counters
    assert (c.pings, c.applied, c.uncertain, c.duplicate, c.late) == (14, 12, 1, 1, 1)
    assert dict(c.events) == {"enter": 4, "exit": 3, "signal_lost": 1, "signal_restored": 1}
    assert len(events) == 9


def test_dwell_totals_device_never_inside_no_rows_all_outside() -> None:
    _, engine = run([P(0, "far"), P(10, "far")])
    assert engine.dwell_totals() == {}
    assert engine.device_totals()["d1"]["outside_s"] == 10.0


def test_engine_empty_batch_finds_no_loss_the_next_ping_would_order_differently() -> None:
    # b's ping at 42 is applied behind the watermark (63): b is proven lost only at the next
    # released ping (84), together with a, in first-seen order. An empty batch in between
    # (no ping, no clock) must not report b early: the output is the same however it is cut.
    arrivals = [("a", 2), ("b", 0), ("a", 22), ("a", 23), ("b", 20), ("a", 43), ("a", 63), ("b", 42), ("b", 84)]
    params = EngineParams(signal_timeout_s=20, max_lateness_s=0)

    def run(cuts: list[int]) -> list[tuple[str, str, float]]:
        engine, out, i = Engine(FenceIndex([]), params), [], 0
        for n in cuts:
            part = arrivals[i : i + n]
            i += n
            batch = PingBatch.from_columns([d for d, _ in part], [t for _, t in part], [0.0] * n, [0.0] * n)
            out += engine.process(batch).events
        out += engine.flush()
        return [(e.type.value, e.device_id, e.ts) for e in out]

    expected_tail = [("signal_lost", "a", 63.0), ("signal_lost", "b", 42.0), ("signal_restored", "b", 84.0)]
    assert run([1] * 9)[-3:] == expected_tail
    assert run([1, 7, 0, 1]) == run([1] * 9)
