"""The rules of SEMANTICS.md (as read in docs/semantics.md), one behaviour per test, worked by hand.

Fences (tests/support/helpers.py): A is the 0.001 deg square lon [0, 0.001] x lat [0, 0.001] at the
equator; B is lon [0.0005, 0.0015] x lat [0, 0.001], overlapping A's east half. Places: "out" (in
neither), "a" (A only), "ab" (both), "b" (B only), "far" (1 km east). Times are seconds after T0.
Unless a case says otherwise: debounce_s 0, max_accuracy_m 100, signal_timeout_s 300,
max_lateness_s 30, so a device is lost once the watermark (latest ts - 30) passes its last
ping + 300, i.e. once any ping arrives more than 330 s after it.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.helpers import (
    BAD,
    DEBOUNCE_30,
    M_PER_DEG_LAT,
    NAN,
    PLACES,
    P,
    batch,
    brief,
    fence_a,
    m_per_deg_lon,
    run,
    square_fence,
)

from geofence.engine import Engine
from geofence.index import FenceIndex
from geofence.params import EngineParams

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
