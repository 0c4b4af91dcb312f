"""HTTP ingest as a gateway sees it without a broker: refusals of the body as a whole, before Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.api import Api, serve_api

from services.access.roles import Role
from services.store import database_url

PING = b'{"device_id": "R1", "ts": "2026-11-21T22:00:00Z", "lat": 51.5, "lon": -0.12}'


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_api(database_url(None, tmp_path)) as served:
        yield served


@pytest.mark.parametrize(
    ("content_type", "body", "code", "words"),
    [
        ("text/plain", PING, 415, "unsupported content type 'text/plain'"),  # neither JSON nor NDJSON
        ("application/xml", b"<ping/>", 415, "unsupported content type 'application/xml'"),
        ("application/json", b"[1,", 400, "malformed JSON"),  # the right type, a broken body
        ("application/json", b"", 400, "empty body"),
    ],
)
async def test_pings_unusable_body_refused_with_its_status(
    api: Api, content_type: str, body: bytes, code: int, words: str
) -> None:
    headers = {**api.as_(Role.INGEST), "content-type": content_type}
    response = await api.client.post("/v1/pings", content=body, headers=headers)
    assert response.status_code == code
    assert words in response.json()["detail"]


async def test_pings_valid_without_broker_answer_503_to_retry(api: Api) -> None:
    headers = {**api.as_(Role.INGEST), "content-type": "application/json"}
    response = await api.client.post("/v1/pings", content=PING, headers=headers)
    assert (response.status_code, response.json()["detail"]) == (503, "Kafka is not reachable; retry later")
