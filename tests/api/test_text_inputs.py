"""Text and numbers that used to get in and break things later (issue 12, items 1, 5, 11 and Low).

A NUL or control character in a fence id, name, plan or incident (PostgreSQL cannot store NUL,
XLSX cannot hold the others), ids of 100 KB, a buffer of 100 km (seconds of index building on
every fence change), a year-1 timestamp (reports failed in the local-time conversion), and
`from=NaN` on the audit log: each is refused with 422 naming the field, nothing is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.api import Api, serve_api
from support.helpers import square_geometry
from support.plans import plan_doc

from services.access.roles import Role
from services.store import database_url
from services.store.database import private_dir


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    async with serve_api(sqlite_url) as served:
        yield served


def feature(fence_id: Any = "A", **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": square_geometry(0, 0, 0.001), "properties": {"id": fence_id, **props}}


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (feature("A\x00"), "control character U+0000"),  # stored on SQLite, then never read or deleted
        (feature("A\x1b"), "control character U+001B"),
        (feature("A" * 100_000), "at most 128 characters"),
        (feature(name="Market\x01Square"), "control character U+0001"),
        (feature(name="M" * 1_000_000), "at most 200 characters"),
        (feature(buffer_m=100_000), "buffer_m must be at most 2000 m"),  # froze the service for 15 s
    ],
)
async def test_fences_bad_text_or_buffer_refused_422_and_nothing_stored(api: Api, doc: Any, words: str) -> None:
    response = await api.client.post("/v1/fences", content=orjson.dumps(doc), headers=api.as_(Role.ADMIN))
    assert response.status_code == 422
    assert words in response.json()["detail"]
    assert (await api.store.load_fences())[0] == []


async def test_fences_buffer_bound_is_the_max_buffer_m_setting(tmp_path: Path) -> None:
    from services.settings import Settings

    async with serve_api(database_url(None, tmp_path), Settings(max_buffer_m=50)) as api:
        body = orjson.dumps(feature(buffer_m=60))
        response = await api.client.post("/v1/fences", content=body, headers=api.as_(Role.ADMIN))
        assert response.status_code == 422 and "at most 50 m" in response.json()["detail"]


@pytest.mark.parametrize("field", ["plan_id", "team"])
async def test_plans_control_character_refused_422_naming_the_field(api: Api, field: str) -> None:
    await api.client.post("/v1/fences", content=orjson.dumps(feature("A")), headers=api.as_(Role.ADMIN))
    doc = {"plans": [plan_doc(**{field: "T\x00eam"})]}
    response = await api.client.post("/v1/plans", json=doc, headers=api.as_(Role.ADMIN))
    assert response.status_code == 422
    assert field in str(response.json()["detail"]) and "U+0000" in str(response.json()["detail"])


async def test_incidents_control_character_refused_422_naming_the_field(api: Api) -> None:
    rows = [{"id": "c\x001", "category": "burglary", "ts": "2026-11-21T22:00:00Z", "lat": 51.5, "lon": -0.12}]
    response = await api.client.post("/v1/incidents", json=rows, headers=api.as_(Role.ADMIN))
    assert response.status_code == 422
    assert "U+0000" in str(response.json()["detail"])


async def test_pings_year_one_timestamp_refused_naming_ts(api: Api) -> None:
    ping = {"device_id": "R1", "ts": "0001-01-01T00:00:00Z", "lat": 51.5, "lon": -0.12}
    response = await api.client.post("/v1/pings", json=[ping], headers=api.as_(Role.INGEST))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "ts"


@pytest.mark.parametrize("value", ["NaN", "inf", "-1e999"])
async def test_audit_non_finite_time_answers_422_as_every_route(api: Api, value: str) -> None:
    response = await api.client.get("/v1/audit", params={"from": value}, headers=api.as_(Role.ADMIN))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "from"]


def test_data_dir_is_its_owners_only(tmp_path: Path) -> None:
    existing = tmp_path / "var"
    existing.mkdir(mode=0o755)
    private_dir(existing)
    private_dir(tmp_path / "new" / "var")
    assert (existing.stat().st_mode & 0o777, (tmp_path / "new" / "var").stat().st_mode & 0o777) == (0o700, 0o700)
