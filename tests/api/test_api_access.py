"""The API's access control and fences: keys and roles, 401/403/429, fences CRUD, the audit log.

Every test runs on SQLite and on PostgreSQL (the db_url fixture), through the real store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from support.api import Api, serve_api
from support.helpers import square_geometry

from services.access.roles import RateLimiter, Role
from services.settings import Settings


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Api]:
    async with serve_api(db_url) as served:
        yield served


def feature(fence_id: str, side: float = 0.001, **props: object) -> dict[str, object]:
    return {"type": "Feature", "properties": {"id": fence_id, **props}, "geometry": square_geometry(0, 0, side)}


@pytest.mark.parametrize(
    "header",
    [
        "Bearer hs_nope_nope",  # unknown key id
        "Bearer not-a-key",  # malformed
        "Basic abc",  # wrong scheme
    ],
)
async def test_api_bad_key_answers_401(api: Api, header: str) -> None:
    response = await api.client.get("/v1/fences", headers={"authorization": header})
    assert response.status_code == 401


async def test_api_wrong_secret_for_real_key_id_answers_401(api: Api) -> None:
    key_id = api.keys[Role.ADMIN].split("_")[1]
    response = await api.client.get("/v1/fences", headers={"authorization": f"Bearer hs_{key_id}_wrongsecret"})
    assert response.status_code == 401


async def test_api_revoked_key_answers_401(api: Api) -> None:
    key_id = api.keys[Role.VIEWER].split("_")[1]
    assert await api.store.revoke_api_key(key_id)
    response = await api.client.get("/v1/fences", headers=api.as_(Role.VIEWER))
    assert response.status_code == 401
    assert response.json()["detail"] == "unknown or revoked API key"


async def test_api_keys_stored_hashed_never_in_clear(api: Api, db_url: str) -> None:
    for token in api.keys.values():
        key_id, secret = token.split("_")[1], token.split("_", 2)[2]
        row = await api.store.find_api_key(key_id)
        assert row is not None
        assert secret not in json.dumps(list(row))


async def test_api_rate_limit_answers_429_with_retry_after(api: Api) -> None:
    api.ctx.limiter = RateLimiter(rate=0.001, burst=3)
    codes = [(await api.client.get("/v1/fences", headers=api.as_(Role.VIEWER))).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    last = await api.client.get("/v1/fences", headers=api.as_(Role.VIEWER))
    assert last.headers["retry-after"] == "1"


async def test_fences_admin_upserts_collection_viewer_reads_it_back(api: Api) -> None:
    body = {"type": "FeatureCollection", "features": [feature("A", name="Judd Street"), feature("B", buffer_m=25)]}
    created = await api.client.post("/v1/fences", json=body, headers=api.as_(Role.ADMIN))
    listed = await api.client.get("/v1/fences", headers=api.as_(Role.VIEWER))
    one = await api.client.get("/v1/fences/B", headers=api.as_(Role.VIEWER))
    assert created.status_code == 201
    assert created.json() == {"version": 1, "fences": ["A", "B"], "warnings": []}
    assert listed.status_code == 200
    assert listed.json()["fence_set_version"] == 1
    assert [(f["id"], f["properties"].get("name"), f["properties"]["buffer_m"]) for f in listed.json()["features"]] == [
        ("A", "Judd Street", 0.0),
        ("B", None, 25.0),
    ]
    assert one.json()["geometry"] == square_geometry(0, 0, 0.001) | {
        "coordinates": one.json()["geometry"]["coordinates"]
    }


async def test_fences_large_fence_accepted_with_micro_place_warning(api: Api) -> None:
    response = await api.client.post("/v1/fences", json=feature("BIG", side=0.01), headers=api.as_(Role.ADMIN))
    assert response.status_code == 201
    assert len(response.json()["warnings"]) == 1
    assert "larger than a micro-place" in response.json()["warnings"][0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # a bow-tie polygon
        (
            {"type": "Feature", "properties": {"id": "X"},
             "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}},
            "fence 'X': invalid geometry: Self-intersection",
        ),
        # a feature without an id, second in a collection
        ({"type": "FeatureCollection", "features": [feature("A"), {**feature("B"), "properties": {}}]},
         "feature 1: needs a string id"),
        # a negative buffer
        (feature("N", buffer_m=-5), "fence 'N': buffer_m must be a number >= 0"),
    ],
)  # fmt: skip
async def test_fences_invalid_feature_answers_422_naming_feature_and_problem(
    api: Api, body: dict[str, object], message: str
) -> None:
    response = await api.client.post("/v1/fences", json=body, headers=api.as_(Role.ADMIN))
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert (await api.store.load_fences())[1] == 0  # nothing written


async def test_fences_put_replaces_and_delete_removes_bumping_version(api: Api) -> None:
    admin = api.as_(Role.ADMIN)
    put = await api.client.put("/v1/fences/A", json=feature("A"), headers=admin)
    replaced = await api.client.put("/v1/fences/A", json=feature("A", side=0.002, name="bigger"), headers=admin)
    deleted = await api.client.delete("/v1/fences/A", headers=admin)
    missing = await api.client.delete("/v1/fences/A", headers=admin)
    assert (put.status_code, put.json()["version"]) == (200, 1)
    assert (replaced.status_code, replaced.json()["version"]) == (200, 2)
    assert (deleted.status_code, deleted.json()["version"]) == (200, 3)
    assert missing.status_code == 404
    assert (await api.client.get("/v1/fences/A", headers=api.as_(Role.VIEWER))).status_code == 404


async def test_fences_put_with_other_id_in_body_answers_422(api: Api) -> None:
    response = await api.client.put("/v1/fences/A", json=feature("B"), headers=api.as_(Role.ADMIN))
    assert response.status_code == 422
    assert "does not match" in response.json()["detail"]


async def test_audit_records_fence_changes_with_who_and_admin_reads_them(api: Api) -> None:
    admin = api.as_(Role.ADMIN)
    await api.client.post("/v1/fences", json=feature("A"), headers=admin)
    await api.client.delete("/v1/fences/A", headers=admin)
    page = await api.client.get("/v1/audit", headers=admin)
    only_a = await api.client.get("/v1/audit", params={"target": "A"}, headers=admin)
    entries = page.json()["entries"]
    assert page.status_code == 200
    assert [(e["action"], e["target"], e["role"]) for e in entries] == [
        ("POST /v1/fences", None, "admin"),
        ("DELETE /v1/fences/{id}", "A", "admin"),
    ]
    assert entries[0]["key_id"] == api.keys[Role.ADMIN].split("_")[1]
    assert entries[0]["detail"] == {"fences": ["A"], "version": 1}
    assert [e["action"] for e in only_a.json()["entries"]] == ["DELETE /v1/fences/{id}"]


async def test_audit_pages_with_cursor(api: Api) -> None:
    admin = api.as_(Role.ADMIN)
    for i in range(5):
        await api.client.put(f"/v1/fences/F{i}", json=feature(f"F{i}"), headers=admin)
    first = (await api.client.get("/v1/audit", params={"limit": 2}, headers=admin)).json()
    second = (
        await api.client.get("/v1/audit", params={"limit": 2, "after": first["next_after"]}, headers=admin)
    ).json()
    assert [e["target"] for e in first["entries"]] == ["F0", "F1"]
    assert [e["target"] for e in second["entries"]] == ["F2", "F3"]


async def test_audit_filtered_by_from_to_as_other_routes(api: Api) -> None:
    admin = api.as_(Role.ADMIN)
    for i in range(3):
        await api.client.put(f"/v1/fences/F{i}", json=feature(f"F{i}"), headers=admin)
    ts = [e["ts"] for e in (await api.client.get("/v1/audit", headers=admin)).json()["entries"]]
    middle = await api.client.get("/v1/audit", params={"from": str(ts[1]), "to": str(ts[2])}, headers=admin)
    since_2000 = await api.client.get("/v1/audit", params={"from": "2000-01-01T00:00:00Z"}, headers=admin)
    bad = await api.client.get("/v1/audit", params={"from": "yesterday"}, headers=admin)
    assert [e["target"] for e in middle.json()["entries"]] == ["F1"]  # [from, to)
    assert len(since_2000.json()["entries"]) == 3  # ISO 8601 too
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "from"]


async def test_health_and_metrics_need_no_key(api: Api) -> None:
    assert (await api.client.get("/healthz")).status_code == 200
    assert (await api.client.get("/metrics")).status_code == 200


async def test_metrics_restricted_by_setting_need_viewer_key(api: Api) -> None:
    api.ctx.settings = Settings(metrics_public=False)
    anonymous = await api.client.get("/metrics")
    gateway = await api.client.get("/metrics", headers=api.as_(Role.INGEST))
    viewer = await api.client.get("/metrics", headers=api.as_(Role.VIEWER))
    assert (anonymous.status_code, gateway.status_code, viewer.status_code) == (401, 403, 200)
    assert "hotspots_pings_consumed_total" in viewer.text


@pytest.mark.parametrize(
    "url",
    [
        "/v1/fences/A%00B",  # in a path id
        "/v1/events?device_id=R%00",  # in a filter
    ],
)
async def test_api_nul_byte_in_url_answers_400(api: Api, url: str) -> None:
    response = await api.client.get(url, headers=api.as_(Role.VIEWER))
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
