"""Presence, dwell and events over HTTP: equal to what the engine computes, audited, validated.

The store is filled the way the matcher fills it (events and device states of a real Engine,
recorded with the checkpoint); every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from support.api import serve_on_port

from api.app import create_app
from api.context import ServiceContext
from geofence.engine import Engine
from geofence.events import Event
from geofence.index import FenceIndex
from geofence.params import EngineParams
from ingest.geojson_fences import fences_from_geojson
from services.access.keys import create_key
from services.access.roles import Role
from services.metrics import Metrics
from services.settings import Settings
from services.store import Store, devices_now
from services.workload import make_workload


@dataclass
class Filled:
    client: httpx.AsyncClient
    store: Store
    engine: Engine
    events: list[Event]
    viewer: dict[str, str]
    admin: dict[str, str]


async def _fill(store: Store, hours: float = 1.0) -> tuple[Engine, list[Event]]:
    w = make_workload(40, 12, hours * 3600, seed=9, interval_s=20.0)
    engine = Engine(FenceIndex(fences_from_geojson(w.fences)), EngineParams(max_lateness_s=0))
    events: list[Event] = []
    for i in range(0, len(w.pings), 400):
        batch = engine.process(w.pings.take(slice(i, i + 400))).events
        events += batch
        _, changed = engine.checkpoint()
        await store.record(batch, devices_now(changed))
    return engine, events


@pytest.fixture
async def filled(db_url: str) -> AsyncIterator[Filled]:
    viewer = await create_key(db_url, Role.VIEWER, "control room")
    admin = await create_key(db_url, Role.ADMIN, "supervisor")
    store = await Store.open(db_url)
    engine, events = await _fill(store)
    app = create_app(ServiceContext(Settings(), store, Metrics()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield Filled(client, store, engine, events, {"authorization": f"Bearer {viewer}"},
                     {"authorization": f"Bearer {admin}"})  # fmt: skip
    await store.close()


async def test_presence_equals_engine_open_visits(filled: Filled) -> None:
    response = await filled.client.get("/v1/presence", headers=filled.viewer)
    got = {(f["fence_id"], d["device_id"], d["since"]) for f in response.json()["fences"] for d in f["devices"]}
    dev = filled.engine.devices
    want = {
        (fence, str(dev.ids[s]), since)
        for s, visits in filled.engine.machine.inside.items()
        for fence, since in visits.items()
    }
    assert response.status_code == 200
    assert want, "the workload should leave someone inside"
    assert got == want


async def test_presence_of_device_gives_fences_and_last_position(filled: Filled) -> None:
    dev = filled.engine.devices
    slot = next(iter(filled.engine.machine.inside))
    device_id = str(dev.ids[slot])
    response = await filled.client.get(f"/v1/presence/devices/{device_id}", headers=filled.viewer)
    body = response.json()
    assert response.status_code == 200
    assert body["fences"] == filled.engine.machine.inside[slot]
    assert (body["last_seen"], body["lat"], body["lon"]) == (dev.last_ts[slot], dev.last_lat[slot], dev.last_lon[slot])
    assert body["lost"] is False


async def test_all_devices_give_every_last_position_and_the_read_is_audited(filled: Filled) -> None:
    response = await filled.client.get("/v1/presence/devices", headers=filled.viewer)
    dev = filled.engine.devices
    want = {
        str(dev.ids[s]): (dev.last_ts[s], dev.last_lat[s], dev.last_lon[s], filled.engine.machine.inside.get(s, {}))
        for s in range(len(dev))
    }
    got = {d["device_id"]: (d["last_seen"], d["lat"], d["lon"], d["fences"]) for d in response.json()["devices"]}
    assert response.status_code == 200
    assert got == want
    entries = (await filled.client.get("/v1/audit", headers=filled.admin)).json()["entries"]
    (entry,) = [e for e in entries if e["action"] == "GET /v1/presence/devices"]
    assert sorted(entry["detail"]["devices"]) == sorted(want)


async def test_presence_unknown_device_answers_404(filled: Filled) -> None:
    response = await filled.client.get("/v1/presence/devices/nobody", headers=filled.viewer)
    assert response.status_code == 404


async def test_presence_reads_are_audited_with_who_and_whom(filled: Filled) -> None:
    dev_id = str(filled.engine.devices.ids[0])
    await filled.client.get(f"/v1/presence/devices/{dev_id}", headers=filled.viewer)
    await filled.client.get("/v1/presence", params={"device_id": dev_id}, headers=filled.viewer)
    entries = (await filled.client.get("/v1/audit", params={"target": dev_id}, headers=filled.admin)).json()["entries"]
    assert [(e["action"], e["role"]) for e in entries] == [
        ("GET /v1/presence/devices/{id}", "viewer"),
        ("GET /v1/presence", "viewer"),
    ]


async def test_dwell_per_device_and_fence_equals_engine_totals(filled: Filled) -> None:
    ts = [e.ts for e in filled.events]
    params = {"from": min(ts) - 3600, "to": max(ts) + 3600, "group_by": "device"}
    by_device = (await filled.client.get("/v1/dwell", params=params, headers=filled.viewer)).json()["rows"]
    totals = filled.engine.device_totals()
    assert len(by_device) == len(totals)
    for row in by_device:
        want = totals[row["device_id"]]
        assert row["inside_s"] == pytest.approx(want["inside_s"], abs=1e-3)
        assert row["outside_s"] == pytest.approx(want["outside_s"], abs=1e-3)
        assert row["lost_s"] == pytest.approx(want["lost_s"], abs=1e-3)
    for device_id, want_visits in filled.engine.dwell_totals().items():
        params = {"from": min(ts) - 3600, "to": max(ts) + 3600, "device_id": device_id[0], "fence_id": device_id[1]}
        rows = (await filled.client.get("/v1/dwell", params=params, headers=filled.viewer)).json()["rows"]
        assert (rows[0]["visits"], round(rows[0]["dwell_s"], 3)) == (want_visits[0], round(want_visits[1], 3))


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"from": "2026-11-21T10:00:00Z", "to": "2026-11-21T10:00:00Z"}, "to", "to must be after from"),
        ({"from": "2026-11-21T10:00:00", "to": "2026-11-21T11:00:00Z"}, "from", "has no UTC offset"),
        ({"from": "yesterday", "to": "1795000000"}, "from", "must be ISO 8601 with a UTC offset or epoch seconds"),
        ({"to": "1795000000"}, "from", "Field required"),
        ({"from": "0", "to": "10", "group_by": "week"}, "group_by", "Input should be"),
    ],
)
async def test_dwell_bad_query_answers_422_naming_field(
    filled: Filled, params: dict[str, str], field: str, message: str
) -> None:
    response = await filled.client.get("/v1/dwell", params=params, headers=filled.viewer)
    detail = response.json()["detail"]
    assert response.status_code == 422
    assert detail[0]["loc"][-1] == field
    assert message in detail[0]["msg"]


async def test_events_paged_by_cursor_equal_engine_events_in_order(filled: Filled) -> None:
    got: list[dict[str, object]] = []
    after = 0
    while True:
        page = (
            await filled.client.get("/v1/events", params={"after": after, "limit": 250}, headers=filled.viewer)
        ).json()
        got += page["events"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert [e["event_id"] for e in got] == [e.event_id for e in filled.events]


async def test_events_filtered_by_type_and_fence(filled: Filled) -> None:
    fence = next(e.fence_id for e in filled.events if e.fence_id)
    params = {"type": "exit", "fence_id": fence, "limit": 1000}
    got = (await filled.client.get("/v1/events", params=params, headers=filled.viewer)).json()["events"]
    want = [e.event_id for e in filled.events if e.type.value == "exit" and e.fence_id == fence]
    assert [e["event_id"] for e in got] == want


async def test_events_stream_sends_new_events_and_resumes_from_last_event_id(filled: Filled) -> None:
    ctx = ServiceContext(Settings(), filled.store, Metrics())
    async with serve_on_port(ctx) as url, httpx.AsyncClient(base_url=url, headers=filled.viewer, timeout=10) as c:
        first = await _read_events(c, {"after": "0"}, 3)
        resumed = await _read_events(c, {}, 2, last_event_id=first[-1][0])
    assert [data for _, data in first] == [e.event_id for e in filled.events[:3]]
    assert [data for _, data in resumed] == [e.event_id for e in filled.events[3:5]]


async def _read_events(
    client: httpx.AsyncClient, params: dict[str, str], n: int, last_event_id: str | None = None
) -> list[tuple[str, str]]:
    headers = {"last-event-id": last_event_id} if last_event_id else {}
    out: list[tuple[str, str]] = []
    async with client.stream("GET", "/v1/events/stream", params=params, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id = ""
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                out.append((event_id, httpx.Response(200, content=line[6:]).json()["event_id"]))
                if len(out) == n:
                    break
    return out
