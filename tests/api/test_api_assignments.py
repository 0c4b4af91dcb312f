"""/v1/assignments over HTTP on SQLite and PostgreSQL: admins write, viewers read, every call audited
(roles: test_route_access.py); 409 naming both for an overlap, 422 naming the field; and the
handover of tests/services/measures/test_assignment_handover.py as the API shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.api import Api, serve_api
from support.helpers import T0, P, fence_a, fence_b
from support.observations import engine_run, record_all
from support.plans import SAT, plan_doc

from services.access.roles import Role

HANDOVER = T0 + 1200


def body(officer: str, start: float, end: float | None = None, **extra: Any) -> dict[str, Any]:
    return {"device_id": "r1", "officer_id": officer, "from": start, "to": end, **extra}


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Api]:
    async with serve_api(db_url) as served:
        yield served


async def test_admin_creates_replaces_and_deletes_viewer_reads_all_audited(api: Api) -> None:
    admin, viewer = api.as_(Role.ADMIN), api.as_(Role.VIEWER)
    made = await api.client.post("/v1/assignments", json=body("PC A", T0, HANDOVER, callsign="Alpha 1"), headers=admin)
    assert (made.status_code, made.json()) == (201, {
        "assignment_id": f"r1@{T0:.0f}", "device_id": "r1", "officer_id": "PC A", "callsign": "Alpha 1",
        "team": None, "from": T0, "to": HANDOVER,
    })  # fmt: skip
    iso = {"device_id": "r1", "officer_id": "PC B", "from": "2026-11-21T22:20:00Z", "team": "South"}
    put = await api.client.put("/v1/assignments/b1", json=iso, headers=admin)
    assert (put.status_code, put.json()["from"], put.json()["to"]) == (200, HANDOVER, None)
    listed = (await api.client.get("/v1/assignments", headers=viewer)).json()["assignments"]
    assert [(a["assignment_id"], a["officer_id"]) for a in listed] == [(f"r1@{T0:.0f}", "PC A"), ("b1", "PC B")]
    now = await api.client.get("/v1/assignments", params={"at": "2026-11-21T22:30:00Z"}, headers=viewer)
    assert [a["officer_id"] for a in now.json()["assignments"]] == ["PC B"]
    assert (await api.client.get("/v1/assignments/b1", headers=viewer)).json()["team"] == "South"
    assert (await api.client.delete("/v1/assignments/b1", headers=admin)).status_code == 204
    gone = await api.client.delete("/v1/assignments/b1", headers=admin)
    assert (gone.status_code, gone.json()["detail"]) == (404, "no assignment 'b1'")
    assert (await api.client.get("/v1/assignments/b1", headers=viewer)).status_code == 404
    entries = (await api.client.get("/v1/audit", headers=admin)).json()["entries"]
    assert sorted({e["action"] for e in entries if "assignments" in e["action"]}) == [
        "DELETE /v1/assignments/{id}", "GET /v1/assignments", "GET /v1/assignments/{id}",
        "POST /v1/assignments", "PUT /v1/assignments/{id}",
    ]  # fmt: skip


async def test_overlap_is_409_naming_both_and_bad_fields_422_naming_the_field(api: Api) -> None:
    admin = api.as_(Role.ADMIN)
    assert (await api.client.post("/v1/assignments", json=body("PC A", T0, None, assignment_id="a1"),
                                  headers=admin)).status_code == 201  # fmt: skip
    clash = await api.client.post("/v1/assignments", json=body("PC B", HANDOVER, assignment_id="b1"), headers=admin)
    assert clash.status_code == 409
    assert "assignment 'b1' overlaps assignment 'a1' of device 'r1' (officer 'PC A'" in clash.json()["detail"]
    again = await api.client.post("/v1/assignments", json=body("PC A", T0, None, assignment_id="a1"), headers=admin)
    assert (again.status_code, again.json()["detail"]) == (409, "assignment 'a1' already exists")
    for sent, loc, words in [
        (body("PC B", T0 + 5000, T0 + 4000), "to", "to: must be after from"),
        (body("PC B", "2026-11-21 22:00"), "from", "from: has no UTC offset"),
        (body("PC B", 1.8e12), "from", "epoch in seconds, not milliseconds"),
        ({**body("PC B", T0), "officer_id": ""}, "officer_id", ""),
        ({**body("PC B", T0), "colour": "red"}, "colour", ""),
    ]:
        refused = await api.client.post("/v1/assignments", json=sent, headers=admin)
        detail = refused.json()["detail"][0]
        assert (refused.status_code, detail["loc"]) == (422, ["body", loc]), sent
        assert words in detail["msg"]
    wrong = await api.client.put("/v1/assignments/x", json={**body("PC B", T0), "assignment_id": "y"}, headers=admin)
    assert (wrong.status_code, wrong.json()["detail"][0]["loc"]) == (422, ["body", "assignment_id"])


async def test_handover_shows_in_presence_events_compliance_officer_time_and_signal_loss(api: Api) -> None:
    store, admin, viewer = api.store, api.as_(Role.ADMIN), api.as_(Role.VIEWER)
    await store.upsert_fences([fence_a(), fence_b()])
    times = [*range(0, 1321, 60), *range(1740, 2401, 60)]
    await record_all(store, engine_run([P(t, "a" if 300 <= t < 900 or t >= 1800 else "out", "r1") for t in times]))
    assert (await api.client.post("/v1/plans", json={"plans": [plan_doc("p-a", "A")]}, headers=admin)).is_success
    for who, start, end, team in (("PC A", T0 - 3600, HANDOVER, "North"), ("PC B", HANDOVER, None, "South")):
        made = await api.client.post("/v1/assignments", json=body(who, start, end, team=team), headers=admin)
        assert made.status_code == 201
    [fence] = (await api.client.get("/v1/presence", headers=viewer)).json()["fences"]
    assert [(d["device_id"], d["officer_id"], d["team"]) for d in fence["devices"]] == [("r1", "PC B", "South")]
    device = (await api.client.get("/v1/presence/devices/r1", headers=viewer)).json()
    assert (device["officer_id"], device["team"]) == ("PC B", "South")
    events = (await api.client.get("/v1/events", headers=viewer)).json()["events"]
    assert [(e["type"], e.get("officer_id"), e.get("team")) for e in events] == [
        ("enter", "PC A", "North"), ("exit", "PC A", "North"), ("signal_lost", "PC B", "South"),
        ("signal_restored", "PC B", "South"), ("enter", "PC B", "South"),
    ]  # fmt: skip
    night = {"from": str(SAT), "to": str(SAT + 86_400)}
    rows = (await api.client.get("/v1/compliance", params={**night, "group_by": "officer"}, headers=viewer)).json()
    assert [(r["officer_id"], r["delivered_visits"]) for r in rows["rows"]] == [("PC A", 1), ("PC B", 1)]
    hour = {"from": str(T0), "to": str(T0 + 3600)}
    [officer] = (await api.client.get("/v1/officers/time", params=hour, headers=viewer)).json()["officers"]
    assert [(s["officer_id"], s["team"], s["inside_s"], s["lost_s"]) for s in officer["shifts"]] == [
        ("PC A", "North", 600.0, 0.0), ("PC B", "South", 600.0, 420.0),
    ]  # fmt: skip
    losses = (await api.client.get("/v1/signal-loss", params=hour, headers=viewer)).json()["devices"]
    assert [(d["officer_id"], d["losses"]) for d in losses] == [("PC A", 0), ("PC B", 1)]
