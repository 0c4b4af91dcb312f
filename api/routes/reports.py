"""Officer time per shift, signal loss and the weekly stocktake; each read is audited, since
every one of them holds per-officer figures (their location history, summed)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status

from api.deps import Audit, Context, Viewer
from api.schemas.reports import (
    DeviceLossPublic,
    OfficersTimePublic,
    OfficerTimePublic,
    ShiftPublic,
    SignalLossPublic,
)
from api.timeparams import time_range
from services.measures.local_weeks import parse_week
from services.measures.officer_time import officer_time
from services.measures.signal_loss import signal_loss
from services.reports.weekly import MEDIA_TYPES, Format, render, weekly_report

router = APIRouter(prefix="/v1", tags=["reports"])

_FROM = Query(alias="from", description="ISO 8601 with offset, or epoch seconds")
_TO = Query(alias="to", description="ISO 8601 with offset, or epoch seconds")


@router.get("/officers/time", response_model=OfficersTimePublic, summary="Per officer and shift: inside/outside/lost")
async def officers_time(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    start: Annotated[str, _FROM],
    end: Annotated[str, _TO],
    device_id: Annotated[str | None, Query()] = None,
    officer_id: Annotated[str | None, Query()] = None,
) -> OfficersTimePublic:
    lo, hi = time_range(start, end, required=True)
    assert lo is not None and hi is not None
    brk = ctx.settings.shift_break_s
    found = await officer_time(ctx.store, lo, hi, brk, device_id=device_id, officer_id=officer_id)
    audit.record(device_id or officer_id, {"from": lo, "to": hi, "devices": [o.device_id for o in found]})
    officers = [
        OfficerTimePublic(
            device_id=o.device_id,
            officer_id=o.officer_id,
            callsign=o.callsign,
            inside_s=o.total("inside_s"),
            outside_s=o.total("outside_s"),
            lost_s=o.total("lost_s"),
            break_s=o.break_s,
            shifts=[ShiftPublic.model_validate(s, from_attributes=True) for s in o.shifts],
        )
        for o in found
    ]
    return OfficersTimePublic(start=lo, end=hi, shift_break_s=brk, officers=officers)


@router.get("/signal-loss", response_model=SignalLossPublic, summary="Per device: signal-loss gaps, counts, flag")
async def signal_loss_report(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    start: Annotated[str, _FROM],
    end: Annotated[str, _TO],
    device_id: Annotated[str | None, Query()] = None,
    min_losses: Annotated[
        int | None, Query(ge=1, description="losses in one shift that flag a device; default the setting")
    ] = None,
) -> SignalLossPublic:
    lo, hi = time_range(start, end, required=True)
    assert lo is not None and hi is not None
    s = ctx.settings
    threshold = s.repeated_loss_gaps if min_losses is None else min_losses
    found = await signal_loss(ctx.store, lo, hi, shift_break_s=s.shift_break_s, min_losses=threshold,
                              tz=s.timezone, device_id=device_id)  # fmt: skip
    audit.record(device_id, {"from": lo, "to": hi, "devices": [d.device_id for d in found]})
    return SignalLossPublic(
        start=lo, end=hi, shift_break_s=s.shift_break_s, min_losses=threshold,
        devices=[DeviceLossPublic.model_validate(d, from_attributes=True) for d in found],
    )  # fmt: skip


@router.get(
    "/reports/weekly",
    summary="The weekly stocktake as CSV, XLSX or a self-contained HTML page",
    response_class=Response,
    responses={200: {"content": {t.split(";")[0]: {} for t in MEDIA_TYPES.values()}}},
)
async def weekly(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    week: Annotated[str, Query(description="ISO week in the timezone setting, e.g. 2026-W47")],
    format: Annotated[Literal["csv", "xlsx", "html"], Query()] = "html",
) -> Response:
    fmt: Format = format
    try:
        local_week = parse_week(week, ctx.settings.timezone)
    except ValueError as exc:
        detail = [{"loc": ["query", "week"], "msg": str(exc), "type": "value_error"}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from None
    report = await weekly_report(ctx.store, ctx.settings, local_week)
    audit.record(None, {"week": report.week.label, "format": fmt, "devices": list(report.devices)})
    disposition = "inline" if fmt == "html" else "attachment"  # the page opens in the browser
    return Response(
        render(report, fmt),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'{disposition}; filename="hotspots-{report.week.label}.{fmt}"'},
    )
