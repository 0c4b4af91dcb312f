"""POST /v1/pings/lip and /v1/pings/nmea: radio and AVL formats in, the same pings topic and answers as POST /v1/pings.

The broker is a capturing stand-in (it acknowledges every message): what these routes put on the
pings topic is then fed to the engine as the matcher would feed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from support.api import Api, serve_api
from support.helpers import square_fence
from support.lip_frames import LAT_STEP, LON_STEP, lat_raw, lon_raw, short_report

from geofence.engine import Engine
from geofence.events import format_ts
from geofence.index import FenceIndex
from geofence.params import EngineParams
from ingest.lip_records import UNBOUNDED_ACCURACY_M
from ingest.nmea import checksum
from ingest.ping_message import parse_messages
from services.access.keys import create_key
from services.access.roles import Role
from services.store import database_url

T0 = 1_795_298_580.0
INSIDE, OUTSIDE = (51.5005, -0.0995), (51.5005, -0.1015)


class CapturingProducer:
    """Acknowledges every send at once and keeps (key, value) of each message."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.messages.append((key, value))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(partition=0, offset=len(self.messages) - 1))
        return done


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[tuple[Api, CapturingProducer]]:
    async with serve_api(sqlite_url) as served:
        producer = CapturingProducer()
        served.ctx.producer = cast(AIOKafkaProducer, producer)
        yield served, producer


def events(messages: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The events of the produced pings, through the engine as the matcher runs it (one partition)."""
    engine = Engine(FenceIndex([square_fence("A", -0.1, 51.5, 0.001)]), EngineParams(max_lateness_s=0))
    parsed = parse_messages([value for _, value in messages])
    assert parsed.rejects == []
    return [e.to_json() for e in engine.process(parsed.batch).events + engine.flush()]


# (seconds after T0, where, position error code -> accuracy_m): a visit of A, then an unknown-error fix
# inside (uncertain: no second ENTER), a fix of 20 m outside.
TRACK = [
    (0, OUTSIDE, 1, 20.0),
    (60, INSIDE, 0, 2.0),
    (120, OUTSIDE, 1, 20.0),
    (180, INSIDE, 7, None),
    (240, OUTSIDE, 2, 200.0),
]


async def test_post_lip_gives_the_events_of_the_same_positions_as_json(api: tuple[Api, CapturingProducer]) -> None:
    served, producer = api
    records, pings = [], []
    for t, (lat, lon), error, accuracy in TRACK:
        x, y = lon_raw(lon), lat_raw(lat)
        payload = short_report(x, y, error=error, speed=5, direction=8)  # 5 km/h, south
        records.append({"issi": 2001, "received_at": format_ts(T0 + t), "payload": payload})
        ping = {"device_id": "2001", "ts": T0 + t, "lat": y * LAT_STEP, "lon": x * LON_STEP}
        ping |= {"speed_mps": 5 / 3.6, "heading_deg": 180.0}
        pings.append(ping | {"accuracy_m": UNBOUNDED_ACCURACY_M if accuracy is None else accuracy})
    headers = {**served.as_(Role.INGEST), "content-type": "application/json"}
    response = await served.client.post("/v1/pings/lip", content=orjson.dumps(records), headers=headers)
    assert (response.status_code, response.json()) == (
        202,
        {"accepted": 5, "rejected": 0, "errors": [], "errors_unlisted": 0},
    )
    from_lip, producer.messages = producer.messages, []
    response = await served.client.post("/v1/pings", content=orjson.dumps(pings), headers=headers)
    assert response.status_code == 202
    from_json = producer.messages
    assert [k for k, _ in from_lip] == [b"2001"] * 5  # keyed by the ISSI, as pings by device
    got, want = events(from_lip), events(from_json)
    assert [orjson.loads(e)["type"] for e in got] == ["enter", "exit"]  # the fix of unknown error enters nothing
    assert got == want


async def test_post_lip_refuses_each_bad_record_with_its_index_and_keeps_the_rest(
    api: tuple[Api, CapturingProducer],
) -> None:
    served, producer = api
    good = {"issi": "2001", "received_at": format_ts(T0), "payload": short_report(lon_raw(-0.1), lat_raw(51.5))}
    body = b"\n".join(
        orjson.dumps(r)
        for r in [good, {**good, "payload": "0A00"}, {**good, "issi": ""}, good | {"received_at": T0 + 1}]
    )
    headers = {**served.as_(Role.INGEST), "content-type": "application/x-ndjson"}
    response = await served.client.post("/v1/pings/lip", content=body, headers=headers)
    assert response.status_code == 202
    assert response.json() == {
        "accepted": 2,
        "rejected": 2,
        "errors": [
            {"index": 1, "field": "payload", "reason": "is too short: a short location report needs 76 bits, got 8"},
            {"index": 2, "field": "issi", "reason": "is required"},
        ],
        "errors_unlisted": 0,
    }
    assert len(producer.messages) == 2


@pytest.mark.parametrize(
    ("path", "content_type", "body", "code", "words"),
    [
        ("/v1/pings/lip", "text/plain", b"[]", 415, "unsupported content type 'text/plain'"),
        ("/v1/pings/lip", "application/json", b"[1,", 400, "malformed JSON"),
        ("/v1/pings/lip", "application/json", b"[1]", 422, ""),  # nothing valid
        ("/v1/pings/nmea?device_id=", "text/plain", b"", 422, "device_id: is required"),
        ("/v1/pings/nmea?device_id=avl-1", "text/plain", b"$GPRMC,1*00\r\n", 422, ""),
    ],
)
async def test_post_formats_unusable_body_refused_with_its_status(
    api: tuple[Api, CapturingProducer], path: str, content_type: str, body: bytes, code: int, words: str
) -> None:
    served, _ = api
    headers = {**served.as_(Role.INGEST), "content-type": content_type}
    response = await served.client.post(path, content=body, headers=headers)
    assert response.status_code == code
    assert words in str(response.json().get("detail", ""))


@pytest.mark.parametrize("path", ["/v1/pings/lip", "/v1/pings/nmea?device_id=avl-1"])
async def test_post_formats_need_the_ingest_role(api: tuple[Api, CapturingProducer], path: str) -> None:
    served, _ = api
    response = await served.client.post(path, content=b"[]", headers=served.as_(Role.VIEWER))
    assert response.status_code == 403


def nmea(body: str) -> bytes:
    return f"${body}*{checksum(body.encode()):02X}\r\n".encode()


async def test_post_nmea_gives_fixes_of_the_device_and_refuses_lines_by_index(
    api: tuple[Api, CapturingProducer],
) -> None:
    served, producer = api
    body = (
        nmea("GPGGA,120000.00,5130.030,N,00005.970,W,1,08,1.2,45.0,M,47.0,M,,")
        + nmea("GPRMC,120000.00,A,5130.030,N,00005.970,W,10.0,90.0,211126,,,A")
        + b"$GPRMC,120001.00,A,5130.030,N,00005.970,W,10.0,90.0,211126,,,A*00\r\n"  # line 3: bad checksum
        + nmea("GPRMC,120002.00,V,,,,,,,211126,,,N")  # line 4: void
    )
    headers = {**served.as_(Role.INGEST), "content-type": "text/plain"}
    response = await served.client.post("/v1/pings/nmea?device_id=avl-1", content=body, headers=headers)
    assert response.status_code == 202
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (1, 2)
    assert [(e["index"], e["reason"][:17]) for e in answer["errors"]] == [
        (2, "checksum mismatch"),
        (3, "void fix: RMC sta"),
    ]
    [(key, value)] = producer.messages
    ping = orjson.loads(value)
    assert key == b"avl-1"
    assert ping == {
        "device_id": "avl-1",
        "ts": "2026-11-21T12:00:00Z",
        "lat": pytest.approx(51.5005),
        "lon": pytest.approx(-0.0995),
        "accuracy_m": pytest.approx(6.0),  # HDOP 1.2 x 5 m
        "speed_mps": pytest.approx(10 * 1852 / 3600),
        "heading_deg": 90.0,
    }


async def test_post_formats_device_bound_key_posts_only_for_its_device(
    api: tuple[Api, CapturingProducer], tmp_path: Path
) -> None:
    served, producer = api
    token = await create_key(database_url(None, tmp_path), Role.INGEST, "phone", device_id="2001")
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    mine = {"issi": 2001, "received_at": format_ts(T0), "payload": short_report(lon_raw(-0.1), lat_raw(51.5))}
    response = await served.client.post(
        "/v1/pings/lip", content=orjson.dumps([mine, {**mine, "issi": 2002}]), headers=headers
    )
    assert (response.status_code, response.json()["accepted"]) == (202, 1)
    assert response.json()["errors"][0]["index"] == 1  # the other radio's record, refused by itself
    response = await served.client.post("/v1/pings/nmea?device_id=2002", content=b"", headers=headers)
    assert response.status_code == 403
    assert [k for k, _ in producer.messages] == [b"2001"]
