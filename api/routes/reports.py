"""Officer time per shift, signal loss and the weekly stocktake; each read is audited, since
every one of them holds per-officer figures (their location history, summed)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, Field

from api.deps import Context
from api.security import Viewer, audit
from api.timeparams import time_range
from services.measures.local_weeks import parse_week
from services.measures.officer_time import GapKind, officer_time
from services.measures.signal_loss import signal_loss
from services.reports.weekly import MEDIA_TYPES, Format, render, weekly_report

router = APIRouter(prefix="/v1", tags=["reports"])

_FROM = Query(alias="from", description="ISO 8601 with offset, or epoch seconds")
_TO = Query(alias="to", description="ISO 8601 with offset, or epoch seconds")


class ShiftFigures(BaseModel):
    start: float = Field(description="first ping of the shift (epoch s), not clipped to the range")
    end: float = Field(description="last ping of the shift (epoch s), not clipped to the range")
    inside_s: float = Field(description="within the range: union of the device's visits")
    outside_s: float = Field(description="within the range: active time outside every hot spot")
    lost_s: float = Field(description="within the range: signal-loss gaps shorter than the shift break")
    losses: int = Field(description="signal losses of the shift starting in the range")
    officer_id: str | None = Field(description="on the shift's first event naming one, else the device's")
    callsign: str | None


class OfficerFigures(BaseModel):
    device_id: str
    officer_id: str | None = Field(description="the device's officer as last recorded")
    callsign: str | None
    inside_s: float
    outside_s: float
    lost_s: float
    break_s: float = Field(description="time in gaps longer than the shift break (between shifts)")
    shifts: list[ShiftFigures]


class OfficerTimeAnswer(BaseModel):
    start: float
    end: float
    shift_break_s: float
    officers: list[OfficerFigures]


class GapFigures(BaseModel):
    start: float
    end: float | None = Field(description="null while the device is still lost")
    length_s: float | None
    kind: GapKind = Field(description="loss (within a shift), break (between shifts) or open")
    lat: float | None = Field(description="last known position: that of the SIGNAL_LOST event")
    lon: float | None


class PeriodFigures(BaseModel):
    start: float
    end: float
    losses: int
    lost_s: float
    week: str | None = Field(None, description="ISO week in the timezone setting, for weekly rows")


class DeviceLossFigures(BaseModel):
    device_id: str
    officer_id: str | None
    callsign: str | None
    losses: int = Field(description="losses starting in the range (breaks and open gaps not counted)")
    lost_s: float = Field(description="seconds of losses within the range")
    longest_s: float
    repeated: bool = Field(description="some shift has at least min_losses losses")
    gaps: list[GapFigures]
    shifts: list[PeriodFigures]
    weeks: list[PeriodFigures]


class SignalLossAnswer(BaseModel):
    start: float
    end: float
    shift_break_s: float
    min_losses: int
    devices: list[DeviceLossFigures]


@router.get("/officers/time", response_model=OfficerTimeAnswer, summary="Per officer and shift: inside/outside/lost")
async def officers_time(
    ctx: Context,
    who: Viewer,
    start: Annotated[str, _FROM],
    end: Annotated[str, _TO],
    device_id: Annotated[str | None, Query()] = None,
    officer_id: Annotated[str | None, Query()] = None,
) -> OfficerTimeAnswer:
    lo, hi = time_range(start, end, required=True)
    assert lo is not None and hi is not None
    brk = ctx.settings.shift_break_s
    found = await officer_time(ctx.store, lo, hi, brk, device_id=device_id, officer_id=officer_id)
    await audit(ctx, who, "GET /v1/officers/time", device_id or officer_id,
                {"from": lo, "to": hi, "devices": [o.device_id for o in found]})  # fmt: skip
    officers = [
        OfficerFigures(
            device_id=o.device_id,
            officer_id=o.officer_id,
            callsign=o.callsign,
            inside_s=o.total("inside_s"),
            outside_s=o.total("outside_s"),
            lost_s=o.total("lost_s"),
            break_s=o.break_s,
            shifts=[ShiftFigures.model_validate(s, from_attributes=True) for s in o.shifts],
        )
        for o in found
    ]
    return OfficerTimeAnswer(start=lo, end=hi, shift_break_s=brk, officers=officers)


@router.get("/signal-loss", response_model=SignalLossAnswer, summary="Per device: signal-loss gaps, counts, flag")
async def signal_loss_report(
    ctx: Context,
    who: Viewer,
    start: Annotated[str, _FROM],
    end: Annotated[str, _TO],
    device_id: Annotated[str | None, Query()] = None,
    min_losses: Annotated[
        int | None, Query(ge=1, description="losses in one shift that flag a device; default the setting")
    ] = None,
) -> SignalLossAnswer:
    lo, hi = time_range(start, end, required=True)
    assert lo is not None and hi is not None
    s = ctx.settings
    threshold = s.repeated_loss_gaps if min_losses is None else min_losses
    found = await signal_loss(ctx.store, lo, hi, shift_break_s=s.shift_break_s, min_losses=threshold,
                              tz=s.timezone, device_id=device_id)  # fmt: skip
    await audit(ctx, who, "GET /v1/signal-loss", device_id,
                {"from": lo, "to": hi, "devices": [d.device_id for d in found]})  # fmt: skip
    return SignalLossAnswer(
        start=lo, end=hi, shift_break_s=s.shift_break_s, min_losses=threshold,
        devices=[DeviceLossFigures.model_validate(d, from_attributes=True) for d in found],
    )  # fmt: skip


@router.get(
    "/reports/weekly",
    summary="The weekly stocktake as CSV, XLSX or a self-contained HTML page",
    response_class=Response,
    responses={200: {"content": {t.split(";")[0]: {} for t in MEDIA_TYPES.values()}}},
)
async def weekly(
    ctx: Context,
    who: Viewer,
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
    await audit(ctx, who, "GET /v1/reports/weekly", None,
                {"week": report.week.label, "format": fmt, "devices": list(report.devices)})  # fmt: skip
    disposition = "inline" if fmt == "html" else "attachment"  # the page opens in the browser
    return Response(
        render(report, fmt),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'{disposition}; filename="hotspots-{report.week.label}.{fmt}"'},
    )
