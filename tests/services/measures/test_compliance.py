"""Compliance on hand-made timelines, every figure worked out by hand: visits merged across a
short exit (not across a long one), partial visits at window edges, windows crossing midnight
and DST nights, grouping by window/fence/team/officer, max-gap breaches and the due list; then
the same through the store (SQLite and PostgreSQL), open visits counting up to the last ping.

Fri 20 Nov 2026 is GMT, so its 20:00-04:00 window is 20:00Z-04:00Z (480 minutes).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from support.helpers import square_fence
from support.plans import FRI, SAT, at, plan_doc, put_visits

from geofence.compliance import ComplianceRow, Visits, compliance_rows, credit, due_rows, merge_visits
from geofence.plans import Occurrence, all_occurrences
from ingest.plan_file import parse_plans
from services.measures import compliance
from services.settings import Settings
from services.store import Store, devices_table
from services.store.plans import upsert_plans

LATER = 2e9  # "now" long after every window: windows are over
WEEK = (datetime(2026, 11, 16, tzinfo=UTC).timestamp(), datetime(2026, 11, 23, tzinfo=UTC).timestamp())


def occs(*docs: dict[str, Any], lo: float = FRI, hi: float = FRI + 1) -> list[Occurrence]:
    return all_occurrences(parse_plans({"plans": list(docs)}), "Europe/London", lo, hi)


def merged(rows: list[tuple[str, str, float, float]], merge_s: float = 60.0) -> Visits:
    return merge_visits(Visits.of(rows), merge_s)


def figures(row: ComplianceRow) -> tuple[Any, ...]:
    """(planned, delivered, planned min, delivered min, compliance %, short, guideline, long, gap breaches)"""
    pct = None if row.compliance_pct is None else round(row.compliance_pct, 2)
    return (row.planned_visits, row.delivered_visits, row.planned_minutes, round(row.delivered_minutes, 3), pct,
            row.short_visits, row.guideline_visits, row.long_visits, row.gap_breaches)  # fmt: skip


def test_short_exit_merges_into_one_qualifying_visit_and_long_exit_does_not() -> None:
    visits = merged([
        ("d1", "A", at(FRI, 0), at(FRI, 6)),  # 6 min, out for 40 s,
        ("d1", "A", at(FRI, 6 + 40 / 60), at(FRI, 11 + 40 / 60)),  # back 5 min: one visit of 11 min 40 s
        ("d2", "A", at(FRI, 30), at(FRI, 36)),  # 6 min, out for 90 s (> 60 s),
        ("d2", "A", at(FRI, 37.5), at(FRI, 42.5)),  # back 5 min: two short visits
    ])  # fmt: skip
    assert len(visits.start) == 3
    (row,) = compliance_rows(occs(plan_doc(max_gap_min=None)), visits, LATER, "window")
    # 1 of 3 planned visits qualifies; 11 2/3 of 30 planned minutes; the two short ones count as short.
    assert figures(row) == (3, 1, 30.0, 11.667, 33.33, 2, 1, 0, 0)
    assert (row.plan_id, row.fence_id, row.team, row.window_start, row.window_end) == (
        "hs-01-nte", "A", "Team A", FRI, at(FRI, 480),
    )  # fmt: skip


def test_merge_tolerance_is_inclusive_and_per_device_and_fence() -> None:
    rows = [("d1", "A", 0.0, 100.0), ("d1", "A", 160.0, 200.0), ("d2", "A", 130.0, 150.0), ("d1", "B", 200.0, 300.0)]
    m = merged(rows)  # d1/A: gap 60 s = tolerance -> merged; d2 and fence B are separate
    assert sorted(zip(m.who, m.fence, m.start, m.end, strict=True)) == [
        ("d1", "A", 0.0, 200.0), ("d1", "B", 200.0, 300.0), ("d2", "A", 130.0, 150.0),
    ]  # fmt: skip


def test_one_officers_overlapping_devices_count_once_and_gaps_run_from_the_latest_exit() -> None:
    # PC 1 carries a radio and a handset: 20:00-20:17 (radio) and 20:02-20:05 (handset, inside it)
    # are one visit; the radio's re-entry at 20:17:30 is 30 s after the LATEST exit (20:17), not
    # 12.5 min after the handset's, so it merges too: one visit 20:00-20:25, 25 min, long.
    visits = merged([
        ("PC 1", "A", at(FRI, 0), at(FRI, 17)),
        ("PC 1", "A", at(FRI, 2), at(FRI, 5)),
        ("PC 1", "A", at(FRI, 17.5), at(FRI, 25)),
    ])  # fmt: skip
    assert list(zip(visits.start, visits.end, strict=True)) == [(FRI, at(FRI, 25))]
    (row,) = compliance_rows(occs(plan_doc(max_gap_min=None)), visits, LATER, "window")
    assert figures(row) == (3, 1, 30.0, 25.0, 33.33, 0, 0, 1, 0)


def test_partial_visits_at_window_edges_count_only_their_inside_part() -> None:
    visits = merged([
        ("d1", "A", at(FRI, -10), at(FRI, 12)),  # 19:50-20:12: 12 min inside -> qualifies (guideline)
        ("d2", "A", at(FRI, 475), at(FRI, 500)),  # 03:55-04:20: 5 min inside -> short
        ("d3", "A", at(FRI, 60), at(FRI, 80)),  # 21:00-21:20: 20 min -> long
        ("d1", "A", at(FRI, -30), at(FRI, -15)),  # 19:30-19:45: outside, not counted at all
    ])  # fmt: skip
    (row,) = compliance_rows(occs(plan_doc()), visits, LATER, "window")
    # Delivered minutes are the qualifying visits' clipped minutes: 12 + 20 = 32, not 12 + 5 + 20 = 37
    # (short visits are not dosage) nor 22 + 20 (the part before 20:00 is outside the window).
    # Gaps without a qualifying visit: 20:00-20:00 0, 20:12-21:00 48, 21:20-04:00 400 > 120 -> 1 breach.
    assert figures(row) == (3, 2, 30.0, 32.0, 66.67, 1, 1, 1, 1)


def test_open_window_counts_up_to_now_and_measures_the_trailing_gap_to_now() -> None:
    visits = merged([("d1", "A", at(FRI, 0), at(FRI, 15))])
    # At 22:00 the 20:00 window is open: the gap 20:15-22:00 is 105 min (< 120), no breach yet;
    # at 22:30 it is 135 min: one breach.
    (early,) = compliance_rows(occs(plan_doc()), visits, at(FRI, 120), "window")
    (late,) = compliance_rows(occs(plan_doc()), visits, at(FRI, 150), "window")
    assert (early.delivered_visits, early.gap_breaches, late.gap_breaches) == (1, 0, 1)


def test_autumn_dst_night_counts_a_visit_in_the_extra_hour() -> None:
    sat = datetime(2026, 10, 24, 19, tzinfo=UTC).timestamp()  # Sat 24 Oct 20:00 BST
    end = datetime(2026, 10, 25, 4, tzinfo=UTC).timestamp()  # Sun 25 Oct 04:00 GMT: 9 h later
    visits = merged([("d1", "A", end - 30 * 60, end - 15 * 60)])  # 03:30-03:45 GMT, 15 min
    (row,) = compliance_rows(occs(plan_doc(), lo=sat, hi=sat + 1), visits, LATER, "window")
    assert (row.window_start, row.window_end) == (sat, end)
    assert figures(row) == (3, 1, 30.0, 15.0, 33.33, 0, 1, 0, 1)  # gap 19:00Z-03:30Z = 510 min > 120


def test_spring_dst_night_ends_at_03_utc() -> None:
    sat = datetime(2026, 3, 28, 20, tzinfo=UTC).timestamp()  # Sat 28 Mar 20:00 GMT
    end = datetime(2026, 3, 29, 3, tzinfo=UTC).timestamp()  # Sun 29 Mar 04:00 BST: 7 h later
    visits = merged([
        ("d1", "A", end - 20 * 60, end - 5 * 60),  # 02:40-02:55Z: 15 min, inside
        ("d2", "A", end + 10 * 60, end + 30 * 60),  # 03:10-03:30Z (04:10 BST): after the window
    ])  # fmt: skip
    (row,) = compliance_rows(occs(plan_doc(max_gap_min=None), lo=sat, hi=sat + 1), visits, LATER, "window")
    assert (row.window_end - sat) / 3600 == 7.0  # type: ignore[operator]
    assert figures(row) == (3, 1, 30.0, 15.0, 33.33, 0, 1, 0, 0)


def two_plans() -> list[Occurrence]:
    return occs(
        plan_doc("p-a", "A", "Team A"),
        plan_doc("p-b", "B", "Team B", target_pct=80,
                 windows=[{"days": ["fri"], "start": "20:00", "end": "04:00", "visits": 2}]),
    )  # fmt: skip


TWO_PLAN_VISITS = [
    ("PC 1", "A", at(FRI, 0), at(FRI, 12)),  # 12 min at A
    ("PC 2", "B", at(FRI, 30), at(FRI, 45)),  # 15 min at B
    ("PC 2", "A", at(FRI, 60), at(FRI, 80)),  # 20 min at A
    ("d3", "B", at(FRI, 100), at(FRI, 104)),  # a radio with no officer: 4 min at B, short
]


@pytest.mark.parametrize(
    ("group_by", "want"),
    [
        # Fence A (3 planned, 30 min): 12 + 20 min -> 2 visits, 66.67%; B (2 planned, 20 min): 15 min, 1 short.
        ("fence", {("A", None, None): (3, 2, 30.0, 32.0, 66.67, 0, 1, 1, 1),
                   ("B", None, None): (2, 1, 20.0, 15.0, 50.0, 1, 1, 0, 1)}),
        ("team", {(None, "Team A", None): (3, 2, 30.0, 32.0, 66.67, 0, 1, 1, 1),
                  (None, "Team B", None): (2, 1, 20.0, 15.0, 50.0, 1, 1, 0, 1)}),
        # Per officer, against all 5 planned visits (50 min): PC 1 1 visit (20%), PC 2 2 visits (40%).
        ("officer", {(None, None, "PC 1"): (5, 1, 50.0, 12.0, 20.0, 0, 1, 0, 0),
                     (None, None, "PC 2"): (5, 2, 50.0, 35.0, 40.0, 0, 1, 1, 0),
                     (None, None, "d3"): (5, 0, 50.0, 0.0, 0.0, 1, 0, 0, 0)}),
    ],
)  # fmt: skip
def test_grouping_by_fence_team_and_officer(group_by: Any, want: dict[tuple[Any, ...], tuple[Any, ...]]) -> None:
    rows = compliance_rows(two_plans(), merged(TWO_PLAN_VISITS), LATER, group_by)
    assert {(r.fence_id, r.team, r.officer_id): figures(r) for r in rows} == want
    assert [(r.fence_id, r.team, r.officer_id) for r in rows] == list(want)  # sorted by the group key


def test_officer_rows_carry_the_planned_visit_weighted_target() -> None:
    rows = compliance_rows(two_plans(), merged(TWO_PLAN_VISITS), LATER, "officer")
    assert {r.target_pct for r in rows} == {(90 * 3 + 80 * 2) / 5}  # 86


def test_due_list_orders_open_windows_behind_the_pro_rata_plan() -> None:
    now = at(SAT, 120)  # Sat 22:00: a quarter of the 8 h window has gone
    plans = occs(
        plan_doc("p-a", "A"),  # 3 visits = 30 min: 7.5 min due by now; 12 delivered -> ahead, not listed
        plan_doc("p-b", "B"),  # nothing delivered: 7.5 min behind
        plan_doc("p-c", "C", windows=[{"days": ["sat"], "start": "20:00", "end": "04:00", "visits": 6}]),
        plan_doc("p-d", "D", windows=[{"days": ["sat"], "start": "23:00", "end": "01:00", "visits": 1}]),  # not open
        lo=SAT - 86400, hi=now + 1,
    )  # fmt: skip
    visits = merged([("d1", "A", at(SAT, 30), at(SAT, 42)), ("d2", "C", at(SAT, 60), at(SAT, 65))])
    due = due_rows(plans, visits, now, {"B": "Goods Way", "C": None})
    # C: 60 planned min x 0.25 = 15 due; its 5-min visit is short, so 0 delivered: 15 behind.
    assert [(r.plan_id, r.fence_name, r.delivered_visits, r.delivered_minutes, r.shortfall_minutes) for r in due] == [
        ("p-c", None, 0, 0.0, 15.0),
        ("p-b", "Goods Way", 0, 0.0, 7.5),
    ]
    assert (due[0].window_start, due[0].window_end, due[0].planned_visits, due[0].compliance_pct) == (
        SAT, at(SAT, 480), 6, 0.0,
    )  # fmt: skip


# ---------------------------------------------------------------------- through the store


async def _setup(store: Store) -> None:
    await store.upsert_fences([square_fence("A"), square_fence("B", 0.01)])
    await upsert_plans(store, parse_plans({"plans": [plan_doc("p-a", "A"), plan_doc("p-b", "B", "Team B")]}))
    await put_visits(
        store,
        [
            ("d1", "A", at(FRI, 30), None),  # open: counts up to d1's last ping, 20:45 -> 15 min
            ("d2", "A", at(FRI, 60), at(FRI, 66)),  # 6 min, out 40 s, 5 min: merged, 11 min 40 s
            ("d2", "A", at(FRI, 66 + 40 / 60), at(FRI, 71 + 40 / 60)),
            ("d2", "B", at(SAT, 0), at(SAT, 25)),  # Saturday at B: 25 min, long
        ],
        {"d1": at(FRI, 45), "d2": at(SAT, 30)},
        {"d1": "PC 1"},
    )


async def test_store_compliance_by_window_with_open_visit_and_merge(store: Store) -> None:
    await _setup(store)
    rows = await compliance.compliance_rows(store, Settings(), *WEEK, as_of=LATER, group_by="window")
    got = {(r.plan_id, r.window_start): figures(r) for r in rows}
    assert got == {
        # 15 + 11 2/3 min; gaps 20:00-20:30 30, 20:45-21:00 15, 21:11:40-04:00 408 1/3 -> 1 breach
        ("p-a", FRI): (3, 2, 30.0, 26.667, 66.67, 0, 2, 0, 1),
        ("p-a", SAT): (3, 0, 30.0, 0.0, 0.0, 0, 0, 0, 1),  # the whole 480 min is one gap
        ("p-b", FRI): (3, 0, 30.0, 0.0, 0.0, 0, 0, 0, 1),
        ("p-b", SAT): (3, 1, 30.0, 25.0, 33.33, 0, 0, 1, 1),  # 20:25-04:00 is a gap of 455 min
    }
    assert [r.plan_id for r in rows] == ["p-a", "p-b", "p-a", "p-b"]  # by window start, then plan


async def test_store_compliance_by_officer_and_filters(store: Store) -> None:
    await _setup(store)
    by_officer = await compliance.compliance_rows(
        store, Settings(), *WEEK, as_of=LATER, group_by="officer", fence_id="A"
    )
    # Fence A only: 6 planned visits over the two nights (60 min); PC 1 15 min, radio d2 11 2/3 min.
    assert {r.officer_id: figures(r)[:5] for r in by_officer} == {
        "PC 1": (6, 1, 60.0, 15.0, 16.67),
        "d2": (6, 1, 60.0, 11.667, 16.67),
    }
    by_team = await compliance.compliance_rows(store, Settings(), *WEEK, as_of=LATER, group_by="team", team="Team B")
    assert [(r.team, r.delivered_visits) for r in by_team] == [("Team B", 1)]
    # With no merging, d2's two pieces at A (6 and 5 min) are both short.
    unmerged = await compliance.compliance_rows(store, Settings(visit_merge_s=0), *WEEK, as_of=LATER, group_by="fence")
    assert [(r.fence_id, r.delivered_visits, r.short_visits) for r in unmerged] == [("A", 1, 2), ("B", 1, 0)]


async def test_store_due_list(store: Store) -> None:
    await _setup(store)
    # Fri 21:30: 90 of 480 min gone; 30 planned min x 90/480 = 5.625 due.
    # A has 26 2/3 qualifying min (ahead); B has none: 5.625 behind.
    due = await compliance.due_list(store, Settings(), at(FRI, 90))
    assert [(r.plan_id, r.fence_id, r.team, r.shortfall_minutes) for r in due] == [("p-b", "B", "Team B", 5.625)]
    assert await compliance.due_list(store, Settings(), at(FRI, -1)) == []  # before the window opens


async def test_store_credits_the_officer_of_the_enter_event_not_the_radios_holder_now(store: Store) -> None:
    await store.upsert_fences([square_fence("A")])
    await upsert_plans(store, parse_plans({"plans": [plan_doc("p-a", "A")]}))
    await put_visits(store, [("r9", "A", at(FRI, 0), at(FRI, 12))], {"r9": at(FRI, 12)}, {"r9": "PC 7"})
    async with store.write() as conn:  # the radio is handed to PC 8 for the next shift
        await conn.execute(sa.update(devices_table).values(officer_id="PC 8"))
    rows = await compliance.compliance_rows(store, Settings(), *WEEK, as_of=LATER, group_by="officer")
    assert [(r.officer_id, r.delivered_visits, r.delivered_minutes) for r in rows] == [("PC 7", 1, 12.0)]


def test_clipping_equals_a_brute_force_overlap_of_every_visit_and_window() -> None:
    """The vectorised interval join against a double loop, on random visits (some spanning windows)."""
    rng = np.random.default_rng(7)
    plans = occs(
        plan_doc("p-a", "A"),
        plan_doc("p-b", "A", windows=[{"days": ["fri", "sat", "sun"], "start": "02:00", "end": "01:00", "visits": 1}]),
        plan_doc("p-c", "B", windows=[{"days": ["sat"], "start": "12:00", "end": "13:00", "visits": 1}]),
        lo=WEEK[0], hi=WEEK[1],
    )  # fmt: skip
    starts = rng.uniform(*WEEK, 400)
    rows = [(f"d{i % 7}", "AB"[i % 2], s, s + rng.exponential(3600)) for i, s in enumerate(starts)]
    visits = Visits.of(rows)
    credits = credit(plans, visits, LATER)
    got = np.bincount(credits.occ, weights=credits.seconds, minlength=len(plans))
    want = [
        sum(max(0.0, min(e, o.end) - max(s, o.start)) for _, f, s, e in rows if f == o.plan.fence_id) for o in plans
    ]
    assert len(plans) == 2 + 3 + 1 and got == pytest.approx(want)
