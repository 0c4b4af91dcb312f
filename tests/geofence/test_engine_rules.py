"""The rules of SEMANTICS.md (as read in docs/semantics.md), one behaviour per test, worked by hand.

Fences (tests/support/helpers.py): A is the 0.001 deg square lon [0, 0.001] x lat [0, 0.001] at the
equator; B is lon [0.0005, 0.0015] x lat [0, 0.001], overlapping A's east half. Places: "out" (in
neither), "a" (A only), "ab" (both), "b" (B only), "far" (1 km east). Times are seconds after T0.
Unless a case says otherwise: debounce_s 0, max_accuracy_m 100, signal_timeout_s 300,
max_lateness_s 30, so a device is lost once the watermark (latest ts - 30) passes its last
ping + 300, i.e. once any ping arrives more than 330 s after it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.helpers import (
    M_PER_DEG_LAT,
    NAN,
    PLACES,
    P,
    batch,
    brief,
    feed,
    fence_a,
    fence_b,
    m_per_deg_lon,
    run,
    square_fence,
)

from geofence.engine import Engine
from geofence.index import FenceIndex
from geofence.params import EngineParams
from geofence.pings import PingBatch

DEBOUNCE_30 = EngineParams(debounce_s=30.0)
NO_LATENESS = EngineParams(max_lateness_s=0.0)
BAD = 500.0  # an accuracy worse than max_accuracy_m (100): an uncertain ping


# ---------------------------------------------------------------------------- containment


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (0.0005, 0.0, [("enter", "A", 0.0)]),  # on the west edge
        (0.0, 0.0005, [("enter", "A", 0.0)]),  # on the south edge
        (0.001, 0.0005, [("enter", "A", 0.0)]),  # on the north edge
        (0.0005, 0.001, [("enter", "A", 0.0)]),  # on the east edge
        (0.0, 0.0, [("enter", "A", 0.0)]),  # on the south-west vertex
        (0.001, 0.001, [("enter", "A", 0.0)]),  # on the north-east vertex
        (0.0005, -1e-9, []),  # 1e-9 deg (0.1 mm) west of the west edge
        (-1e-12, 0.0005, []),  # 1e-12 deg south of the south edge
        (0.001 + 1e-9, 0.0005, []),  # a hair north of the north edge
        (0.0005, 0.001 + 1e-12, []),  # a hair east of the east edge
        (0.001 + 1e-9, 0.001 + 1e-9, []),  # a hair beyond the north-east vertex, diagonally
    ],
)
def test_containment_boundary_point_inside_hair_outside_outside(lat: float, lon: float, expected: list) -> None:
    events, _ = run([P(0, (lat, lon))], fences=[fence_a()])
    assert brief(events) == expected


# Metres to degrees by hand: 1 deg lat = 111 195 m everywhere; 1 deg lon = 111 195 m at the
# equator and 111 195 x cos(51.5 deg) = 111 195 x 0.62251 = 69 220 m at London.
@pytest.mark.parametrize(
    ("lat0", "lat", "lon", "expected"),
    [
        (0.0, 0.001 + 8 / M_PER_DEG_LAT, 0.0005, [("enter", "A", 0.0)]),  # 8 m north of the north edge: inside
        (0.0, 0.001 + 12 / M_PER_DEG_LAT, 0.0005, []),  # 12 m north: outside
        (0.0, -8 / M_PER_DEG_LAT, 0.0005, [("enter", "A", 0.0)]),  # 8 m south of the south edge
        (0.0, 0.0005, 0.001 + 8 / M_PER_DEG_LAT, [("enter", "A", 0.0)]),  # 8 m east at the equator
        (0.0, 0.0005, 0.001 + 12 / M_PER_DEG_LAT, []),  # 12 m east at the equator
        (51.5, 51.5005, 0.001 + 8 / m_per_deg_lon(51.5), [("enter", "A", 0.0)]),  # 8 m east at London
        (51.5, 51.5005, 0.001 + 12 / m_per_deg_lon(51.5), []),  # 12 m east at London (8 "equator metres")
        (51.5, 51.501 + 8 / M_PER_DEG_LAT, 0.0005, [("enter", "A", 0.0)]),  # 8 m north at London
        (51.5, 51.501 + 12 / M_PER_DEG_LAT, 0.0005, []),  # 12 m north at London
    ],
)
def test_containment_buffer_10m_point_8m_out_inside_12m_out_outside(
    lat0: float, lat: float, lon: float, expected: list
) -> None:
    fence = square_fence("A", lon0=0.0, lat0=lat0, buffer_m=10.0)
    events, _ = run([P(0, (lat, lon))], fences=[fence])
    assert brief(events) == expected


@pytest.mark.parametrize(
    ("acc", "params", "expected"),
    [
        (NAN, EngineParams(), [("enter", "A", 0.0)]),  # accuracy missing: certain
        (0.0, EngineParams(), [("enter", "A", 0.0)]),  # a perfect fix
        (100.0, EngineParams(), [("enter", "A", 0.0)]),  # exactly max_accuracy_m: not worse, certain
        (100.5, EngineParams(), []),  # worse than 100 m: uncertain, no ENTER
        (25.0, EngineParams(max_accuracy_m=20.0), []),  # worse than a tighter max_accuracy_m
        (20.0, EngineParams(max_accuracy_m=20.0), [("enter", "A", 0.0)]),  # equal to it
    ],
)
def test_accuracy_certain_up_to_max_missing_is_certain(acc: float, params: EngineParams, expected: list) -> None:
    events, _ = run([P(0, "a", acc=acc)], params=params)
    assert brief(events) == expected


@pytest.mark.parametrize(
    ("track", "expected"),
    [
        # outside, then an uncertain fix inside A: no ENTER
        ([P(0, "out"), P(10, "a", acc=BAD)], []),
        # inside A, then an uncertain fix outside: no EXIT
        ([P(0, "a"), P(10, "out", acc=BAD)], [("enter", "A", 0.0)]),
        # inside A, uncertain fix in B only, then certain in A again: nothing changes
        ([P(0, "a"), P(10, "b", acc=BAD), P(20, "a")], [("enter", "A", 0.0)]),
        # the certain ping after the uncertain one still changes state, at its own ts
        ([P(0, "out"), P(10, "a", acc=BAD), P(20, "a")], [("enter", "A", 20.0)]),
    ],
)
def test_uncertain_ping_changes_no_state(track: list[P], expected: list) -> None:
    events, _ = run(track)
    assert brief(events) == expected


@pytest.mark.parametrize(
    ("track", "expected"),
    [
        # uncertain fixes every 200 s (< 330 s apart) keep the device alive for 600 s
        ([P(0, "a"), P(200, "out", acc=BAD), P(400, "out", acc=BAD), P(600, "a")], [("enter", "A", 0.0)]),
        # same with uncertain fixes only, until the end of input
        ([P(0, "a"), P(300, "far", acc=BAD), P(600, "far", acc=BAD), P(900, "far", acc=BAD)], [("enter", "A", 0.0)]),
    ],
)
def test_uncertain_pings_keep_device_alive_no_signal_loss(track: list[P], expected: list) -> None:
    events, _ = run(track)
    assert brief(events) == expected


def test_uncertain_pings_keep_visit_open_dwell_to_last_ping() -> None:
    # inside A from 0; uncertain fixes at 200 and 400; the last ping (600) is inside: 600 s
    track = [P(0, "a"), P(200, "out", acc=BAD), P(400, "out", acc=BAD), P(600, "a")]
    _, engine = run(track)
    assert engine.dwell_totals() == {("d1", "A"): (1, 600.0)}
    assert engine.counters.uncertain == 2


# ---------------------------------------------------------------------------- debounce


@pytest.mark.parametrize(
    ("track", "expected"),
    [
        # 10 in, 25 in, 40 in: 40 - 10 = 30 >= 30 confirms, ENTER at 10
        ([P(0, "out"), P(10, "a"), P(25, "a"), P(40, "a")], [("enter", "A", 10.0)]),
        # the last ping 39 - 10 = 29 < 30: still pending at the end, no ENTER
        ([P(0, "out"), P(10, "a"), P(25, "a"), P(39, "a")], []),
        # no ping in between needed: 100 - 10 >= 30
        ([P(10, "a"), P(100, "a")], [("enter", "A", 10.0)]),
        # per fence: A from 10 (confirmed at 40), B from 20 (confirmed at 50)
        (
            [P(0, "out"), P(10, "a"), P(20, "ab"), P(40, "ab"), P(45, "ab"), P(50, "ab")],
            [("enter", "A", 10.0), ("enter", "B", 20.0)],
        ),
        # a first ping ever inside starts OUTSIDE and needs confirming too: ENTER at 0
        ([P(0, "a"), P(30, "a")], [("enter", "A", 0.0)]),
        # EXIT debounced as well: out from 100, confirmed at 130, EXIT at 100 with dwell 100 - 0
        (
            [P(0, "a"), P(30, "a"), P(100, "out"), P(110, "out"), P(130, "out")],
            [("enter", "A", 0.0), ("exit", "A", 100.0, 100.0, "left")],
        ),
        # out from 100 but the last ping is at 129 (29 s): no EXIT
        ([P(0, "a"), P(30, "a"), P(100, "out"), P(129, "out")], [("enter", "A", 0.0)]),
    ],
)
def test_debounce_confirmed_at_debounce_s_event_at_first_ping(track: list[P], expected: list) -> None:
    events, _ = run(track, params=DEBOUNCE_30)
    assert brief(events) == expected


def test_debounce_event_carries_first_ping_position_not_confirming_one() -> None:
    track = [P(0, "out"), P(10, (0.0005, 0.00025)), P(40, (0.0002, 0.0002))]
    events, _ = run(track, params=DEBOUNCE_30)
    assert [(e["type"], e["lat"], e["lon"]) for e in events] == [("enter", 0.0005, 0.00025)]


def test_debounce_event_emitted_only_with_confirming_ping() -> None:
    # lateness 0, one ping per batch: nothing comes out until the ping at 40 confirms the ENTER at 10
    engine = Engine(FenceIndex([fence_a()]), EngineParams(debounce_s=30.0, max_lateness_s=0.0))
    track = [P(0, "out"), P(10, "a"), P(25, "a"), P(40, "a")]
    per_batch = [brief([e.to_dict() for e in engine.process(batch([p])).events]) for p in track]
    assert per_batch == [[], [], [], [("enter", "A", 10.0)]]


@pytest.mark.parametrize(
    ("track", "expected"),
    [
        # in at 10, out at 20 cancels; in again at 45 restarts: 75 - 45 = 30 confirms, ENTER at 45
        ([P(0, "out"), P(10, "a"), P(20, "out"), P(45, "a"), P(75, "a")], [("enter", "A", 45.0)]),
        # same, but the last ping is at 70 (25 s after 45): nothing, although 70 - 10 >= 30
        ([P(0, "out"), P(10, "a"), P(20, "out"), P(45, "a"), P(70, "a")], []),
        # an EXIT candidate (out at 100) cancelled by an inside ping at 110: no EXIT later
        ([P(0, "a"), P(30, "a"), P(100, "out"), P(110, "a"), P(200, "a")], [("enter", "A", 0.0)]),
        # EXIT candidate at 40 cancelled at 50, a new one at 60 confirmed at 90: EXIT at 60, dwell 60
        (
            [P(0, "a"), P(30, "a"), P(40, "out"), P(50, "a"), P(60, "out"), P(70, "out"), P(90, "out")],
            [("enter", "A", 0.0), ("exit", "A", 60.0, 60.0, "left")],
        ),
        # a B candidate cancelled while A (shown throughout) stays entered
        ([P(0, "a"), P(30, "a"), P(40, "ab"), P(50, "a"), P(100, "a")], [("enter", "A", 0.0)]),
    ],
)
def test_debounce_bounce_back_cancels_candidate(track: list[P], expected: list) -> None:
    events, _ = run(track, params=DEBOUNCE_30)
    assert brief(events) == expected


@pytest.mark.parametrize(
    ("track", "expected"),
    [
        # an uncertain fix showing the old state (out) does not cancel: ENTER at 10 confirmed at 40
        ([P(0, "out"), P(10, "a"), P(20, "out", acc=BAD), P(40, "a")], [("enter", "A", 10.0)]),
        # an uncertain fix 35 s after the start does not confirm
        ([P(0, "out"), P(10, "a"), P(45, "a", acc=BAD)], []),
        # ... the next certain fix does, with the start ping's ts
        ([P(0, "out"), P(10, "a"), P(45, "a", acc=BAD), P(50, "a")], [("enter", "A", 10.0)]),
        # an uncertain fix does not start a candidate either: ENTER at the certain 20, confirmed at 50
        ([P(0, "out"), P(10, "a", acc=BAD), P(20, "a"), P(45, "a"), P(50, "a")], [("enter", "A", 20.0)]),
    ],
)
def test_debounce_uncertain_ping_neither_confirms_nor_cancels(track: list[P], expected: list) -> None:
    events, _ = run(track, params=DEBOUNCE_30)
    assert brief(events) == expected


def test_debounce_dwell_unbiased_by_confirmation_delay() -> None:
    # ENTER at 10 (confirmed 40), EXIT at 200 (confirmed 230): dwell 190, not 230 - 40
    track = [P(0, "out"), P(10, "a"), P(40, "a"), P(200, "out"), P(230, "out")]
    events, engine = run(track, params=DEBOUNCE_30)
    assert brief(events) == [("enter", "A", 10.0), ("exit", "A", 200.0, 190.0, "left")]
    assert engine.dwell_totals() == {("d1", "A"): (1, 190.0)}


# ---------------------------------------------------------------------------- signal loss


def test_signal_loss_by_other_device_watermark_exits_at_last_ping_then_signal_lost() -> None:
    # d1 enters A at 0 and B at 50, then falls silent. d2's ping at 381 lifts the watermark to
    # 381 - 30 = 351 > 50 + 300: d1 is lost. EXITs at 50 (A: dwell 50, B: dwell 0), SIGNAL_LOST at 50.
    track = [P(0, "a"), P(50, "ab"), P(100, "far", "d2"), P(381, "far", "d2")]
    events, _ = run(track)
    assert brief(events, device=True) == [
        ("d1", "enter", "A", 0.0),
        ("d1", "enter", "B", 50.0),
        ("d1", "exit", "A", 50.0, 50.0, "signal_lost"),
        ("d1", "exit", "B", 50.0, 0.0, "signal_lost"),
        ("d1", "signal_lost", 50.0, 50.0),
    ]


def test_signal_loss_exit_carries_last_ping_position() -> None:
    track = [P(0, "a"), P(50, "ab"), P(381, "far", "d2")]
    events, _ = run(track)
    exits = [(e["fence_id"], e["lat"], e["lon"]) for e in events if e["type"] in ("exit", "signal_lost")]
    assert exits == [("A", *PLACES["ab"]), ("B", *PLACES["ab"]), (None, *PLACES["ab"])]


@pytest.mark.parametrize(
    ("d2_ts", "expected"),
    [
        # watermark 380 - 30 = 350 = 50 + 300: not passed, d1 still alive
        (380.0, [("d1", "enter", "A", 0.0)]),
        # watermark 351 > 350: lost
        (
            381.0,
            [
                ("d1", "enter", "A", 0.0),
                ("d1", "exit", "A", 50.0, 50.0, "signal_lost"),
                ("d1", "signal_lost", 50.0, 50.0),
            ],
        ),
    ],
)
def test_signal_loss_watermark_must_pass_last_plus_timeout(d2_ts: float, expected: list) -> None:
    events, _ = run([P(0, "a"), P(50, "a"), P(60, "far", "d2"), P(d2_ts, "far", "d2")])
    assert brief(events, device=True) == expected


def _lost_and_back(gap: float) -> list[tuple[Any, ...]]:
    """Events of 0 a, 10 a, (10 + gap) a when the silence of `gap` seconds loses the device."""
    return [
        ("enter", "A", 0.0),
        ("exit", "A", 10.0, 10.0, "signal_lost"),
        ("signal_lost", 10.0, 10.0),
        ("signal_restored", 10.0 + gap, gap),
        ("enter", "A", 10.0 + gap),
    ]


@pytest.mark.parametrize(
    ("timeout", "lateness", "gap", "expected"),
    [
        (300.0, 30.0, 330.0, [("enter", "A", 0.0)]),  # gap = timeout + lateness: not lost
        (300.0, 30.0, 331.0, _lost_and_back(331.0)),  # one second more: lost, restored by the same ping
        (300.0, 0.0, 300.0, [("enter", "A", 0.0)]),  # no lateness: gap = timeout is not lost
        (300.0, 0.0, 301.0, _lost_and_back(301.0)),
        (60.0, 10.0, 70.0, [("enter", "A", 0.0)]),  # 60 + 10
        (60.0, 10.0, 71.0, _lost_and_back(71.0)),
        (60.0, 10.0, 70.5, _lost_and_back(70.5)),  # half a second more is enough
    ],
)
def test_signal_loss_own_next_ping_beyond_timeout_plus_lateness_lost_then_restored(
    timeout: float, lateness: float, gap: float, expected: list
) -> None:
    params = EngineParams(signal_timeout_s=timeout, max_lateness_s=lateness)
    events, _ = run([P(0, "a"), P(10, "a"), P(10 + gap, "a")], params=params)
    assert brief(events) == expected


@pytest.mark.parametrize(
    ("track", "params", "expected"),
    [
        # restored inside A: the device restarts OUTSIDE, so ENTER A again at 400
        (
            [P(0, "a"), P(400, "a")],
            EngineParams(),
            [
                ("enter", "A", 0.0),
                ("exit", "A", 0.0, 0.0, "signal_lost"),
                ("signal_lost", 0.0, 0.0),
                ("signal_restored", 400.0, 400.0),
                ("enter", "A", 400.0),
            ],
        ),
        # restored outside: SIGNAL_RESTORED only (the visit was already closed at the loss)
        (
            [P(0, "a"), P(400, "out")],
            EngineParams(),
            [
                ("enter", "A", 0.0),
                ("exit", "A", 0.0, 0.0, "signal_lost"),
                ("signal_lost", 0.0, 0.0),
                ("signal_restored", 400.0, 400.0),
            ],
        ),
        # restored by an uncertain fix inside: no ENTER until the certain fix at 410
        (
            [P(0, "out"), P(400, "a", acc=BAD), P(410, "a")],
            EngineParams(),
            [("signal_lost", 0.0, 0.0), ("signal_restored", 400.0, 400.0), ("enter", "A", 410.0)],
        ),
        # restored in the overlap: ENTER A and ENTER B again, at the restoring ping
        (
            [P(0, "ab"), P(20, "ab"), P(400, "ab")],
            EngineParams(),
            [
                ("enter", "A", 0.0),
                ("enter", "B", 0.0),
                ("exit", "A", 20.0, 20.0, "signal_lost"),
                ("exit", "B", 20.0, 20.0, "signal_lost"),
                ("signal_lost", 20.0, 20.0),
                ("signal_restored", 400.0, 380.0),
                ("enter", "A", 400.0),
                ("enter", "B", 400.0),
            ],
        ),
        # debounce 30: a candidate from 10 is dropped at the loss; the restoring ping starts afresh
        (
            [P(0, "out"), P(10, "a"), P(400, "a"), P(430, "a")],
            DEBOUNCE_30,
            [("signal_lost", 10.0, 10.0), ("signal_restored", 400.0, 390.0), ("enter", "A", 400.0)],
        ),
    ],
)
def test_signal_restored_gap_s_then_device_restarts_outside(
    track: list[P], params: EngineParams, expected: list
) -> None:
    events, _ = run(track, params=params)
    assert brief(events) == expected


def test_signal_loss_pending_debounce_exit_closes_visit_at_last_ping() -> None:
    # inside A from 0 (confirmed at 30); out at 100 is a pending EXIT candidate when the device
    # goes silent: the loss closes the visit at the last ping (100), reason signal_lost
    track = [P(0, "a"), P(30, "a"), P(100, "out"), P(500, "out")]
    events, _ = run(track, params=DEBOUNCE_30)
    assert brief(events) == [
        ("enter", "A", 0.0),
        ("exit", "A", 100.0, 100.0, "signal_lost"),
        ("signal_lost", 100.0, 100.0),
        ("signal_restored", 500.0, 400.0),
    ]


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
