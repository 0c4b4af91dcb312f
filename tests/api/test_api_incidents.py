"""Incidents, outcomes, candidate hot spots and capacity over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.api import Api, serve_api
from support.helpers import T0, P, run
from support.incidents import BAD_CSV, BAD_CSV_ERRORS, CAMDEN, DAY, HAND_INCIDENTS, hand_fences

from services.access.roles import Role
from services.store import devices_now


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Api]:
    async with serve_api(db_url) as served:
        yield served


def hand_json() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in HAND_INCIDENTS:
        row: dict[str, Any] = {"id": i.incident_id, "lat": i.lat, "lon": i.lon, "category": i.category}
        row.update({"ts": i.ts} if i.precision == "second" else {"month": "2026-11"})
        out.append(row)
    return out


CAPACITY = {"officers": 5, "shift_h": 8, "visits_per_shift": 4, "visit_min": 15, "travel_min": 15, "planned": 40}


async def test_upload_needs_admin_and_reads_need_viewer(api: Api) -> None:
    assert (await api.client.post("/v1/incidents", json=hand_json(), headers=api.as_(Role.VIEWER))).status_code == 403
    assert (await api.client.get("/v1/hotspots/candidates", headers=api.as_(Role.INGEST))).status_code == 403
    assert (await api.client.get("/v1/hotspots/candidates", headers=api.as_(Role.VIEWER))).status_code == 200


async def test_upload_json_twice_stores_each_incident_once(api: Api) -> None:
    first = await api.client.post("/v1/incidents", json=hand_json(), headers=api.as_(Role.ADMIN))
    again = await api.client.post("/v1/incidents", json=hand_json(), headers=api.as_(Role.ADMIN))
    assert first.status_code == again.status_code == 201
    n = len(HAND_INCIDENTS)
    assert first.json() == {"rows": n, "imported": n, "new": n, "replaced": 0, "repeated": 0}
    assert again.json() == {"rows": n, "imported": n, "new": 0, "replaced": n, "repeated": 0}
    audit = (await api.client.get("/v1/audit", headers=api.as_(Role.ADMIN))).json()["entries"]
    assert [e["action"] for e in audit] == ["POST /v1/incidents", "POST /v1/incidents"]


async def test_upload_json_with_a_bad_row_names_it_and_stores_nothing(api: Api) -> None:
    rows = hand_json()
    rows[1]["lat"] = "north"
    del rows[4]["category"]
    response = await api.client.post("/v1/incidents", json=rows, headers=api.as_(Role.ADMIN))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["message"] == f"2 of {len(rows)} rows are invalid; nothing was stored"
    assert detail["errors"] == [
        {"line": None, "index": 1, "field": "lat", "reason": "lat: must be a number, got 'north'"},
        {"line": None, "index": 4, "field": "category", "reason": "category: is required"},
    ]
    candidates = (await api.client.get("/v1/hotspots/candidates", headers=api.as_(Role.VIEWER))).json()
    assert candidates["properties"]["incidents"] == 0


async def test_upload_csv_with_bad_rows_names_their_lines(api: Api) -> None:
    response = await api.client.post(
        "/v1/incidents", content=BAD_CSV.encode(), headers={**api.as_(Role.ADMIN), "content-type": "text/csv"}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [(e["line"], e["field"], e["reason"]) for e in detail["errors"]] == BAD_CSV_ERRORS
    assert detail["message"] == "5 of 8 rows are invalid; nothing was stored"


@pytest.mark.parametrize(
    ("body", "content_type", "code", "text"),
    [(b"[1,", "application/json", 400, "not valid JSON"),
     (b"[]", "application/json", 422, "holds no incidents"),
     (b"id,lat\n", "text/csv", 422, "missing required column(s) lon")],
)  # fmt: skip
async def test_upload_unusable_body_refused(api: Api, body: bytes, content_type: str, code: int, text: str) -> None:
    headers = {**api.as_(Role.ADMIN), "content-type": content_type}
    response = await api.client.post("/v1/incidents", content=body, headers=headers)
    assert response.status_code == code
    assert text in str(response.json()["detail"])


async def test_camden_csv_upload_and_candidates_match_a_plain_count(api: Api) -> None:
    with CAMDEN.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    response = await api.client.post(
        "/v1/incidents", content=CAMDEN.read_bytes(), headers={**api.as_(Role.ADMIN), "content-type": "text/csv"}
    )
    assert response.status_code == 201
    assert response.json()["imported"] == len(rows)
    answer = await api.client.get(
        "/v1/hotspots/candidates", params={"cell_m": 150, "top": 5, "buffer_m": 10}, headers=api.as_(Role.VIEWER)
    )
    doc = answer.json()
    assert doc["properties"]["incidents"] == len(rows)
    assert len(doc["features"]) == 5
    for feature in doc["features"]:
        ring = feature["geometry"]["coordinates"][0]
        west, south, east, north = ring[0][0], ring[0][1], ring[2][0], ring[2][1]
        plain = sum(west <= float(r["lon"]) < east and south <= float(r["lat"]) < north for r in rows)
        assert feature["properties"]["count"] == plain
        assert feature["properties"]["buffer_m"] == 10
    # The proposals post straight back as fences.
    posted = await api.client.post("/v1/fences", json=doc, headers=api.as_(Role.ADMIN))
    assert posted.status_code == 201
    assert posted.json()["fences"] == [f["id"] for f in doc["features"]]


async def test_candidates_by_harm_with_own_weights(api: Api) -> None:
    await api.client.post("/v1/incidents", json=hand_json(), headers=api.as_(Role.ADMIN))
    params: dict[str, Any] = {"cell_m": 5000, "by": "harm", "weight": ["Robbery=2", "Drugs=0.5"], "top": 3}
    doc = (await api.client.get("/v1/hotspots/candidates", params=params, headers=api.as_(Role.VIEWER))).json()
    # The grid origin is the middle of the points' box rounded to 0.01 deg: lon 0.01, where "far" lies,
    # so "far" starts cell 0 and every other incident lies in the 5 km to the west of it (cell -1).
    # Cell -1: robberies i1 i2 i5 i7 4 x 2, drugs i3 i4 2 x 0.5, burglaries i8 m1 2 x 5 (the default table).
    assert [(f["properties"]["count"], f["properties"]["score"]) for f in doc["features"]] == [(8, 19.0), (1, 2.0)]
    assert doc["properties"]["origin"] == [0.01, 0.0]
    bad = await api.client.get("/v1/hotspots/candidates", params={"weight": "Robbery"}, headers=api.as_(Role.VIEWER))
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "weight"]


async def test_outcomes_before_during_beside_dosage(api: Api) -> None:
    await api.store.upsert_fences(hand_fences())
    await api.client.post("/v1/incidents", json=hand_json(), headers=api.as_(Role.ADMIN))
    # One 15-minute visit to A at T0 (a ping every 4 minutes: the signal is never lost).
    events, engine = run([P(0, "a"), P(240, "a"), P(480, "a"), P(720, "a"), P(900, "out")])
    _, changed = engine.checkpoint()
    await api.store.record(events, devices_now(changed))
    params = {"from": T0 - 7 * DAY, "to": T0 + 7 * DAY, "programme_start": T0}
    response = await api.client.get("/v1/outcomes", params=params, headers=api.as_(Role.VIEWER))
    assert response.status_code == 200
    body = response.json()
    fences = {f["fence_id"]: f for f in body["fences"]}
    a = fences["A"]
    assert (a["period"]["incidents"], a["period"]["weeks"], a["period"]["partial"]) == (5, 2.0, 1)
    assert (a["before"]["incidents"], a["before"]["per_week"], a["before"]["visits"]) == (2, 2.0, 0)
    assert (a["during"]["incidents"], a["during"]["visits"], a["during"]["dwell_s"]) == (3, 1, 900.0)
    assert a["during"]["categories"] == {"Robbery": 2, "Drugs": 1}
    assert (a["change_per_week"], a["change_pct"]) == (1.0, 50.0)
    assert (fences["B"]["change_per_week"], fences["B"]["change_pct"]) == (3.0, None)
    only_c = await api.client.get("/v1/outcomes", params={"from": T0, "to": T0 + DAY, "fence_id": "C"},
                                  headers=api.as_(Role.VIEWER))  # fmt: skip
    assert [(f["fence_id"], f["period"]["categories"], f["before"]) for f in only_c.json()["fences"]] == [
        ("C", {"Robbery": 1}, None)
    ]


@pytest.mark.parametrize(
    ("params", "code", "where"),
    [({"from": T0, "to": T0 + DAY, "programme_start": T0 + 2 * DAY}, 422, "programme_start"),
     ({"from": T0, "to": T0 + DAY, "programme_start": "soon"}, 422, "programme_start"),
     ({"to": T0 + DAY}, 422, "from"),
     ({"from": T0, "to": T0 + DAY, "fence_id": "nope"}, 404, "'nope'")],
)  # fmt: skip
async def test_outcomes_bad_query_named(api: Api, params: dict[str, Any], code: int, where: str) -> None:
    await api.store.upsert_fences(hand_fences())
    response = await api.client.get("/v1/outcomes", params=params, headers=api.as_(Role.VIEWER))
    assert response.status_code == code
    assert where in str(response.json()["detail"])


async def test_capacity_forty_planned_twenty_resourced(api: Api) -> None:
    response = await api.client.get("/v1/hotspots/capacity", params=CAPACITY, headers=api.as_(Role.VIEWER))
    assert response.status_code == 200
    body = response.json()
    # 480 min / (15 + 15) = 16 visits per officer, x 5 = 80, / 4 per hot spot = 20; 40 need 10 officers.
    assert (body["visits_per_officer"], body["total_visits"], body["hotspots_resourced"]) == (16, 80, 20)
    assert (body["shortfall"], body["officers_needed"], body["dosage_min_per_hotspot"]) == (20, 10, 60.0)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"visits_per_shift": 0}, "visits_per_shift"), ({"officers": None}, "officers"), ({"shift_h": "long"}, "shift_h")],
)
async def test_capacity_invalid_parameter_named(api: Api, change: dict[str, Any], field: str) -> None:
    params = {k: v for k, v in {**CAPACITY, **change}.items() if v is not None}
    response = await api.client.get("/v1/hotspots/capacity", params=params, headers=api.as_(Role.VIEWER))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]
