"""Who is in which hot spot right now, and where a device is: every read is audited.

GET /v1/presence is answered from the API's in-memory snapshot (services/query/presence.py):
it reflects every write committed `2 * query_refresh_s` before the request. It and the devices
answer carry `seq`, the newest event they reflect: open the event stream after it to miss none.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from api.compressed import json_response
from api.deps import Audit, Context, Viewer
from api.schemas.presence import DevicePresencePublic, DevicesPresencePublic, PresencePublic
from services.query.cache import JsonBody
from services.query.presence import devices_as_of, presence_json
from services.store import StoredDevice

router = APIRouter(prefix="/v1/presence", tags=["presence"])


@router.get("", response_model=PresencePublic, summary="Per fence, the devices inside now and since when")
async def presence(
    request: Request,
    ctx: Context,
    _: Viewer,
    audit: Audit,
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
        body, shown = (
            JsonBody(presence_json(found, snapshot.seq), None),
            sorted({p.device_id for ps in found.values() for p in ps}),
        )
    filters = {k: v for k, v in {"fence_id": fence_id, "officer_id": officer_id, "callsign": callsign}.items() if v}
    audit.record(device_id or fence_id, {"filters": filters, "devices": shown})
    return json_response(request, body)


@router.get("/devices", response_model=DevicesPresencePublic, summary="Every device's fences and last position")
async def devices_presence(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    officer_id: Annotated[str | None, Query()] = None,
    callsign: Annotated[str | None, Query()] = None,
) -> DevicesPresencePublic:
    stored, seq = await devices_as_of(ctx.store, officer_id=officer_id, callsign=callsign)
    found = [_presence(d) for d in stored]
    filters = {k: v for k, v in {"officer_id": officer_id, "callsign": callsign}.items() if v}
    shown = [d.device_id for d in found]
    audit.record(None, {"filters": filters, "devices": shown})
    return DevicesPresencePublic(seq=seq, devices=found)


@router.get("/devices/{device_id}", response_model=DevicePresencePublic, summary="A device's fences and last position")
async def device_presence(device_id: str, ctx: Context, _: Viewer, audit: Audit) -> DevicePresencePublic:
    audit.record(device_id)  # written even when there is no such device: it was asked for
    found, _seq = await devices_as_of(ctx.store, device_id=device_id)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    return _presence(found[0])


def _presence(stored: StoredDevice) -> DevicePresencePublic:
    now = stored.now
    return DevicePresencePublic(
        device_id=stored.device_id, fences=dict(now.inside), last_seen=now.last_ts, lat=now.lat, lon=now.lon,
        accuracy_m=now.accuracy_m, lost=now.lost, officer_id=now.officer_id, callsign=now.callsign, team=stored.team,
    )  # fmt: skip
