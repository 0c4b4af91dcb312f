"""Dwell: officer time in hot spots over a range, per fence, device, day or hour."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import Context
from api.schemas import DwellAnswer, DwellFigures
from api.security import Viewer, audit
from api.timeparams import time_range

router = APIRouter(prefix="/v1", tags=["dwell"])


@router.get("/dwell", response_model=DwellAnswer, summary="Visits and dwell seconds in [from, to)")
async def dwell(
    ctx: Context,
    who: Viewer,
    start: Annotated[str, Query(alias="from", description="ISO 8601 with offset, or epoch seconds")],
    end: Annotated[str, Query(alias="to", description="ISO 8601 with offset, or epoch seconds")],
    fence_id: Annotated[str | None, Query()] = None,
    device_id: Annotated[str | None, Query()] = None,
    group_by: Annotated[Literal["fence", "device", "day", "hour"], Query()] = "fence",
) -> DwellAnswer:
    lo, hi = time_range(start, end, required=True)
    assert lo is not None and hi is not None
    rows = await ctx.store.dwell(lo, hi, fence_id=fence_id, device_id=device_id, group_by=group_by)
    if group_by == "device" or device_id is not None:  # officers' time is their location history
        devices = sorted({r.device_id for r in rows if r.device_id})
        await audit(ctx, who, "GET /v1/dwell", device_id, {"from": lo, "to": hi, "group_by": group_by,
                                                           "devices": devices})  # fmt: skip
    return DwellAnswer(
        start=lo, end=hi, group_by=group_by,
        rows=[DwellFigures.model_validate(r, from_attributes=True) for r in rows],
    )  # fmt: skip
