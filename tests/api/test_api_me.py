"""GET /v1/me on a hand-worked timeline, and what an officer key may and may not see.

The timeline (minutes after T0 = Sat 21 Nov 2026 22:00 GMT), one ping a minute, fence A, plan
"a-late": Sat 22:00-23:00, 2 visits of at least 10 min (15 min guidance), team "Team A":

- PC1 carries radio R1 from -30 to 20: in A from 5 to 17 (a 12 min visit). R1 is then off 20 min.
- PC2 carries radio R2 from -30 to 30: in A from 0 to 6 (6 min: short). R2 is never heard again.
- R1 is handed to PC2: on again at 40, out of A; silent from 41 to 48 (a 7 min loss); in A from
  48 to 66 (an 18 min visit crossing the window's end at 60: 12 min of it in the window); out
  until 70, the last fix 150 m accurate (poor).

shift_break_s is 15 min, so R1's 20 min silence is a break between PC1's shift and PC2's, and
its 7 min silence a loss within PC2's. At 70 (23:10), worked by hand:

- PC2's shift: R1 40-70: 30 min, 18 inside (48-66), 7 lost (41-48), 5 outside; 1 loss.
- The window 22:00-23:00: planned 2 visits, 20 min; delivered by everyone: PC1's 12 min and
  PC2's 12 min in the window (PC2's 6 min R2 visit is short): 2 visits, 24 min; PC2's own: 1, 12.
- PC2's visits today: R2 0-6 (6 min, short), R1 48-66 (18 min, long; 12 in the window): 2, 1 qualifying.
- Radios of PC2 as last recorded: R1 (seen 0 s ago, poor fix) and R2 (lost, 40 min ago).
- PC1: shift -30-20 (50 min, 12 inside, 38 outside); its one visit; no radio now (R1 is PC2's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from support.api import Api, serve_api, serve_on_port
from support.helpers import T0, P, fence_a, fence_b
from support.observations import engine_run, record_all
from support.plans import plan_doc

from geofence.assignments import Assignment
from ingest.plan_file import parse_plan
from services.access.keys import create_key
from services.access.roles import Role
from services.settings import Settings
from services.store.assignments import save_assignment
from services.store.plans import upsert_plans

PC1 = {"officer_id": "PC1"}
PC2 = {"officer_id": "PC2"}
PLAN = plan_doc(
    "a-late",
    "A",
    "Team A",
    max_gap_min=None,
    windows=[{"days": ["sat"], "start": "22:00", "end": "23:00", "visits": 2}],
)


def minute(t: float) -> float:
    return T0 + t * 60.0


def timeline() -> list[P]:
    pings = [P(t * 60, "a" if 5 <= t < 17 else "out", "R1", extras=PC1) for t in range(-30, 21)]
    pings += [P(t * 60, "a" if 0 <= t < 6 else "out", "R2", extras=PC2) for t in range(-30, 31)]
    r1 = [(40, "out"), (41, "out")] + [(t, "a" if t < 66 else "out") for t in range(48, 70)]
    pings += [P(t * 60, where, "R1", extras=PC2) for t, where in r1]
    pings.append(P(70 * 60, "out", "R1", acc=150.0, extras=PC2))
    return sorted(pings, key=lambda p: p.t)


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    url = sqlite_url
    async with serve_api(url, Settings(shift_break_s=900.0)) as served:
        store = served.store
        await store.upsert_fences([fence_a(), fence_b()])
        await upsert_plans(store, [parse_plan(PLAN)])
        await record_all(store, engine_run(timeline()))
        for officer in ("PC1", "PC2"):
            served.keys[officer] = await create_key(url, Role.OFFICER, officer, officer)  # type: ignore[index]
        yield served


async def me_at(api: Api, officer: str, t: float) -> dict[str, Any]:
    answer = await api.client.get(
        "/v1/me",
        params={"at": minute(t)},
        headers={"authorization": f"Bearer {api.keys[officer]}"},  # type: ignore[index]
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def mins(ts: float) -> float:
    return round((ts - T0) / 60.0, 6)


async def test_me_hand_worked_timeline_radio_handed_over_visit_crossing_window_end(api: Api) -> None:
    pc2 = await me_at(api, "PC2", 70)
    assert (pc2["officer_id"], pc2["team"]) == ("PC2", None)
    shift = pc2["shift"]
    assert (mins(shift["start"]), mins(shift["end"])) == (40, 70)
    assert shift["inside_min"] == pytest.approx(18)
    assert shift["lost_min"] == pytest.approx(7)
    assert shift["outside_min"] == pytest.approx(5)
    assert shift["losses"] == 1
    (window,) = pc2["windows"]
    assert (mins(window["window_start"]), mins(window["window_end"])) == (0, 60)
    assert (window["planned_visits"], window["planned_minutes"]) == (2, 20)
    assert (window["delivered_visits"], window["delivered_minutes"]) == (2, pytest.approx(24))
    assert (window["my_visits"], window["my_minutes"]) == (1, pytest.approx(12))
    got = [(mins(v["start"]), mins(v["end"]), v["minutes"], v["window_minutes"], v["length"]) for v in pc2["visits"]]
    assert got == [
        (0, 6, pytest.approx(6), pytest.approx(6), "short"),
        (48, 66, pytest.approx(18), pytest.approx(12), "long"),
    ]
    assert (pc2["visits_today"], pc2["qualifying_visits_today"]) == (2, 1)
    assert pc2["due"] == []  # the window is over
    radios = {r["device_id"]: r for r in pc2["radios"]}
    assert (radios["R1"]["age_s"], radios["R1"]["accuracy_m"], radios["R1"]["poor_fix"], radios["R1"]["lost"]) == (
        pytest.approx(0),
        150.0,
        True,
        False,
    )
    assert (radios["R2"]["lost"], radios["R2"]["age_s"]) == (True, pytest.approx(40 * 60))

    pc1 = await me_at(api, "PC1", 70)
    assert (mins(pc1["shift"]["start"]), mins(pc1["shift"]["end"])) == (-30, 20)
    assert (pc1["shift"]["inside_min"], pc1["shift"]["outside_min"], pc1["shift"]["lost_min"]) == (
        pytest.approx(12),
        pytest.approx(38),
        0,
    )
    assert [(mins(v["start"]), mins(v["end"]), v["length"]) for v in pc1["visits"]] == [(5, 17, "guideline")]
    assert (pc1["windows"][0]["my_visits"], pc1["windows"][0]["my_minutes"]) == (1, pytest.approx(12))
    assert pc1["radios"] == []  # R1 is PC2's now


async def test_me_due_list_equals_compliance_due_of_the_team(api: Api) -> None:
    """At 55 the window is open: 20 min x 55/60 = 18.33 due, 12 delivered (PC2's 7 so far is short)."""
    pc2 = await me_at(api, "PC2", 55)
    due = await api.client.get("/v1/compliance/due", params={"at": minute(55)}, headers=api.as_(Role.VIEWER))
    assert pc2["due"] == [r for r in due.json()["due"] if r["team"] == "Team A"]
    (row,) = pc2["due"]
    assert row["shortfall_minutes"] == pytest.approx(20 * 55 / 60 - 12)
    assert pc2["shift"]["inside_min"] == pytest.approx(7)  # 48-55, the figures up to `at`


async def test_me_keys_not_bound_to_an_officer_refused_and_reads_audited(api: Api) -> None:
    for role in (Role.VIEWER, Role.ADMIN):
        answer = await api.client.get("/v1/me", headers=api.as_(role))
        assert (answer.status_code, answer.json()["detail"]) == (
            403,
            "this needs a key bound to an officer (--officer-id)",
        )
    assert (await api.client.get("/v1/me", headers=api.as_(Role.INGEST))).status_code == 403
    # The officer is the key's: a parameter naming another is not a way in.
    own = await api.client.get("/v1/me", params={"officer_id": "PC1"}, headers=api.as_(Role.OFFICER))
    assert (own.status_code, own.json()["officer_id"], own.json()["visits"]) == (200, "PC-TEST", [])
    entries = await api.store.audit_entries(target="PC-TEST")
    assert [(e.role, e.action) for e in entries] == [("officer", "GET /v1/me")]


async def stream_seqs(api: Api, officer: str, count: int) -> list[int]:
    """The seqs of the first `count` events of the officer's stream from the log's start, each
    checked to name the officer."""
    got: list[int] = []
    async with serve_on_port(api.ctx) as url, httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        headers = {"authorization": f"Bearer {api.keys[officer]}"}  # type: ignore[index]
        async with client.stream("GET", "/v1/me/stream", params={"after": 0}, headers=headers) as stream:
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    assert orjson.loads(line[6:])["officer_id"] == officer
                elif line.startswith("id: ") and int(line[4:]) > 0:
                    got.append(int(line[4:]))
                if len(got) == count:
                    break
    return got


async def test_me_stream_carries_only_the_events_naming_this_officer(api: Api) -> None:
    """From the start of the log (after=0), PC2's stream holds exactly the stored events naming PC2."""
    expected = [e.seq for e in await api.store.events_page(officer_id="PC2", limit=1000)]
    assert expected and len(expected) < len(await api.store.events_page(limit=1000))
    assert await stream_seqs(api, "PC2", len(expected)) == expected


async def test_me_stream_includes_a_radio_assigned_to_the_officer_whose_pings_name_no_one(api: Api) -> None:
    """R5's pings carry only its id (a TETRA radio); assigned to PC2, its events are PC2's too."""
    await record_all(api.store, engine_run([P(t * 60, "a" if 2 <= t < 8 else "out", "R5") for t in range(12)]))
    await save_assignment(api.store, Assignment("as-5", "R5", "PC2", None, None, minute(-60), None), create=True)
    everything = await api.store.events_page(limit=1000)
    expected = [e.seq for e in everything if e.officer_id == "PC2" or e.device_id == "R5"]
    assert any(e.device_id == "R5" for e in everything)
    assert await stream_seqs(api, "PC2", len(expected)) == expected


async def test_me_team_from_the_officers_assignment_shows_only_that_teams_plans(api: Api) -> None:
    """PC2 assigned R1 in Team A from the handover on: Team B's plan on B is not PC2's to see."""
    await upsert_plans(api.store, [parse_plan(plan_doc("b-late", "B", "Team B", windows=PLAN["windows"]))])
    everyone = await me_at(api, "PC1", 70)  # no assignment: no team, every plan
    assert (everyone["team"], [w["plan_id"] for w in everyone["windows"]]) == (None, ["a-late", "b-late"])
    await save_assignment(api.store, Assignment("as-1", "R1", "PC2", None, "Team A", minute(40), None), create=True)
    pc2 = await me_at(api, "PC2", 70)
    assert (pc2["team"], [w["plan_id"] for w in pc2["windows"]]) == ("Team A", ["a-late"])
    assert sorted(r["device_id"] for r in pc2["radios"]) == ["R1", "R2"]
