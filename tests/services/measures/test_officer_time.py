"""Officer time per shift (inside / outside / lost) from the store, on SQLite and PostgreSQL.

Hand-made tracks (pings every 60 s, seconds after T0) go through a real Engine and are recorded
as the pipeline records them; every figure below is worked out from the track by hand. The
engine's default rules apply: a device silent for more than 300 s (+30 s lateness) is lost at
its last ping and restored by its next one.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.helpers import T0
from support.observations import engine_run, record_all, track

from services.measures.officer_time import Gap, Shift, measure, officer_time, shift_spans, union
from services.store import Store

#: Gaps longer than this end a shift in these tests (30 minutes).
BREAK_S = 1800.0


def figures(s: Shift) -> tuple[float, ...]:
    """(start, end, inside, outside, lost, losses) of a shift, times as seconds after T0."""
    return (s.start - T0, s.end - T0, s.inside_s, s.outside_s, s.lost_s, s.losses)


async def test_officer_time_lost_time_counts_neither_inside_nor_outside(store: Store) -> None:
    # In A 0-600 (visit ended by the loss at 600), silent until 1500 (lost 900 s, shorter than a
    # break), then out 1500-1800, in A 1800-2100, out 2100-2400: one shift 0-2400.
    await record_all(store, engine_run(track(0, 600, (0, 10_000)) + track(1500, 2400, (1800, 2100))))
    [officer] = await officer_time(store, T0, T0 + 3600, BREAK_S)
    [shift] = officer.shifts
    # inside 600 + 300; lost 900; outside (1500-1800) + (2100-2400) = 2400 - 900 - 900.
    assert figures(shift) == (0.0, 2400.0, 900.0, 600.0, 900.0, 1)
    assert officer.gaps == (Gap(T0 + 600, T0 + 1500, "loss"),)
    assert (officer.break_s, officer.total("active_s")) == (0.0, 1500.0)


async def test_officer_time_long_gap_splits_shift_and_counts_as_break(store: Store) -> None:
    # Shift 1: in A 0-600, out 600-1200. Silent 1200-5000 (3800 s > 1800: a break).
    # Shift 2: out 5000-5600, in A from 5600 to the last ping at 6200 (open visit).
    rec = engine_run(track(0, 1200, (0, 600)) + track(5000, 6200, (5600, 10_000)))
    await record_all(store, rec)
    [officer] = await officer_time(store, T0, T0 + 7200, BREAK_S)
    assert [figures(s) for s in officer.shifts] == [
        (0.0, 1200.0, 600.0, 600.0, 0.0, 0),
        (5000.0, 6200.0, 600.0, 600.0, 0.0, 0),
    ]
    assert (officer.break_s, officer.gaps) == (3800.0, (Gap(T0 + 1200, T0 + 5000, "break"),))
    totals = rec.engine.device_totals()["d1"]
    assert (totals["inside_s"], totals["outside_s"], totals["lost_s"]) == (1200.0, 1200.0, 3800.0)

    # Clipped to [300, 5300): shifts keep their whole span, figures cover the range only.
    [clipped] = await officer_time(store, T0 + 300, T0 + 5300, BREAK_S)
    assert [figures(s) for s in clipped.shifts] == [
        (0.0, 1200.0, 300.0, 600.0, 0.0, 0),
        (5000.0, 6200.0, 0.0, 300.0, 0.0, 0),
    ]
    # A range starting after the break still finds where its shift began (5000), and one
    # starting inside the break sees only the second shift.
    [late] = await officer_time(store, T0 + 5100, T0 + 6000, BREAK_S)
    assert [figures(s) for s in late.shifts] == [(5000.0, 6200.0, 400.0, 500.0, 0.0, 0)]
    assert late.break_s == 0.0
    [mid] = await officer_time(store, T0 + 2000, T0 + 5300, BREAK_S)
    assert [figures(s) for s in mid.shifts] == [(5000.0, 6200.0, 0.0, 300.0, 0.0, 0)]
    assert mid.break_s == 3000.0


async def test_officer_time_visit_across_shift_boundary_is_split_between_shifts(store: Store) -> None:
    # In A from 0 to 1200, silent until 5000, back in A until 5600: the loss ended the first
    # visit at 1200 and the restore opened a second one at 5000. The officer "stayed" in A, but
    # only 1200 + 600 s of it has evidence; the 3800 s break counts for neither shift.
    await record_all(store, engine_run(track(0, 1200, (0, 10_000)) + track(5000, 5600, (0, 10_000))))
    [officer] = await officer_time(store, T0, T0 + 7200, BREAK_S)
    assert [figures(s) for s in officer.shifts] == [
        (0.0, 1200.0, 1200.0, 0.0, 0.0, 0),
        (5000.0, 5600.0, 600.0, 0.0, 0.0, 0),
    ]
    # A range edge (e.g. the end of a week) at 600 and at 5300 cuts both visits.
    [part] = await officer_time(store, T0 + 600, T0 + 5300, BREAK_S)
    assert [(s.inside_s, s.outside_s) for s in part.shifts] == [(600.0, 0.0), (300.0, 0.0)]


async def test_officer_time_radio_handed_over_between_shifts_credits_each_officer(store: Store) -> None:
    # PC1 carries d1 0-1200 (in A 0-600), hands it over; PC2 carries it 5000-6200 (in A from 5600).
    pc1, pc2 = {"officer_id": "PC1", "callsign": "Alpha 1"}, {"officer_id": "PC2", "callsign": "Bravo 2"}
    await record_all(
        store, engine_run(track(0, 1200, (0, 600), extras=pc1) + track(5000, 6200, (5600, 9999), extras=pc2))
    )
    [d1] = await officer_time(store, T0, T0 + 7200, BREAK_S)
    assert (d1.officer_id, d1.callsign) == ("PC2", "Bravo 2")  # the device as last recorded
    assert [(s.officer_id, s.callsign, s.start - T0, s.inside_s) for s in d1.shifts] == [
        ("PC1", "Alpha 1", 0.0, 600.0),
        ("PC2", "Bravo 2", 5000.0, 600.0),
    ]
    [only_pc1] = await officer_time(store, T0, T0 + 7200, BREAK_S, officer_id="PC1")
    assert [(s.officer_id, s.start - T0, s.inside_s, s.outside_s) for s in only_pc1.shifts] == [
        ("PC1", 0.0, 600.0, 600.0)
    ]
    assert (only_pc1.gaps, only_pc1.break_s) == ((), 0.0)  # the break between them is no one's
    assert await officer_time(store, T0, T0 + 7200, BREAK_S, officer_id="PC3") == []


@pytest.mark.parametrize(
    ("break_s", "shifts"),
    [
        (900.0, 1),  # the 900 s gap is not longer than the break: a loss within one shift
        (899.0, 2),  # one second shorter: the gap is a break between two shifts
    ],
)
async def test_officer_time_gap_equal_to_shift_break_is_a_loss(store: Store, break_s: float, shifts: int) -> None:
    await record_all(store, engine_run(track(0, 600, (0, 0)) + track(1500, 1800, (0, 0))))
    [officer] = await officer_time(store, T0, T0 + 3600, break_s)
    assert len(officer.shifts) == shifts
    assert sum(s.lost_s for s in officer.shifts) + officer.break_s == 900.0
    assert officer.total("outside_s") == 900.0


async def test_officer_time_filters_by_device_and_officer(store: Store) -> None:
    one = {"officer_id": "PC1", "callsign": "Alpha 1"}
    pings = track(0, 600, (0, 300), device="d1", extras=one) + track(0, 600, (0, 0), device="d2")
    await record_all(store, engine_run(sorted(pings, key=lambda p: p.t)))
    everyone = await officer_time(store, T0, T0 + 3600, BREAK_S)
    assert [(o.device_id, o.officer_id, o.callsign) for o in everyone] == [("d1", "PC1", "Alpha 1"), ("d2", None, None)]
    [pc1] = await officer_time(store, T0, T0 + 3600, BREAK_S, officer_id="PC1")
    assert (pc1.device_id, pc1.total("inside_s"), pc1.total("outside_s")) == ("d1", 300.0, 300.0)
    assert [o.device_id for o in await officer_time(store, T0, T0 + 3600, BREAK_S, device_id="d2")] == ["d2"]
    assert await officer_time(store, T0 + 3600, T0 + 7200, BREAK_S) == []


async def test_officer_time_workload_sums_equal_engine_device_totals(store: Store) -> None:
    rec = engine_run()  # 30 officers, 3 hours, radio gaps of 2-15 minutes 1.5 times an hour
    await record_all(store, rec)
    break_s = 600.0  # so that some gaps are breaks and some are losses
    found = {o.device_id: o for o in await officer_time(store, rec.start, rec.end, break_s)}
    expected = rec.engine.device_totals()
    assert found.keys() == expected.keys()
    kinds = {g.kind for o in found.values() for g in o.gaps}
    assert {"loss", "break"} <= kinds, kinds
    assert sum(len(o.shifts) > 1 for o in found.values()) >= 3, "some shifts should be split"
    for device, totals in expected.items():
        o = found[device]
        assert o.total("inside_s") == pytest.approx(totals["inside_s"], abs=1e-6), device
        assert o.total("outside_s") == pytest.approx(totals["outside_s"], abs=1e-6), device
        assert o.total("lost_s") + o.break_s == pytest.approx(totals["lost_s"], abs=1e-6), device


@pytest.mark.parametrize(
    ("breaks", "spans"),
    [
        ([], [(0.0, 100.0)]),  # no break: one shift, first to last ping
        ([(40.0, 60.0)], [(0.0, 40.0), (60.0, 100.0)]),
        ([(60.0, 70.0), (20.0, 30.0)], [(0.0, 20.0), (30.0, 60.0), (70.0, 100.0)]),  # any order
        ([(-1e9, 10.0), (90.0, 1e9)], [(10.0, 90.0)]),  # breaks beyond the device's first/last ping
    ],
)
def test_shift_spans_cut_activity_at_breaks(
    breaks: list[tuple[float, float]], spans: list[tuple[float, float]]
) -> None:
    assert shift_spans(0.0, 100.0, breaks) == spans


@pytest.mark.parametrize(
    ("spans", "merged"),
    [
        ([], []),
        ([(0, 10), (20, 30)], [(0, 10), (20, 30)]),
        ([(20, 30), (0, 10), (5, 25)], [(0, 30)]),  # overlapping fences count once, any order
        ([(0, 10), (10, 15), (2, 4)], [(0, 15)]),  # touching visits join; one inside another vanishes
        ([(0, 100), (10, 20), (30, 40), (150, 160)], [(0, 100), (150, 160)]),  # a long visit covers later ones
    ],
)
def test_union_merges_overlapping_and_touching_intervals(
    spans: list[tuple[float, float]], merged: list[tuple[float, float]]
) -> None:
    v = np.array(spans, dtype=float).reshape(-1, 2)
    starts, ends = union(v[:, 0], v[:, 1])
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == merged


def test_measure_overlap_of_windows_with_intervals() -> None:
    starts, ends = np.array([10.0, 40.0]), np.array([20.0, 70.0])  # 10 s and 30 s covered
    a = np.array([0.0, 15.0, 20.0, 45.0, 0.0, 80.0, 12.0])
    b = np.array([100.0, 50.0, 40.0, 45.0, 5.0, 90.0, 18.0])
    # whole: 40; 15-50: 5 + 10; 20-40: between the two; empty window; before; after; within one
    assert measure(starts, ends, a, b).tolist() == [40.0, 15.0, 0.0, 0.0, 0.0, 0.0, 6.0]
    assert measure(np.array([]), np.array([]), a, b).tolist() == [0.0] * 7
