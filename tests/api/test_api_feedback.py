"""Feedback over HTTP: officers send it, supervisors list, reply (seen on /v1/me) and close it;
input rules with the field named; a gps_wrong report with a position becomes a calibration check
whose confirmation applies the recommended buffer to the hot spot, which the running matcher uses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from support.api import OFFICER, Api, serve_api
from support.helpers import M_PER_DEG_LAT, T0, fence_a, fence_b
from support.pipeline import poll_until

from geofence.params import EngineParams
from services.access.keys import create_key
from services.access.roles import Role
from services.measures.calibration import FixCapture, load_fixes
from services.metrics import Metrics
from services.pipeline.matcher import Matcher
from services.pipeline.memory import MemoryLog

PINGS, EVENTS, DLQ = "pings", "events", "dlq"
#: Longest wait for the in-memory matcher (milliseconds of work; a deadline, not a latency bound).
DEADLINE_S = 20.0
#: Fence A's centre, where the officer stands; the radio puts the officer 200 m east of it,
#: which is 144 m outside A's east edge (A is 111 m a side).
CENTRE = (0.0005, 0.0005)
RADIO_LON = CENTRE[1] + 200.0 / M_PER_DEG_LAT  # at the equator a degree of longitude is a degree of latitude


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    url = sqlite_url
    async with serve_api(url) as served:
        await served.store.upsert_fences([fence_a(), fence_b()])
        served.keys["PC7"] = await create_key(url, Role.OFFICER, "PC7's phone", "PC7")  # type: ignore[index]
        yield served


def as_pc7(api: Api) -> dict[str, str]:
    return {"authorization": f"Bearer {api.keys['PC7']}"}  # type: ignore[index]


async def send(api: Api, body: dict[str, Any], role: Role = Role.OFFICER) -> Any:
    return await api.client.post("/v1/feedback", json=body, headers=api.as_(role))


async def test_feedback_officer_sends_supervisor_lists_replies_closes_officer_sees_reply(api: Api) -> None:
    made = await send(api, {"kind": "boundary", "text": "the car park is part of it", "fence_id": "A"})
    assert made.status_code == 201, made.text
    first = made.json()
    assert (first["officer_id"], first["kind"], first["state"], first["check_id"]) == (
        OFFICER,
        "boundary",
        "open",
        None,
    )
    await send(api, {"kind": "activity", "text": "quiet tonight", "fence_id": "B"}, Role.VIEWER)
    listed = await api.client.get("/v1/feedback", params={"fence_id": "A"}, headers=api.as_(Role.VIEWER))
    assert [f["text"] for f in listed.json()["feedback"]] == ["the car park is part of it"]
    by_kind = await api.client.get("/v1/feedback", params={"kind": "activity"}, headers=api.as_(Role.VIEWER))
    assert [(f["officer_id"], f["fence_id"]) for f in by_kind.json()["feedback"]] == [(None, "B")]
    fid = first["feedback_id"]
    reply = await api.client.post(f"/v1/feedback/{fid}/reply", json={"text": "agreed, redrawing"},
                                  headers=api.as_(Role.VIEWER))  # fmt: skip
    assert reply.json()["reply"] == "agreed, redrawing"
    closed = await api.client.post(f"/v1/feedback/{fid}/close", headers=api.as_(Role.VIEWER))
    assert closed.json()["state"] == "closed"
    still_open = await api.client.get("/v1/feedback", params={"state": "open"}, headers=api.as_(Role.VIEWER))
    assert [f["fence_id"] for f in still_open.json()["feedback"]] == ["B"]
    mine = (await api.client.get("/v1/me", headers=api.as_(Role.OFFICER))).json()["feedback"]
    assert [(f["text"], f["reply"], f["state"]) for f in mine] == [
        ("the car park is part of it", "agreed, redrawing", "closed")
    ]
    actions = [(e.role, e.action) for e in await api.store.audit_entries()]
    for action in ("POST /v1/feedback", "GET /v1/feedback", "POST /v1/feedback/{id}/reply",
                   "POST /v1/feedback/{id}/close"):  # fmt: skip
        assert any(a == action for _, a in actions), action
    assert (await api.client.post("/v1/feedback/999/close", headers=api.as_(Role.VIEWER))).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "gps", "text": "x"}, "kind"),  # not one of the kinds
        ({"kind": "other", "text": ""}, "text"),  # required
        ({"kind": "other", "text": "x" * 1001}, "text"),  # over 1000 characters
        ({"kind": "other", "text": "bad\x07bell"}, "text"),  # a control character
        ({"kind": "other", "text": "x", "fence_id": "NOPE"}, "fence_id"),  # no such hot spot
        ({"kind": "other", "text": "x", "lat": 0.0005}, "lon"),  # a position needs both
        ({"kind": "other", "text": "x", "lat": 91, "lon": 0}, "lat"),  # the ping's rule
        ({"kind": "other", "text": "x", "at": "2026-11-21 22:00"}, "at"),  # no UTC offset
        ({"kind": "other", "text": "x", "device_id": "R-NOT-MINE"}, "device_id"),  # not the officer's radio
        ({"kind": "gps_wrong", "text": "x", "lat": 0.0005, "lon": 0.0005}, "device_id"),  # whose GPS?
        ({"kind": "other", "text": "x", "colour": "red"}, "colour"),  # unknown field
    ],
)
async def test_feedback_invalid_answers_422_naming_the_field_and_stores_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    answer = await send(api, body)
    assert answer.status_code == 422, answer.text
    assert any(d["loc"][-1] == field for d in answer.json()["detail"]), answer.json()
    assert (await api.client.get("/v1/feedback", headers=api.as_(Role.VIEWER))).json()["feedback"] == []


def ping(t: float, lon: float = RADIO_LON) -> tuple[bytes, bytes]:
    body = {"device_id": "R7", "ts": T0 + t, "lat": CENTRE[0], "lon": lon, "accuracy_m": 6.0, "officer_id": "PC7"}
    return b"R7", orjson.dumps(body)


async def test_feedback_gps_wrong_report_confirmed_applies_buffer_the_running_matcher_uses(api: Api) -> None:
    """The guidance's case: the officer stands in the hot spot's centre, the radio puts them 200 m
    east, outside. Report -> the draft check captures the radio's fixes -> a supervisor confirms ->
    A's buffer becomes the recommended one -> the matcher, still running, puts the same fix inside A."""
    log = MemoryLog({PINGS: 1, EVENTS: 1, DLQ: 1})
    capture = FixCapture(api.store)
    matcher = Matcher(
        log=log, group="g", topics=(PINGS, EVENTS, DLQ), params=EngineParams(), store=api.store, capture=capture,
        metrics=Metrics(), wall_clock=False, checkpoint_interval_s=0.0,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(matcher.run(stop))

    def events() -> list[dict[str, Any]]:
        return [orjson.loads(m.value or b"") for m in log.messages(EVENTS)]

    try:
        for t in (0, 60):  # the radio is seen, naming its officer: PC7's own radio (the first ping applied)
            log.append(PINGS, *ping(t))

        async def recorded() -> bool:
            return await api.store.device_now("R7") is not None

        await poll_until(recorded, "R7 recorded", DEADLINE_S)
        report = await api.client.post(
            "/v1/feedback", headers=as_pc7(api),
            json={"kind": "gps_wrong", "text": "I am in the centre of A", "fence_id": "A", "lat": CENTRE[0],
                  "lon": CENTRE[1], "at": T0 + 600},
        )  # fmt: skip
        assert report.status_code == 201, report.text
        made = report.json()
        assert (made["device_id"], made["check_state"]) == ("R7", "draft")
        await poll_until(lambda: any(c.check_id == made["check_id"] for c in capture.checks), "the check polled",
                         DEADLINE_S)  # fmt: skip
        for t in range(120, 661, 60):
            log.append(PINGS, *ping(t))

        async def captured() -> bool:  # all but the last few, held for reordering (max_lateness_s)
            return len((await load_fixes(api.store, check_id=made["check_id"])).ts) >= 8

        await poll_until(captured, "the report's fixes captured", DEADLINE_S)
        assert not [e for e in events() if e["type"] == "enter"]  # 144 m outside A
        confirmed = await api.client.post(f"/v1/feedback/{made['feedback_id']}/confirm", json={"quantile": 95},
                                          headers=api.as_(Role.ADMIN))  # fmt: skip
        assert confirmed.status_code == 200, confirmed.text
        change = confirmed.json()["change"]
        assert confirmed.json()["feedback"]["check_state"] == "applied"
        assert change["fences"] == [{"fence_id": "A", "old_buffer_m": 0.0, "new_buffer_m": change["buffer_m"]}]
        assert 144.0 < change["buffer_m"] < 250.0
        fence = await api.client.get("/v1/fences/A", headers=api.as_(Role.VIEWER))
        assert fence.json()["properties"]["buffer_m"] == change["buffer_m"]
        await poll_until(lambda: matcher.fence_version == change["version"], "the matcher's new fences", DEADLINE_S)
        for t in (720, 780, 840):
            log.append(PINGS, *ping(t))
        await poll_until(lambda: any(e["type"] == "enter" for e in events()), "an ENTER into A", DEADLINE_S)
        (enter,) = [e for e in events() if e["type"] == "enter"]
        assert (enter["fence_id"], enter["device_id"]) == ("A", "R7")
        again = await api.client.post(f"/v1/feedback/{made['feedback_id']}/confirm", json={},
                                      headers=api.as_(Role.ADMIN))  # fmt: skip
        assert again.status_code == 409
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)
