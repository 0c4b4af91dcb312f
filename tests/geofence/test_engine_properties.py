"""Property tests: the engine against the brute-force reference model of tests/reference.py.

Random small fences near one point, random tracks for a few devices (hops in and out of fences,
uncertain fixes, gaps longer than the signal timeout, duplicates, pings shuffled within
max_lateness_s, some very late ones) and random parameters. The engine must produce what the
reference produces, whatever batch sizes the stream is cut into, whatever order the pings
arrive in within max_lateness_s, and across a snapshot/restore.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.reference import Reference

from geofence.engine import Engine
from geofence.events import Event, ExitReason
from geofence.fences import Fence, make_fence
from geofence.index import FenceIndex
from geofence.params import EngineParams
from geofence.pings import PingBatch

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

LON0, LAT0 = 13.4050, 52.5200
M_PER_DEG_LAT = 111_195.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT0))
T0 = 1_790_000_000.0
NAN = math.nan


def lonlat(x_m: float, y_m: float) -> tuple[float, float]:
    """A point x_m east and y_m north of the scenario's centre, as (lon, lat)."""
    return LON0 + x_m / M_PER_DEG_LON, LAT0 + y_m / M_PER_DEG_LAT


def ring(points_m: list[tuple[float, float]]) -> list[list[float]]:
    coords = [list(lonlat(x, y)) for x, y in points_m]
    return [*coords, coords[0]]


def rectangle_m(cx: float, cy: float, hw: float, hh: float, angle_deg: float) -> list[tuple[float, float]]:
    a = math.radians(angle_deg)
    corners = [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
    return [(cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)) for x, y in corners]


@dataclass(frozen=True)
class Arrival:
    device_id: str
    ts: float
    lat: float
    lon: float
    accuracy_m: float
    extras: dict[str, Any] | None


@dataclass(frozen=True)
class Scenario:
    fences: list[Fence]
    params: EngineParams
    arrivals: list[Arrival]
    sizes: list[int]  # batch sizes, summing to len(arrivals)


# ---------------------------------------------------------------------------- strategies


@st.composite
def fence_sets(draw: st.DrawFn) -> list[Fence]:
    """One to four small fences around the centre: rectangles, rotated ones, triangles, a pair."""
    fences = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["rect", "rotated", "triangle", "multi"]))
        cx, cy = draw(st.integers(-8, 8)) * 10.0, draw(st.integers(-8, 8)) * 10.0
        hw, hh = draw(st.integers(1, 6)) * 10.0, draw(st.integers(1, 6)) * 10.0
        buffer_m = draw(st.sampled_from([0.0, 0.0, 5.0, 12.5]))
        if kind == "rect":
            geometry = {"type": "Polygon", "coordinates": [ring(rectangle_m(cx, cy, hw, hh, 0.0))]}
        elif kind == "rotated":
            angle = draw(st.integers(1, 89))
            geometry = {"type": "Polygon", "coordinates": [ring(rectangle_m(cx, cy, hw, hh, angle))]}
        elif kind == "triangle":
            a = draw(st.integers(0, 119))
            angles = [math.radians(a + k) for k in (0, 120, 240)]
            corners = [(cx + hw * math.cos(t), cy + hw * math.sin(t)) for t in angles]
            geometry = {"type": "Polygon", "coordinates": [ring(corners)]}
        else:
            other_cx = cx + 2 * hw + 20.0
            geometry = {
                "type": "MultiPolygon",
                "coordinates": [
                    [ring(rectangle_m(cx, cy, hw, hh, 0.0))],
                    [ring(rectangle_m(other_cx, cy, hw, hh, 0.0))],
                ],
            }
        fences.append(make_fence(f"f{i}", geometry, buffer_m=buffer_m))
    return fences


def anchor_points(fences: list[Fence]) -> list[tuple[float, float]]:
    """(lon, lat) points worth visiting: inside each fence, on its boundary, and well outside."""
    points = [lonlat(400.0, 400.0), lonlat(-300.0, 250.0)]
    for fence in fences:
        inner = fence.area.representative_point()
        points.append((inner.x, inner.y))
        centroid = fence.area.centroid
        points.append((centroid.x, centroid.y))
        boundary = fence.area.exterior if fence.area.geom_type == "Polygon" else fence.area.geoms[0].exterior
        x, y = boundary.coords[0]
        points.append((x, y))  # a vertex: on the boundary, which counts as inside
    return points


EXTRAS_CHOICES: list[dict[str, Any] | None] = [
    None,
    None,
    {"officer_id": "o-1", "callsign": "K1"},
    {"officer_id": "o-2", "status": "patrol", "speed_mps": 1.5},
]


@st.composite
def engine_params(draw: st.DrawFn) -> EngineParams:
    return EngineParams(
        debounce_s=draw(st.sampled_from([0.0, 0.0, 5.0, 20.0, 45.0])),
        max_accuracy_m=draw(st.sampled_from([50.0, 100.0])),
        signal_timeout_s=draw(st.sampled_from([20.0, 60.0, 120.0])),
        max_lateness_s=draw(st.sampled_from([0.0, 10.0, 30.0])),
    )


def time_step(draw: st.DrawFn, params: EngineParams) -> float:
    """Seconds to a device's next ping: mostly short, sometimes right at a boundary of the rules."""
    silence = params.signal_timeout_s + params.max_lateness_s  # a longer gap gets the device lost
    kind = draw(st.integers(0, 11))
    if kind == 0:
        return silence + draw(st.integers(-1, 1))  # just not lost, exactly at the limit, just lost
    if kind == 1:
        return silence + draw(st.integers(2, 100))
    if kind == 2:
        return max(1.0, silence - draw(st.integers(2, 30)))  # a long gap that is not a loss
    if kind == 3:
        return params.debounce_s or 5.0  # exactly the debounce
    return draw(st.integers(1, 40)) + 0.5 * draw(st.integers(0, 1))


@st.composite
def sorted_tracks(draw: st.DrawFn, fences: list[Fence], params: EngineParams) -> list[Arrival]:
    """Random tracks of one to four devices, merged and sorted by ts (no duplicates)."""
    anchors = anchor_points(fences)
    pings: list[tuple[float, int, Arrival]] = []
    devices = ["unit-b", "unit-a", "unit-d", "unit-c"][: draw(st.integers(1, 4))]  # not in alphabetical order
    for rank, device_id in enumerate(devices):
        ts = T0 + draw(st.integers(0, 60))
        lon, lat = anchors[0]
        for k in range(draw(st.integers(1, 16))):
            if k:
                ts += time_step(draw, params)
            move = draw(st.integers(0, 9))
            if move < 3:
                pass  # stay put, so debounce can confirm
            elif move < 7:
                lon, lat = draw(st.sampled_from(anchors))
            else:
                lon, lat = lonlat(draw(st.integers(-25, 25)) * 5.0, draw(st.integers(-25, 25)) * 5.0)
            accuracy = draw(st.sampled_from([NAN, NAN, NAN, 5.0, params.max_accuracy_m, params.max_accuracy_m + 1]))
            extras = draw(st.sampled_from(EXTRAS_CHOICES))
            pings.append((ts, rank, Arrival(device_id, ts, lat, lon, accuracy, dict(extras) if extras else None)))
    pings.sort(key=lambda p: (p[0], p[1]))
    return [p[2] for p in pings]


@st.composite
def shuffled_within_lateness(draw: st.DrawFn, arrivals: list[Arrival], lateness: float) -> list[Arrival]:
    """Reorder so that no ping arrives after one more than `lateness` newer than itself."""
    jitter = [draw(st.integers(0, int(lateness))) for _ in arrivals]
    order = sorted(range(len(arrivals)), key=lambda i: arrivals[i].ts + jitter[i])
    return [arrivals[i] for i in order]


@st.composite
def batch_sizes(draw: st.DrawFn, n: int) -> list[int]:
    """Random batch sizes summing to n, now and then an empty batch."""
    sizes = []
    left = n
    while left > 0:
        if draw(st.integers(0, 9)) == 0:
            sizes.append(0)
        size = min(left, draw(st.integers(1, 8)))
        sizes.append(size)
        left -= size
    return sizes


@st.composite
def scenarios(draw: st.DrawFn, messy: bool = True) -> Scenario:
    """Fences, params and an arrival stream: sorted, then shuffled, duplicated and delayed."""
    fences = draw(fence_sets())
    params = draw(engine_params())
    arrivals = draw(sorted_tracks(fences, params))
    if params.max_lateness_s > 0 and draw(st.booleans()):
        arrivals = draw(shuffled_within_lateness(arrivals, params.max_lateness_s))
    if messy and draw(st.integers(0, 3)) == 0:  # one device's whole feed runs behind the stream
        laggard = draw(st.sampled_from(sorted({a.device_id for a in arrivals})))
        lag = params.max_lateness_s + draw(st.integers(1, 100))
        arrivals.sort(key=lambda a: a.ts + (lag if a.device_id == laggard else 0.0))
    if messy:
        for _ in range(draw(st.integers(0, 3))):  # duplicates: a repeat of (device, ts), maybe moved
            i = draw(st.integers(0, len(arrivals) - 1))
            j = draw(st.integers(i + 1, len(arrivals)))
            copy = arrivals[i]
            if draw(st.booleans()):
                copy = Arrival(copy.device_id, copy.ts, copy.lat + 0.001, copy.lon, copy.accuracy_m, None)
            arrivals.insert(j, copy)
        for _ in range(draw(st.integers(0, 2))):  # very late: held back well behind its place
            i = draw(st.integers(0, len(arrivals) - 1))
            j = draw(st.integers(i, len(arrivals) - 1))
            arrivals.insert(j, arrivals.pop(i))
    return Scenario(fences, params, arrivals, draw(batch_sizes(len(arrivals))))


# ---------------------------------------------------------------------------- running both models


@dataclass
class Run:
    events: list[Event]
    late: list[int]  # arrival positions
    duplicate: list[int]
    counters: dict[str, int]
    dwell: dict[tuple[str, str], tuple[int, float]]
    devices: dict[str, dict[str, float]]


def to_batch(arrivals: list[Arrival]) -> PingBatch:
    return PingBatch.from_columns(
        [a.device_id for a in arrivals],
        [a.ts for a in arrivals],
        [a.lat for a in arrivals],
        [a.lon for a in arrivals],
        [a.accuracy_m for a in arrivals],
        [a.extras for a in arrivals],
    )


def run_reference(scenario: Scenario) -> Run:
    ref = Reference(scenario.fences, scenario.params)
    late, duplicate = [], []
    for pos, a in enumerate(scenario.arrivals):
        verdict = ref.push(a.device_id, a.ts, a.lat, a.lon, a.accuracy_m, a.extras)
        if verdict == "late":
            late.append(pos)
        elif verdict == "duplicate":
            duplicate.append(pos)
    ref.finish()
    counters = {"late": ref.late, "duplicate": ref.duplicate, "applied": ref.applied, "pings": len(scenario.arrivals)}
    return Run(ref.events, late, duplicate, counters, ref.dwell_totals(), ref.device_totals())


def feed(
    engine: Engine, arrivals: list[Arrival], sizes: list[int], start: int = 0
) -> tuple[list[Event], list[int], list[int]]:
    """Feed arrivals to the engine in batches; events and the arrival positions of late/duplicate pings."""
    events: list[Event] = []
    late: list[int] = []
    duplicate: list[int] = []
    pos = 0
    for size in sizes:
        chunk = arrivals[pos : pos + size]
        res = engine.process(to_batch(chunk))
        events.extend(res.events)
        late.extend(start + pos + int(i) for i in res.late)
        duplicate.extend(start + pos + int(i) for i in res.duplicate)
        pos += size
    return events, late, duplicate


def finish_engine(engine: Engine, events: list[Event], late: list[int], duplicate: list[int]) -> Run:
    events = events + engine.flush()
    c = engine.counters
    counters = {"late": c.late, "duplicate": c.duplicate, "applied": c.applied, "pings": c.pings}
    return Run(events, sorted(late), sorted(duplicate), counters, engine.dwell_totals(), engine.device_totals())


def run_engine(scenario: Scenario, sizes: list[int] | None = None) -> Run:
    engine = Engine(FenceIndex(scenario.fences), scenario.params)
    events, late, duplicate = feed(engine, scenario.arrivals, scenario.sizes if sizes is None else sizes)
    return finish_engine(engine, events, late, duplicate)


# ---------------------------------------------------------------------------- comparisons


def dicts(events: list[Event]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in events]


def as_multiset(events: list[Event]) -> list[dict[str, Any]]:
    """Events sorted by (ts, device, type, fence), then by their whole JSON form."""
    return sorted(
        dicts(events),
        key=lambda d: (d["ts"], d["device_id"], d["type"], d["fence_id"] or "", json.dumps(d, sort_keys=True)),
    )


def per_device(events: list[Event]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in dicts(events):
        out[d["device_id"]].append(d)
    return dict(out)


def assert_same_events(actual: list[Event], expected: list[Event]) -> None:
    assert as_multiset(actual) == as_multiset(expected)
    assert per_device(actual) == per_device(expected)


def assert_device_order_by_ts(events: list[Event]) -> None:
    last: dict[str, float] = {}
    for e in events:
        previous = last.get(e.device_id, -math.inf)
        assert e.ts >= previous, f"{e.device_id}: event at {e.ts} after one at {previous}"
        last[e.device_id] = e.ts


def assert_same_totals(actual: Run, expected: Run) -> None:
    assert set(actual.dwell) == set(expected.dwell)
    for key, (visits, dwell) in expected.dwell.items():
        assert actual.dwell[key][0] == visits, key
        assert actual.dwell[key][1] == pytest.approx(dwell, abs=1e-6), key
    assert set(actual.devices) == set(expected.devices)
    for device_id, totals in expected.devices.items():
        for name, value in totals.items():
            assert actual.devices[device_id][name] == pytest.approx(value, abs=1e-6), (device_id, name)


# ---------------------------------------------------------------------------- the reference itself


def square_fence(fence_id: str = "f0", buffer_m: float = 0.0) -> Fence:
    """A 100 m square centred on the scenario's centre."""
    return make_fence(
        fence_id, {"type": "Polygon", "coordinates": [ring(rectangle_m(0, 0, 50, 50, 0))]}, buffer_m=buffer_m
    )


IN = lonlat(0, 0)
OUT = lonlat(300, 0)


def push(ref: Reference, device_id: str, ts: float, where: tuple[float, float], accuracy_m: float = NAN) -> str:
    return ref.push(device_id, T0 + ts, where[1], where[0], accuracy_m)


def kinds(events: list[Event]) -> list[tuple[str, str | None, float]]:
    return [(e.type.value, e.fence_id, e.ts - T0) for e in events]


def test_reference_device_silent_beyond_timeout_plus_lateness_is_lost_then_restored_by_own_ping() -> None:
    ref = Reference([square_fence()], EngineParams(signal_timeout_s=60, max_lateness_s=10))
    push(ref, "a", 0, IN)
    push(ref, "a", 71, IN)  # W = 61 > 0 + 60
    ref.finish()
    assert kinds(ref.events) == [
        ("enter", "f0", 0),
        ("exit", "f0", 0),
        ("signal_lost", None, 0),
        ("signal_restored", None, 71),
        ("enter", "f0", 71),
    ]
    assert ref.events[1].reason is ExitReason.SIGNAL_LOST
    assert ref.events[3].gap_s == 71
    assert ref.device_totals()["a"] == {"active_s": 0.0, "inside_s": 0.0, "outside_s": 0.0, "lost_s": 71.0}


def test_reference_watermark_exactly_at_timeout_keeps_device_alive() -> None:
    ref = Reference([square_fence()], EngineParams(signal_timeout_s=60, max_lateness_s=10))
    push(ref, "a", 0, IN)
    push(ref, "a", 70, IN)  # W = 60, not > 60
    ref.finish()
    assert kinds(ref.events) == [("enter", "f0", 0)]
    assert ref.dwell_totals() == {("a", "f0"): (1, 70.0)}


def test_reference_other_device_advances_watermark_loss_detected_mid_stream() -> None:
    ref = Reference([square_fence()], EngineParams(signal_timeout_s=60, max_lateness_s=0))
    push(ref, "a", 0, IN)
    push(ref, "b", 61, OUT)
    assert kinds(ref.events) == [("enter", "f0", 0), ("exit", "f0", 0), ("signal_lost", None, 0)]


def test_reference_debounce_confirmed_event_carries_start_ping_ts() -> None:
    ref = Reference([square_fence()], EngineParams(debounce_s=20, max_lateness_s=0))
    push(ref, "a", 0, OUT)
    push(ref, "a", 10, IN)  # candidate starts
    push(ref, "a", 20, IN, accuracy_m=500)  # uncertain: neither confirms nor cancels
    push(ref, "a", 29, IN)  # 19 s after the start: not yet
    assert ref.events == []
    push(ref, "a", 30, IN)  # confirms, ENTER at 10
    push(ref, "a", 40, OUT)  # candidate EXIT at 40
    push(ref, "a", 50, IN)  # old state cancels it
    push(ref, "a", 60, OUT)
    push(ref, "a", 80, OUT)  # confirms, EXIT at 60
    assert kinds(ref.events) == [("enter", "f0", 10), ("exit", "f0", 60)]
    assert ref.events[1].dwell_s == 50


def test_reference_uncertain_ping_keeps_device_alive_without_state_change() -> None:
    ref = Reference([square_fence()], EngineParams(signal_timeout_s=60, max_lateness_s=0))
    push(ref, "a", 0, OUT)
    push(ref, "a", 50, IN, accuracy_m=101)
    push(ref, "a", 100, IN, accuracy_m=100)  # accuracy == max_accuracy_m is certain
    push(ref, "b", 150, OUT)  # W = 150 is not > 100 + 60
    assert kinds(ref.events) == [("enter", "f0", 100)]


def test_reference_ping_far_behind_device_latest_is_late_even_when_repeated() -> None:
    ref = Reference([square_fence()], EngineParams(max_lateness_s=30))
    assert push(ref, "a", 0, OUT) == "accepted"
    assert push(ref, "a", 100, OUT) == "accepted"
    assert push(ref, "a", 0, OUT) == "late"  # repeats a ping, but 100 s behind
    assert push(ref, "a", 80, OUT) == "accepted"
    assert push(ref, "a", 80, IN) == "duplicate"  # held
    assert push(ref, "a", 0.5, OUT) == "late"
    assert (ref.late, ref.duplicate) == (2, 1)


def test_reference_device_behind_frontier_older_than_applied_is_late() -> None:
    ref = Reference([square_fence()], EngineParams(max_lateness_s=30))
    push(ref, "b", 200, OUT)  # F = 170
    assert push(ref, "a", 100, OUT) == "accepted"  # released at once
    assert push(ref, "a", 100, OUT) == "duplicate"  # the last applied
    assert push(ref, "a", 90, OUT) == "late"  # within 30 s of a's latest, but older than an applied ping
    assert ref.applied == 1


def test_reference_pings_reordered_within_lateness_released_in_ts_order() -> None:
    ref = Reference([square_fence()], EngineParams(max_lateness_s=30))
    push(ref, "a", 20, OUT)
    push(ref, "a", 10, IN)
    push(ref, "a", 0, OUT)
    ref.finish()
    assert kinds(ref.events) == [("enter", "f0", 10), ("exit", "f0", 20)]


def test_reference_exit_and_enter_at_one_ping_come_exit_first() -> None:
    west = make_fence("f1", {"type": "Polygon", "coordinates": [ring(rectangle_m(-200, 0, 50, 50, 0))]})
    ref = Reference([west, square_fence("f0")], EngineParams(max_lateness_s=0))
    push(ref, "a", 0, lonlat(-200, 0))
    push(ref, "a", 10, IN)
    assert kinds(ref.events) == [("enter", "f1", 0), ("exit", "f1", 10), ("enter", "f0", 10)]


def test_reference_overlapping_visits_count_once_in_inside_time() -> None:
    wide = make_fence("f1", {"type": "Polygon", "coordinates": [ring(rectangle_m(50, 0, 100, 50, 0))]})
    ref = Reference([square_fence("f0"), wide], EngineParams(max_lateness_s=0))
    push(ref, "a", 0, OUT)
    push(ref, "a", 10, IN)  # both
    push(ref, "a", 30, lonlat(120, 0))  # f1 only
    push(ref, "a", 60, OUT)
    push(ref, "a", 70, OUT)
    ref.finish()
    assert ref.dwell_totals() == {("a", "f0"): (1, 20.0), ("a", "f1"): (1, 50.0)}
    assert ref.device_totals()["a"] == {"active_s": 70.0, "inside_s": 50.0, "outside_s": 20.0, "lost_s": 0.0}


# ---------------------------------------------------------------------------- engine against reference


@SETTINGS
@given(scenarios())
def test_engine_random_stream_matches_reference(scenario: Scenario) -> None:
    expected = run_reference(scenario)
    actual = run_engine(scenario)
    assert actual.late == expected.late
    assert actual.duplicate == expected.duplicate
    assert actual.counters == expected.counters
    assert dicts(actual.events) == dicts(expected.events)  # the same stream, in the same order
    assert_device_order_by_ts(actual.events)
    assert_same_totals(actual, expected)


@settings(SETTINGS, max_examples=150)
@given(scenarios(), st.data())
def test_engine_any_batch_split_gives_identical_events(scenario: Scenario, data: st.DataObject) -> None:
    # The very same output stream: a loss comes out just before the ping that proves it.
    other_sizes = data.draw(batch_sizes(len(scenario.arrivals)))
    first = run_engine(scenario)
    second = run_engine(scenario, other_sizes)
    one_by_one = run_engine(scenario, [1] * len(scenario.arrivals))
    assert dicts(second.events) == dicts(first.events)
    assert dicts(one_by_one.events) == dicts(first.events)
    assert second.late == first.late == one_by_one.late
    assert second.duplicate == first.duplicate == one_by_one.duplicate
    assert second.counters == first.counters == one_by_one.counters
    assert_same_totals(second, first)


@settings(SETTINGS, max_examples=150)
@given(scenarios(messy=False), st.data())
def test_engine_pings_shuffled_within_lateness_give_sorted_result(scenario: Scenario, data: st.DataObject) -> None:
    ordered = sorted(scenario.arrivals, key=lambda a: a.ts)
    shuffled = data.draw(shuffled_within_lateness(ordered, scenario.params.max_lateness_s))
    sorted_run = run_engine(Scenario(scenario.fences, scenario.params, ordered, [len(ordered)]))
    shuffled_run = run_engine(Scenario(scenario.fences, scenario.params, shuffled, scenario.sizes))
    assert shuffled_run.late == [] and shuffled_run.duplicate == []
    assert_same_events(shuffled_run.events, sorted_run.events)
    assert shuffled_run.counters == sorted_run.counters
    assert_same_totals(shuffled_run, sorted_run)


@settings(SETTINGS, max_examples=150)
@given(scenarios(), st.data())
def test_engine_snapshot_restore_midstream_gives_uninterrupted_result(scenario: Scenario, data: st.DataObject) -> None:
    uninterrupted = run_engine(scenario)
    cut = data.draw(st.integers(0, len(scenario.sizes)))
    split = sum(scenario.sizes[:cut])
    index = FenceIndex(scenario.fences)
    engine = Engine(index, scenario.params)
    events, late, duplicate = feed(engine, scenario.arrivals[:split], scenario.sizes[:cut])
    snapshot = json.loads(json.dumps(engine.snapshot()))
    restored = Engine.restore(snapshot, FenceIndex(scenario.fences), scenario.params)
    more, more_late, more_duplicate = feed(restored, scenario.arrivals[split:], scenario.sizes[cut:], start=split)
    resumed = finish_engine(restored, events + more, late + more_late, duplicate + more_duplicate)
    assert dicts(resumed.events) == dicts(uninterrupted.events)
    assert resumed.late == uninterrupted.late
    assert resumed.duplicate == uninterrupted.duplicate
    assert resumed.counters == uninterrupted.counters
    assert_same_totals(resumed, uninterrupted)
