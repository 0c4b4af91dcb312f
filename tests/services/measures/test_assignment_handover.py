"""A radio handed over at 14:00 (here: T0 + 1200 s): every figure gives the holder before and after their part.

The hand-worked timeline (seconds after T0, Sat 21 Nov 2026 22:00 UTC, in the Sat 20:00-04:00
window of plan p-a). Radio r1's pings name no officer; a ping every 60 s:

    0 -------- 300 ===== A ===== 900 ------ 1200 | 1320 .. lost .. 1740 -- 1800 ===== A ===== 2400
              PC A (Alpha 1, Team North) until 1200 | PC B (Bravo 2, Team South) from 1200

- PC A: visit 300-900 (10 min, qualifies); shift 0-1200: inside 600, outside 600, no loss.
- PC B: silent 1320-1740 (a 420 s loss: lost at 1320, restored at 1740), visit 1800-2400 open
  (counts to the last ping, 10 min); shift 1200-2400: inside 600, lost 420, outside 180, 1 loss.
- Presence now: r1 in A since 1800, PC B's. Events: the enter and exit at 300/900 are PC A's,
  the loss, restore and enter at 1320/1740/1800 are PC B's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.helpers import T0, P, fence_a, fence_b
from support.observations import engine_run, record_all
from support.plans import SAT, plan_doc

from geofence.assignments import Assignment
from ingest.plan_file import parse_plans
from services.cli import main
from services.measures import compliance
from services.measures.local_weeks import parse_week
from services.measures.officer_time import officer_time
from services.measures.signal_loss import signal_loss
from services.query.attribution import attributed_events
from services.query.presence import PresenceCache, devices_as_of
from services.reports.weekly import weekly_report
from services.settings import Settings
from services.store import Store
from services.store.assignments import list_assignments, put_assignments
from services.store.plans import upsert_plans

HANDOVER = T0 + 1200
LATER = 2e9
NIGHT = (SAT, SAT + 86_400.0)
PC_A = Assignment("a1", "r1", "PC A", "Alpha 1", "Team North", T0 - 3600, HANDOVER)
PC_B = Assignment("b1", "r1", "PC B", "Bravo 2", "Team South", HANDOVER, None)


def timeline(device: str = "r1", extras: dict[str, Any] | None = None) -> list[P]:
    times = [*range(0, 1321, 60), *range(1740, 2401, 60)]
    return [P(t, "a" if 300 <= t < 900 or t >= 1800 else "out", device, extras=extras) for t in times]


async def handed_over(store: Store, pings: list[P] | None = None, assignments: list[Assignment] | None = None) -> None:
    await store.upsert_fences([fence_a(), fence_b()])
    await upsert_plans(store, parse_plans({"plans": [plan_doc("p-a", "A")]}))
    await record_all(store, engine_run(pings or timeline()))
    assert await put_assignments(store, [PC_A, PC_B] if assignments is None else assignments) == []


def shift_figures(found: Any) -> list[tuple[Any, ...]]:
    return [
        (o.officer_id, s.officer_id, s.team, s.start - T0, s.end - T0, s.inside_s, s.outside_s, s.lost_s, s.losses)
        for o in found
        for s in o.shifts
    ]


async def test_handover_compliance_by_officer_gives_each_their_own_visit(store: Store) -> None:
    await handed_over(store)
    rows = await compliance.compliance_rows(store, Settings(), *NIGHT, as_of=LATER, group_by="officer")
    assert [(r.officer_id, r.delivered_visits, r.delivered_minutes) for r in rows] == [
        ("PC A", 1, 10.0),
        ("PC B", 1, 10.0),
    ]


async def test_handover_officer_time_cuts_the_shift_at_the_handover(store: Store) -> None:
    await handed_over(store)
    found = await officer_time(store, T0, T0 + 3600, 1800.0)
    assert shift_figures(found) == [
        ("PC B", "PC A", "Team North", 0.0, 1200.0, 600.0, 600.0, 0.0, 0),
        ("PC B", "PC B", "Team South", 1200.0, 2400.0, 600.0, 180.0, 420.0, 1),
    ]
    [mine] = await officer_time(store, T0, T0 + 3600, 1800.0, officer_id="PC A")
    assert [(s.officer_id, s.inside_s) for s in mine.shifts] == [("PC A", 600.0)]
    assert mine.gaps == ()  # the loss was PC B's


async def test_handover_signal_loss_is_the_second_holders(store: Store) -> None:
    await handed_over(store)
    found = await signal_loss(store, T0, T0 + 3600, shift_break_s=1800.0, min_losses=1, tz="Europe/London")
    assert [(d.device_id, d.officer_id, d.losses, d.lost_s, d.repeated) for d in found] == [
        ("r1", "PC A", 0, 0.0, False),
        ("r1", "PC B", 1, 420.0, True),
    ]


async def test_handover_presence_and_events_name_the_holder_at_the_time(store: Store) -> None:
    await handed_over(store)
    snapshot = await PresenceCache(store, 0.0).snapshot()
    [present] = snapshot.by_fence["A"]
    assert (present.device_id, present.officer_id, present.callsign, present.team) == (
        "r1", "PC B", "Bravo 2", "Team South",
    )  # fmt: skip
    assert list(snapshot.select(officer_id="PC B")) == ["A"] and snapshot.select(officer_id="PC A") == {}
    [device], _ = await devices_as_of(store, officer_id="PC B")
    assert (device.device_id, device.now.callsign, device.team) == ("r1", "Bravo 2", "Team South")
    events = await attributed_events(store, await store.events_page(limit=100))
    assert [(e.type, e.ts - T0, e.officer_id, e.body.get("callsign"), e.body.get("team")) for e in events] == [
        ("enter", 300.0, "PC A", "Alpha 1", "Team North"),
        ("exit", 900.0, "PC A", "Alpha 1", "Team North"),
        ("signal_lost", 1320.0, "PC B", "Bravo 2", "Team South"),
        ("signal_restored", 1740.0, "PC B", "Bravo 2", "Team South"),
        ("enter", 1800.0, "PC B", "Bravo 2", "Team South"),
    ]


async def test_handover_weekly_report_rows_per_holder(store: Store) -> None:
    await handed_over(store)
    report = await weekly_report(store, Settings(shift_break_s=1800), parse_week("2026-W47", "Europe/London"))
    officers = report.table("officers")
    assert [r[1:8] for r in officers.rows] == [
        ("PC A", "Alpha 1", 1, 20.0, 10.0, 10.0, 0.0),
        ("PC B", "Bravo 2", 1, 13.0, 10.0, 3.0, 7.0),
    ]
    assert [(r[1], r[3]) for r in report.table("signal_loss").rows] == [("PC A", 0), ("PC B", 1)]
    assert [(r[1], r[5]) for r in report.table("signal_gaps").rows] == [("PC B", "loss")]
    assert report.devices == ("r1",)


async def test_pings_own_officer_wins_over_the_assignment(store: Store) -> None:
    # The same timeline, but every ping names PC X: the assignments change nothing.
    await handed_over(store, timeline(extras={"officer_id": "PC X", "callsign": "X-ray 9"}))
    rows = await compliance.compliance_rows(store, Settings(), *NIGHT, as_of=LATER, group_by="officer")
    assert [(r.officer_id, r.delivered_visits) for r in rows] == [("PC X", 2)]
    found = await officer_time(store, T0, T0 + 3600, 1800.0)
    assert {(s.officer_id, s.callsign, s.team) for s in found[0].shifts} == {("PC X", "X-ray 9", None)}
    events = await attributed_events(store, await store.events_page(limit=100))
    assert {(e.officer_id, e.callsign, e.body.get("team")) for e in events} == {("PC X", "X-ray 9", None)}
    [present] = (await PresenceCache(store, 0.0).snapshot()).by_fence["A"]
    assert (present.officer_id, present.team) == ("PC X", None)


async def test_changing_an_assignment_re_attributes_history(store: Store) -> None:
    await handed_over(store)
    cache = PresenceCache(store, 0.0)
    assert (await cache.snapshot()).by_fence["A"][0].officer_id == "PC B"
    # The second half was PC C's after all: replace b1; every figure follows, the cache too.
    assert await put_assignments(store, [Assignment("b1", "r1", "PC C", None, None, HANDOVER, None)]) == []
    rows = await compliance.compliance_rows(store, Settings(), *NIGHT, as_of=LATER, group_by="officer")
    assert [r.officer_id for r in rows] == ["PC A", "PC C"]
    assert (await cache.snapshot()).by_fence["A"][0].officer_id == "PC C"


async def test_put_assignments_refuses_an_overlap_naming_both_and_keeps_the_rest(store: Store) -> None:
    assert await put_assignments(store, [PC_A]) == []
    clash = Assignment("c1", "r1", "PC C", None, None, HANDOVER - 60, HANDOVER + 60)
    fine = Assignment("d1", "r2", "PC D", None, None, HANDOVER - 60, None)
    refused = await put_assignments(store, [clash, fine, PC_B])
    assert [i for i, _ in refused] == [0]
    assert "'c1' overlaps assignment 'a1'" in refused[0][1] and "'r1'" in refused[0][1]
    assert [a.assignment_id for a in await list_assignments(store)] == ["a1", "b1", "d1"]  # back-to-back is fine
    assert [a.assignment_id for a in await list_assignments(store, at=HANDOVER)] == ["b1", "d1"]
    assert [a.assignment_id for a in await list_assignments(store, officer_id="PC A")] == ["a1"]
    assert np.isclose((await list_assignments(store, device_id="r2"))[0].valid_from, HANDOVER - 60)


def test_cli_load_reports_bad_rows_by_line_and_stores_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "radios.csv"
    sheet.write_text(
        "device_id,officer_id,callsign,from,to\n"
        "r1,PC A,Alpha 1,2026-11-21T21:00:00Z,2026-11-21T22:20:00Z\n"
        "r1,PC B,Bravo 2,2026-11-21T22:00:00Z,\n"  # overlaps line 2
        "r2,,,2026-11-21T21:00:00Z,\n"
        "r1,PC B,Bravo 2,2026-11-21T22:20:00Z,\n",
        encoding="utf-8",
    )
    args = ["assignments", "load", str(sheet), "--data-dir", str(tmp_path / "data")]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == f"{sheet}: 4 rows, 2 assignments stored, 2 rejected\n"
    assert err.splitlines() == [
        f"{sheet}:3: assignment 'r1@1795298400' overlaps assignment 'r1@1795294800' (line 2) of device 'r1' "
        "(officer 'PC A', from 2026-11-21T21:00:00Z to 2026-11-21T22:20:00Z)",
        f"{sheet}:4: officer_id: is required",
    ]
    sheet.write_text("device_id,officer_id,from\nr1,PC C,2026-11-21T22:10:00Z\n", encoding="utf-8")
    assert main(args) == 1  # overlaps what is stored: named, the file's line given
    assert "overlaps assignment 'r1@1795294800' of device 'r1'" in capsys.readouterr().err


async def test_radio_only_feed_with_assignments_equals_pings_naming_their_officers(db_url: str) -> None:
    # The same positions twice: radio-only with the assignments (no team), and as JSON pings naming
    # PC A before the handover and PC B after. Events, presence and compliance by officer agree.
    async def figures(pings: list[P], assignments: list[Assignment]) -> tuple[Any, ...]:
        store = await Store.open(db_url)
        try:
            async with store.write() as conn:  # a fresh store each time
                for table in ("events", "visits", "presence", "lost_gaps", "devices", "assignments", "plans"):
                    await conn.exec_driver_sql(f"DELETE FROM {table}")
            await handed_over(store, pings, assignments)
            events = [e.body for e in await attributed_events(store, await store.events_page(limit=100))]
            present = (await PresenceCache(store, 0.0).snapshot()).by_fence
            rows = await compliance.compliance_rows(store, Settings(), *NIGHT, as_of=LATER, group_by="officer")
            return events, present, rows
        finally:
            await store.close()

    no_team = [Assignment(a.assignment_id, a.device_id, a.officer_id, a.callsign, None, a.valid_from, a.valid_to)
               for a in (PC_A, PC_B)]  # fmt: skip
    radio = await figures(timeline(), no_team)
    named = [
        P(p.t, p.where, p.device, extras={"officer_id": a.officer_id, "callsign": a.callsign})
        for p in timeline()
        for a in [PC_A if T0 + p.t < HANDOVER else PC_B]
    ]
    assert await figures(named, []) == radio
    assert [e["officer_id"] for e in radio[0]] == ["PC A", "PC A", "PC B", "PC B", "PC B"]
