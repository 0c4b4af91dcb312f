"""Handset apps over HTTP: /v1/osmand as Traccar Client and OsmAnd call it, keys in the URL, device-bound keys.

The requests are the apps' own (sources in tests/ingest/test_osmand.py). What reaches the
pings topic is read off a recording producer in the service context, so no broker is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import httpx
import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from support.api import Api, serve_api

from api.app import create_app
from services.access.keys import create_key
from services.access.roles import Role
from services.pipeline.broker import free_port

#: The Android Traccar Client's URL parameters (ProtocolFormatterTest.kt), after the configured server URL.
ANDROID = (
    "id=123456789012345&timestamp=619315200&lat=0.0&lon=0.0&speed=0.0&bearing=0.0&altitude=0.0&accuracy=0.0&batt=0.0"
)
#: A Traccar Client 10 form body (HttpUploader.kt's fields) from phone PHONE1.
PHONE1_FORM = (
    b"id=PHONE1&lat=51.5&lon=-0.12&timestamp=1765000000&accuracy=8.0&altitude=30.0&speed=2.0&bearing=90.0&batt=87"
)
FORM = {"content-type": "application/x-www-form-urlencoded"}


class RecordingProducer:
    """Stands in for AIOKafkaProducer: keeps what HTTP ingest sends, acknowledges it at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, dict[str, Any]]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[Any]:
        self.sent.append((topic, key, orjson.loads(value)))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(partition=0, offset=len(self.sent) - 1))
        return done

    @property
    def pings(self) -> list[dict[str, Any]]:
        return [value for _, _, value in self.sent]


@pytest.fixture
def url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
async def api(url: str) -> AsyncIterator[Api]:
    async with serve_api(url) as served:
        served.ctx.producer = cast(AIOKafkaProducer, RecordingProducer())
        yield served


def sent(api: Api) -> list[dict[str, Any]]:
    return cast(RecordingProducer, api.ctx.producer).pings


async def phone_key(url: str, device_id: str) -> str:
    return await create_key(url, Role.INGEST, f"phone {device_id}", device_id=device_id)


async def test_osmand_android_client_post_with_key_in_url_answers_200_and_produces_ping(api: Api) -> None:
    response = await api.client.post(f"/v1/osmand?key={api.keys[Role.INGEST]}&{ANDROID}")
    assert (response.status_code, response.content) == (200, b"")  # what Traccar answers
    assert sent(api) == [
        {
            "device_id": "123456789012345",
            "ts": "1989-08-17T00:00:00Z",
            "lat": 0.0,
            "lon": 0.0,
            "speed_mps": 0.0,
            "heading_deg": 0.0,
        }
    ]


async def test_osmand_get_in_milliseconds_with_key_in_header_answers_200(api: Api) -> None:
    # OsmAnd's online tracking (epoch ms), the Traccar decoder test's request
    query = "id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0&speed=0.0"
    response = await api.client.get(f"/v1/osmand?{query}", headers=api.as_(Role.INGEST))
    assert response.status_code == 200
    assert sent(api)[0]["ts"] == "2015-09-12T14:38:06.579000Z"
    assert sent(api)[0]["accuracy_m"] == 30.0  # HDOP 6 x 5 m


async def test_osmand_traccar_client_form_body_answers_200_speed_in_metres_per_second(api: Api) -> None:
    response = await api.client.post(f"/v1/osmand?key={api.keys[Role.INGEST]}", content=PHONE1_FORM, headers=FORM)
    assert response.status_code == 200
    (ping,) = sent(api)
    assert (ping["device_id"], ping["accuracy_m"], ping["heading_deg"]) == ("PHONE1", 8.0, 90.0)
    assert ping["speed_mps"] == pytest.approx(2.0 * 1852 / 3600)


async def test_osmand_traccar_client_json_body_answers_200(api: Api) -> None:
    body = (
        b'{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,'
        b'"accuracy":5,"speed":0,"heading":-1,"altitude":5},"battery":{"level":1,"is_charging":false}},'
        b'"device_id":"48241179"}'
    )  # Traccar's testDecodeJson, abridged
    headers = {"content-type": "application/json"}
    response = await api.client.post(f"/v1/osmand?key={api.keys[Role.INGEST]}", content=body, headers=headers)
    assert response.status_code == 200
    assert sent(api)[0]["ts"] == "2025-06-15T13:45:12.862000Z"


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("timestamp=1377177267&lat=60.0&lon=30.0", "id: is required"),  # Traccar's verifyNull case
        ("id=P&lat=95&lon=0", "lat: must be between -90 and 90, got 95"),
        ("id=P&lat=1&lon=2&timestamp=2014-06-04+09%3A10%3A11", "timestamp: has no UTC offset: '2014-06-04 09:10:11'"),
    ],
)
async def test_osmand_bad_parameter_answers_400_naming_it_and_produces_nothing(
    api: Api, query: str, detail: str
) -> None:
    response = await api.client.get(f"/v1/osmand?key={api.keys[Role.INGEST]}&{query}")
    assert (response.status_code, response.json()["detail"]) == (400, detail)
    assert sent(api) == []


async def test_osmand_without_broker_answers_503_for_the_app_to_retry(api: Api) -> None:
    api.ctx.producer = None
    response = await api.client.get(f"/v1/osmand?key={api.keys[Role.INGEST]}&{ANDROID}")
    assert response.status_code == 503


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ADMIN])
async def test_osmand_key_in_url_other_than_ingest_answers_401(api: Api, role: Role) -> None:
    response = await api.client.get(f"/v1/osmand?key={api.keys[role]}&{ANDROID}")
    assert response.status_code == 401
    assert (
        response.json()["detail"]
        == f"only an ingest key may be sent in the URL; send this {role.value} key in a header"
    )


async def test_osmand_unknown_key_in_url_answers_401(api: Api) -> None:
    response = await api.client.post(f"/v1/osmand?key=hs_nope_nope&{ANDROID}")
    assert (response.status_code, response.json()["detail"]) == (401, "unknown or revoked API key")


async def test_osmand_key_in_url_of_form_post_checked_before_body(api: Api) -> None:
    # A POST with a body is authenticated before the body is read (api/limits.py): the URL key counts there too.
    response = await api.client.post("/v1/osmand?key=hs_nope_nope", content=PHONE1_FORM, headers=FORM)
    assert response.status_code == 401


async def test_osmand_device_bound_key_posts_own_device_refuses_another_with_403_naming_both(
    api: Api, url: str
) -> None:
    key = await phone_key(url, "PHONE1")
    own = await api.client.post(f"/v1/osmand?key={key}", content=PHONE1_FORM, headers=FORM)
    assert own.status_code == 200
    other = await api.client.post(
        f"/v1/osmand?key={key}", content=PHONE1_FORM.replace(b"PHONE1", b"PHONE2"), headers=FORM
    )
    assert other.status_code == 403
    assert other.json()["detail"] == "this key is bound to device 'PHONE1' and may not post for 'PHONE2'"
    assert [p["device_id"] for p in sent(api)] == ["PHONE1"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            "application/json",
            b'[{"device_id": "PHONE1", "ts": 1765000000, "lat": 51.5, "lon": -0.12},'
            b' {"device_id": "PHONE2", "ts": 1765000000, "lat": 51.5, "lon": -0.12},'
            b' {"device_id": "PHONE1", "ts": 1765000000, "lat": 95, "lon": -0.12},'
            b' {"device_id": "PHONE1", "ts": 1765000001, "lat": 51.5, "lon": -0.12}]',
        ),
        (  # NDJSON: index is line - 1, the blank line counted
            "application/x-ndjson",
            b'{"device_id": "PHONE1", "ts": 1765000000, "lat": 51.5, "lon": -0.12}\n'
            b'{"device_id": "PHONE2", "ts": 1765000000, "lat": 51.5, "lon": -0.12}\n'
            b'{"device_id": "PHONE1", "ts": 1765000000, "lat": 95, "lon": -0.12}\n'
            b"\n"
            b'{"device_id": "PHONE1", "ts": 1765000001, "lat": 51.5, "lon": -0.12}\n',
        ),
    ],
)
async def test_pings_device_bound_key_other_device_item_rejected_with_reason_own_accepted(
    api: Api, url: str, content_type: str, body: bytes
) -> None:
    key = await phone_key(url, "PHONE1")
    headers = {"authorization": f"Bearer {key}", "content-type": content_type}
    response = await api.client.post("/v1/pings", content=body, headers=headers)
    assert response.status_code == 202
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 2)
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(1, "device_id"), (2, "lat")]
    assert answer["errors"][0]["reason"] == "this key is bound to device 'PHONE1' and may not post for 'PHONE2'"
    assert [(p["device_id"], p["ts"]) for p in sent(api)] == [
        ("PHONE1", "2025-12-06T05:46:40Z"),
        ("PHONE1", "2025-12-06T05:46:41Z"),
    ]


async def test_pings_gateway_key_posts_for_any_device(api: Api) -> None:
    body = (
        b'[{"device_id": "R1", "ts": 1765000000, "lat": 51.5, "lon": 0},'
        b' {"device_id": "R2", "ts": 1765000000, "lat": 51.5, "lon": 0}]'
    )
    response = await api.client.post("/v1/pings", content=body, headers=api.as_(Role.INGEST))
    assert (response.status_code, response.json()["accepted"]) == (202, 2)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ADMIN])
async def test_keys_device_binding_only_for_ingest_keys(url: str, role: Role) -> None:
    with pytest.raises(ValueError, match="device_id: binds an ingest key"):
        await create_key(url, role, "x", device_id="PHONE1")


async def test_osmand_key_in_url_never_in_access_log_or_any_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """Served by uvicorn with its access log on, as an operator might run it: the line is there, the key is not."""
    caplog.set_level(logging.INFO)
    port = free_port()
    config = uvicorn.Config(create_app(api.ctx), host="127.0.0.1", port=port, log_config=None, log_level="info")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.02)
        secret = api.keys[Role.INGEST]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ok = await client.get(f"/v1/osmand?key={secret}&{ANDROID}")
            refused = await client.get(f"/v1/osmand?id=P&lat=95&lon=0&key={secret}")
            viewer = await client.get(f"/v1/osmand?key={api.keys[Role.VIEWER]}&{ANDROID}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    assert (ok.status_code, refused.status_code, viewer.status_code) == (200, 400, 401)
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("GET /v1/osmand?id=123456789012345&timestamp=619315200" in line for line in access), access
    assert any("GET /v1/osmand?id=P&lat=95&lon=0 " in line for line in access), access
    service_log = "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx")  # not the test's client
    for key in (secret, api.keys[Role.VIEWER]):
        assert key.rsplit("_", 1)[1] not in service_log  # not even the secret part


async def test_lip_device_bound_key_other_radio_rejected_with_reason_own_accepted(api: Api, url: str) -> None:
    record = '{"issi": %d, "received_at": "2026-11-21T22:03:00Z", "payload": "%s"}'
    body = (
        "["
        + ",".join(
            [
                record % (2269002, "0A112853A9FF4D4FFFE810"),
                record % (2269001, "ZZ"),
                record % (2269001, "0A112853A9FF4D4FFFE810"),
            ]
        )
        + "]"
    )
    key = await phone_key(url, "2269001")
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    answer = (await api.client.post("/v1/pings/lip", content=body, headers=headers)).json()
    assert answer["accepted"] == 1
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(0, "device_id"), (1, "payload")]
    assert [p["device_id"] for p in sent(api)] == ["2269001"]


async def test_nmea_device_bound_key_for_another_device_answers_403(api: Api, url: str) -> None:
    key = await phone_key(url, "PHONE1")
    headers = {"authorization": f"Bearer {key}"}
    response = await api.client.post("/v1/pings/nmea?device_id=AVL7", content=b"", headers=headers)
    assert (response.status_code, response.json()["detail"]) == (
        403,
        "this key is bound to device 'PHONE1' and may not post for 'AVL7'",
    )
