"""/v1/plans, /v1/compliance and /v1/compliance/due over HTTP on SQLite and PostgreSQL: admins
write, viewers read (keys and roles: test_route_access.py), 422 naming the field, per-officer reads audited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from support.api import Api, serve_api
from support.helpers import square_fence
from support.plans import FRI, at, plan_doc, put_visits

from ingest.plan_file import parse_plan
from services.access.roles import Role
from services.store.tables import fences_table, plans_table


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Api]:
    async with serve_api(db_url) as served:
        store = served.store
        await store.upsert_fences([square_fence("A"), square_fence("B", 0.01)])
        await put_visits(store, [("d1", "A", at(FRI, 0), at(FRI, 12)), ("d2", "A", at(FRI, 30), at(FRI, 50))],
                         {"d1": at(FRI, 12), "d2": at(FRI, 50)}, {"d1": "PC 1"})  # fmt: skip
        yield served


async def _post(api: Api, *plans: dict[str, Any], role: Role = Role.ADMIN) -> httpx.Response:
    return await api.client.post("/v1/plans", json={"plans": list(plans)}, headers=api.as_(role))


async def test_admin_posts_plans_viewer_reads_them_back(api: Api) -> None:
    response = await _post(api, plan_doc("p-a", "A"), plan_doc("p-b", "B", "Team B"))
    assert (response.status_code, response.json()) == (201, {"plans": ["p-a", "p-b"]})
    listed = (await api.client.get("/v1/plans", headers=api.as_(Role.VIEWER))).json()["plans"]
    assert [p["plan_id"] for p in listed] == ["p-a", "p-b"]
    assert listed[0]["windows"] == [{"days": ["fri", "sat"], "start": "20:00", "end": "04:00", "visits": 3}]
    team_b = await api.client.get("/v1/plans", params={"team": "Team B"}, headers=api.as_(Role.VIEWER))
    assert [p["plan_id"] for p in team_b.json()["plans"]] == ["p-b"]
    one = await api.client.get("/v1/plans/p-a", headers=api.as_(Role.VIEWER))
    assert (one.status_code, one.json()["min_visit_min"], one.json()["timezone"]) == (200, 10.0, None)


async def test_put_replaces_and_delete_removes(api: Api) -> None:
    await _post(api, plan_doc("p-a", "A"))
    put = await api.client.put("/v1/plans/p-a", json=plan_doc("p-a", "B", target_pct=80), headers=api.as_(Role.ADMIN))
    assert (put.status_code, put.json()) == (200, {"plans": ["p-a"]})
    got = (await api.client.get("/v1/plans/p-a", headers=api.as_(Role.VIEWER))).json()
    assert (got["fence_id"], got["target_pct"]) == ("B", 80.0)
    assert (await api.client.delete("/v1/plans/p-a", headers=api.as_(Role.ADMIN))).status_code == 200
    assert (await api.client.delete("/v1/plans/p-a", headers=api.as_(Role.ADMIN))).status_code == 404
    assert (await api.client.get("/v1/plans/p-a", headers=api.as_(Role.VIEWER))).status_code == 404


async def test_fence_in_a_plan_cannot_be_deleted_until_the_plan_goes(api: Api) -> None:
    await _post(api, plan_doc("p-a", "A"))
    refused = await api.client.delete("/v1/fences/A", headers=api.as_(Role.ADMIN))
    assert refused.status_code == 409
    assert refused.json()["detail"] == "fence 'A' is in patrol plan(s) p-a: delete or change them first"
    assert (await api.client.get("/v1/fences/A", headers=api.as_(Role.VIEWER))).status_code == 200
    assert (await api.client.delete("/v1/plans/p-a", headers=api.as_(Role.ADMIN))).status_code == 200
    assert (await api.client.delete("/v1/fences/A", headers=api.as_(Role.ADMIN))).status_code == 200


async def test_fence_delete_during_a_plan_write_waits_for_it_and_refuses(api: Api, db_url: str) -> None:
    """The plan check and the delete are one transaction: a plan committed while the delete waits
    is seen. Before, the check ran first on its own, and the delete then left the plan orphaned."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: the two cannot interleave")
    plan = parse_plan(plan_doc("p-a", "A"))
    row = {"plan_id": "p-a", "fence_id": "A", "team": plan.team, "body": plan.to_dict(), "updated_at": 0.0}
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as writer:  # upsert_plans half-way: the fence locked, the plan written
            fence = sa.select(fences_table.c.fence_id).where(fences_table.c.fence_id == "A")
            await writer.execute(fence.with_for_update(read=True))
            await writer.execute(sa.insert(plans_table).values(row))
            deleting = asyncio.create_task(api.client.delete("/v1/fences/A", headers=api.as_(Role.ADMIN)))
            await _until_a_query_waits_for_a_lock(engine)
        refused = await deleting
    finally:
        await engine.dispose()
    assert (refused.status_code, refused.json()["detail"]) == (
        409, "fence 'A' is in patrol plan(s) p-a: delete or change them first",
    )  # fmt: skip
    assert (await api.client.get("/v1/fences/A", headers=api.as_(Role.VIEWER))).status_code == 200


async def _until_a_query_waits_for_a_lock(engine: AsyncEngine, timeout_s: float = 10.0) -> None:
    waiting = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with engine.connect() as probe:
            if (await probe.execute(waiting)).scalar_one():
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no query waited for a lock within {timeout_s} s")


@pytest.mark.parametrize(
    ("plan", "loc", "msg"),
    [
        (plan_doc(fence_id="HS99"), ["body", "plans", 1, "fence_id"], "plan 'hs-01-nte': unknown fence 'HS99'"),
        (plan_doc(windows=[{"days": ["sat"], "start": "20:00", "end": "20:00", "visits": 3}]),
         ["body", "plans", 1, "windows", 0, "end"], "plan 'hs-01-nte' window 0: end 20:00 equals start"),
        (plan_doc(min_visit_min="ten"), ["body", "plans", 1, "min_visit_min"], "plan 'hs-01-nte': must be a number"),
    ],
)  # fmt: skip
async def test_bad_plan_answers_422_naming_the_field(api: Api, plan: dict[str, Any], loc: list[Any], msg: str) -> None:
    response = await _post(api, plan_doc("ok", "A"), plan)
    (error,) = response.json()["detail"]
    assert (response.status_code, error["loc"]) == (422, loc)
    assert error["msg"].startswith(msg)
    assert (await api.client.get("/v1/plans", headers=api.as_(Role.VIEWER))).json()["plans"] == []  # all or none


async def test_put_with_unknown_fence_or_other_id_answers_422(api: Api) -> None:
    unknown = await api.client.put("/v1/plans/p", json=plan_doc("p", "HS99"), headers=api.as_(Role.ADMIN))
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "fence_id"]
    other = await api.client.put("/v1/plans/p", json=plan_doc("q", "A"), headers=api.as_(Role.ADMIN))
    assert (other.status_code, other.json()["detail"][0]["loc"]) == (422, ["body", "plan_id"])


async def test_compliance_by_window_and_validation(api: Api) -> None:
    await _post(api, plan_doc("p-a", "A", windows=[{"days": ["fri"], "start": "20:00", "end": "04:00", "visits": 3}]))
    params = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}
    response = await api.client.get("/v1/compliance", params=params, headers=api.as_(Role.VIEWER))
    body = response.json()
    assert (response.status_code, body["group_by"], body["start"]) == (200, "window", at(FRI, -20 * 60))
    (row,) = body["rows"]
    # 12 min (guideline) + 20 min (long) = 2 of 3 visits, 32 of 30 planned minutes.
    assert (row["plan_id"], row["window_start"], row["window_end"]) == ("p-a", FRI, at(FRI, 480))
    assert (row["planned_visits"], row["delivered_visits"], row["delivered_minutes"]) == (3, 2, 32.0)
    assert (row["compliance_pct"], row["guideline_visits"], row["long_visits"]) == (pytest.approx(66.667, 1e-3), 1, 1)
    bad = await api.client.get("/v1/compliance", params={**params, "to": "2026-11-19T00:00:00Z"},
                               headers=api.as_(Role.VIEWER))  # fmt: skip
    assert (bad.status_code, bad.json()["detail"][0]["loc"]) == (422, ["query", "to"])
    too_long = await api.client.get("/v1/compliance", params={"from": "0", "to": str(401 * 86400)},
                                    headers=api.as_(Role.VIEWER))  # fmt: skip
    assert (too_long.status_code, too_long.json()["detail"][0]["msg"]) == (
        422,
        "to must be at most 400 days after from",
    )
    bad_group = await api.client.get("/v1/compliance", params={**params, "group_by": "day"},
                                     headers=api.as_(Role.VIEWER))  # fmt: skip
    assert (bad_group.status_code, bad_group.json()["detail"][0]["loc"]) == (422, ["query", "group_by"])


async def test_compliance_per_officer_is_audited(api: Api) -> None:
    await _post(api, plan_doc("p-a", "A"))
    params = {"from": str(at(FRI, -60)), "to": str(at(FRI, 60)), "group_by": "officer"}
    rows = (await api.client.get("/v1/compliance", params=params, headers=api.as_(Role.VIEWER))).json()["rows"]
    assert [(r["officer_id"], r["delivered_visits"]) for r in rows] == [("PC 1", 1), ("d2", 1)]
    entries = (await api.client.get("/v1/audit", headers=api.as_(Role.ADMIN))).json()["entries"]
    reads = [e for e in entries if e["action"] == "GET /v1/compliance"]
    assert [(e["role"], e["detail"]["officers"]) for e in reads] == [("viewer", ["PC 1", "d2"])]


async def test_due_list_at_a_time_and_bad_time(api: Api) -> None:
    await _post(api, plan_doc("p-a", "A"), plan_doc("p-b", "B", "Team B"))
    # Fri 22:00: 120 of 480 min gone, 30 planned min x 1/4 = 7.5 due. A has 32 min; B none: 7.5 behind.
    response = await api.client.get("/v1/compliance/due", params={"at": str(at(FRI, 120))},
                                    headers=api.as_(Role.VIEWER))  # fmt: skip
    body = response.json()
    assert (response.status_code, body["as_of"]) == (200, at(FRI, 120))
    assert [(d["plan_id"], d["fence_id"], d["shortfall_minutes"]) for d in body["due"]] == [("p-b", "B", 7.5)]
    for at_value in ("soon", "-1e18"):
        bad = await api.client.get("/v1/compliance/due", params={"at": at_value}, headers=api.as_(Role.VIEWER))
        assert (bad.status_code, bad.json()["detail"][0]["loc"]) == (422, ["query", "at"])
