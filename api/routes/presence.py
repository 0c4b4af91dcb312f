"""Who is in which hot spot right now, and where a device is: every read is audited.

GET /v1/presence is answered from the API's in-memory snapshot (services/query/presence.py):
it reflects every write committed `2 * query_refresh_s` before the request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from api.compressed import json_response
from api.deps import Context
from api.schemas import DevicePresence, DevicesAnswer, PresenceAnswer
from api.security import Viewer, audit
from services.query.cache import JsonBody
from services.query.presence import presence_json
from services.store import StoredDevice

router = APIRouter(prefix="/v1/presence", tags=["presence"])


@router.get("", response_model=PresenceAnswer, summary="Per fence, the devices inside now and since when")
async def presence(
    request: Request,
    ctx: Context,
    who: Viewer,
    fence_id: Annotated[str | None, Query()] = None,
    device_id: Annotated[str | None, Query()] = None,
    officer_id: Annotated[str | None, Query()] = None,
    callsign: Annotated[str | None, Query()] = None,
) -> Response:
    snapshot = await ctx.presence.snapshot()
    if fence_id is None and device_id is None and officer_id is None and callsign is None:
        body, shown = snapshot.body, snapshot.devices
    else:
        found = snapshot.select(fence_id=fence_id, device_id=device_id, officer_id=officer_id, callsign=callsign)
        body, shown = JsonBody(presence_json(found), None), sorted({p.device_id for ps in found.values() for p in ps})
    filters = {k: v for k, v in {"fence_id": fence_id, "officer_id": officer_id, "callsign": callsign}.items() if v}
    await audit(ctx, who, "GET /v1/presence", device_id or fence_id, {"filters": filters, "devices": shown})
    return json_response(request, body)


@router.get("/devices", response_model=DevicesAnswer, summary="Every device's fences and last position")
async def devices_presence(
    ctx: Context,
    who: Viewer,
    officer_id: Annotated[str | None, Query()] = None,
    callsign: Annotated[str | None, Query()] = None,
) -> DevicesAnswer:
    found = [_presence(d) for d in await ctx.store.devices(officer_id=officer_id, callsign=callsign)]
    filters = {k: v for k, v in {"officer_id": officer_id, "callsign": callsign}.items() if v}
    shown = [d.device_id for d in found]
    await audit(ctx, who, "GET /v1/presence/devices", None, {"filters": filters, "devices": shown})
    return DevicesAnswer(devices=found)


@router.get("/devices/{device_id}", response_model=DevicePresence, summary="A device's fences and last position")
async def device_presence(device_id: str, ctx: Context, who: Viewer) -> DevicePresence:
    await audit(ctx, who, "GET /v1/presence/devices/{id}", device_id)
    stored = await ctx.store.device_now(device_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    return _presence(stored)


def _presence(stored: StoredDevice) -> DevicePresence:
    now = stored.now
    return DevicePresence(
        device_id=stored.device_id, fences=dict(now.inside), last_seen=now.last_ts, lat=now.lat, lon=now.lon,
        accuracy_m=now.accuracy_m, lost=now.lost, officer_id=now.officer_id, callsign=now.callsign,
    )  # fmt: skip
