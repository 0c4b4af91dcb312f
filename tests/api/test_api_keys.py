"""Admins manage keys over HTTP as `hotspots keys` does: an officer key made here reads only its
officer's view, the token is shown once, a revoke takes effect at once, and each change is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.api import Api, serve_api

from services.access.roles import Role


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Api]:
    async with serve_api(db_url) as served:
        yield served


async def test_keys_admin_creates_officer_key_that_reads_only_its_own_view_then_revokes_it(api: Api) -> None:
    body = {"role": "officer", "name": "PC 1234 phone", "officer_id": "PC1234"}
    created = await api.client.post("/v1/keys", json=body, headers=api.as_(Role.ADMIN))
    assert created.status_code == 201, created.text
    key = created.json()
    assert (key["role"], key["officer_id"], key["revoked_at"]) == ("officer", "PC1234", None)
    officer = {"authorization": f"Bearer {key['token']}"}

    assert (await api.client.get("/v1/me", headers=officer)).status_code == 200
    assert (await api.client.get("/v1/presence", headers=officer)).status_code == 403

    listed = (await api.client.get("/v1/keys", headers=api.as_(Role.ADMIN))).json()["keys"]
    mine = [k for k in listed if k["key_id"] == key["key_id"]]
    assert mine and "token" not in mine[0] and all("hash" not in name for name in mine[0])

    revoked = await api.client.delete(f"/v1/keys/{key['key_id']}", headers=api.as_(Role.ADMIN))
    assert revoked.status_code == 204
    assert (await api.client.get("/v1/me", headers=officer)).status_code == 401
    again = await api.client.delete(f"/v1/keys/{key['key_id']}", headers=api.as_(Role.ADMIN))
    assert again.status_code == 404

    audited = [(e.action, e.target) for e in await api.store.audit_entries(target=key["key_id"])]
    assert audited == [("POST /v1/keys", key["key_id"])] + [("DELETE /v1/keys/{id}", key["key_id"])] * 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "officer", "name": "no officer"}, "officer_id"),
        ({"role": "viewer", "name": "bound viewer", "officer_id": "PC1"}, "officer_id"),
        ({"role": "viewer", "name": "viewer phone", "device_id": "phone-1"}, "device_id"),
        ({"role": "ingest", "name": "bad\x00name"}, "name"),
        ({"role": "superuser", "name": "x"}, "role"),
    ],
)
async def test_keys_create_refused_naming_the_field(api: Api, body: dict[str, str], field: str) -> None:
    r = await api.client.post("/v1/keys", json=body, headers=api.as_(Role.ADMIN))
    assert r.status_code == 422, r.text
    assert field in [str(part) for error in r.json()["detail"] for part in error["loc"]]
