"""Who is in which hot spot right now, and where a device is: every read is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import Context
from api.schemas import DevicePresence, FencePresence, PresenceAnswer, PresentDevice
from api.security import Viewer, audit

router = APIRouter(prefix="/v1/presence", tags=["presence"])


@router.get("", response_model=PresenceAnswer, summary="Per fence, the devices inside now and since when")
async def presence(
    ctx: Context,
    who: Viewer,
    fence_id: Annotated[str | None, Query()] = None,
    device_id: Annotated[str | None, Query()] = None,
    officer_id: Annotated[str | None, Query()] = None,
    callsign: Annotated[str | None, Query()] = None,
) -> PresenceAnswer:
    found = await ctx.store.presence(fence_id=fence_id, device_id=device_id, officer_id=officer_id, callsign=callsign)
    fences = [
        FencePresence(fence_id=f, devices=[PresentDevice(**p._asdict()) for p in present])
        for f, present in found.items()
    ]
    shown = sorted({d.device_id for f in fences for d in f.devices})
    filters = {k: v for k, v in {"fence_id": fence_id, "officer_id": officer_id, "callsign": callsign}.items() if v}
    await audit(ctx, who, "GET /v1/presence", device_id or fence_id, {"filters": filters, "devices": shown})
    return PresenceAnswer(fences=fences)


@router.get("/devices/{device_id}", response_model=DevicePresence, summary="A device's fences and last position")
async def device_presence(device_id: str, ctx: Context, who: Viewer) -> DevicePresence:
    await audit(ctx, who, "GET /v1/presence/devices/{id}", device_id)
    stored = await ctx.store.device_now(device_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    now = stored.now
    return DevicePresence(
        device_id=device_id, fences=dict(now.inside), last_seen=now.last_ts, lat=now.lat, lon=now.lon,
        accuracy_m=now.accuracy_m, lost=now.lost, officer_id=now.officer_id, callsign=now.callsign,
    )  # fmt: skip
