"""Dwell: officer time in hot spots over a range, per fence, device, day or hour.

Answers are kept per query while the store is unchanged (services/query/cache.py): they reflect
every write committed `2 * query_refresh_s` before the request.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response

from api.compressed import json_response
from api.context import CachedAnswer
from api.deps import Audit, Context, Viewer
from api.schemas.dwell import DwellPublic
from api.timeparams import time_range
from services.query.cache import JsonBody

router = APIRouter(prefix="/v1", tags=["dwell"])


@router.get("/dwell", response_model=DwellPublic, summary="Visits and dwell seconds in [from, to)")
async def dwell(
    request: Request,
    ctx: Context,
    _: Viewer,
    audit: Audit,
    start: Annotated[str, Query(alias="from", description="ISO 8601 with offset, or epoch seconds")],
    end: Annotated[str, Query(alias="to", description="ISO 8601 with offset, or epoch seconds")],
    fence_id: Annotated[str | None, Query()] = None,
    device_id: Annotated[str | None, Query()] = None,
    group_by: Annotated[Literal["fence", "device", "day", "hour"], Query()] = "fence",
) -> Response:
    lo, hi = time_range(start, end, required=True)
    assert lo is not None and hi is not None

    async def compute() -> CachedAnswer:
        rows = await ctx.store.dwell(lo, hi, fence_id=fence_id, device_id=device_id, group_by=group_by)
        body = orjson.dumps({"start": lo, "end": hi, "group_by": group_by, "rows": rows})  # DwellRowPublic's fields
        return CachedAnswer(JsonBody.of(body), sorted({r.device_id for r in rows if r.device_id}))

    answer = await ctx.answers.get(("dwell", lo, hi, fence_id, device_id, group_by), compute)
    if group_by == "device" or device_id is not None:  # officers' time is their location history
        audit.record(device_id, {"from": lo, "to": hi, "group_by": group_by, "devices": answer.devices})
    return json_response(request, answer.body)
