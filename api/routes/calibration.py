"""GPS calibration: verification checks, the error of a device's fixes, and fence buffers from it.

A check's fixes are where an officer's device put them while the officer stood at a known
spot: location history, so every read of fixes or of figures derived from them is audited.
The workflow and its rules are in services/measures/calibration.py.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query, status

from api.deps import Admin, Audit, Context, Viewer
from api.schemas import MAX_CURSOR
from api.schemas.calibration import (
    BufferChangeCreate,
    BufferChangePublic,
    CalibrationPublic,
    CheckCreate,
    CheckDetailPublic,
    CheckPublic,
    ChecksPublic,
    ErrorSummaryPublic,
    FenceBufferPublic,
    FixPublic,
)
from api.timeparams import time_range
from geofence.calibration import ErrorSummary
from services.measures import calibration
from services.measures.calibration import Check, SuppliedFix

router = APIRouter(prefix="/v1/calibration", tags=["calibration"])


def _summary(s: ErrorSummary) -> ErrorSummaryPublic:
    return ErrorSummaryPublic.model_validate(s, from_attributes=True)


def _public(check: Check, result: ErrorSummary) -> dict[str, Any]:
    return {
        "check_id": check.check_id, "device_id": check.device_id, "lat": check.lat, "lon": check.lon,
        "start": check.start_ts, "end": check.end_ts, "note": check.note, "created_at": check.created_at,
        "created_by": check.created_by, "result": _summary(result),
    }  # fmt: skip


@router.post("/checks", status_code=status.HTTP_201_CREATED, response_model=CheckPublic,
             summary="Register a verification check (with fixes, when done after the fact)")  # fmt: skip
async def post_check(body: CheckCreate, ctx: Context, who: Admin, audit: Audit) -> CheckPublic:
    fixes = [SuppliedFix(f.ts, f.lat, f.lon, f.accuracy_m, f.source) for f in body.fixes]
    made = await calibration.register_check(
        ctx.store, ctx.settings, device_id=body.device_id, lat=body.lat, lon=body.lon, start_ts=body.start,
        end_ts=body.end, note=body.note, created_by=who.key_id, fixes=fixes,
    )  # fmt: skip
    audit.record(made.check.device_id, {"check_id": made.check.check_id, "fixes": len(fixes)})
    return CheckPublic(**_public(made.check, made.result))


@router.get("/checks", response_model=ChecksPublic, summary="Checks whose window overlaps [from, to), with their error")
async def get_checks(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    device_id: Annotated[str | None, Query()] = None,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 with offset, or epoch seconds")] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO 8601 with offset, or epoch seconds")] = None,
) -> ChecksPublic:
    lo, hi = time_range(start, end, required=False)
    found = await calibration.checks_with_error(ctx.store, ctx.settings, device_id=device_id, since=lo, until=hi)
    devices = sorted({c.check.device_id for c in found})
    audit.record(device_id, {"from": lo, "to": hi, "checks": [c.check.check_id for c in found], "devices": devices})
    return ChecksPublic(checks=[CheckPublic(**_public(c.check, c.result)) for c in found])


@router.get("/checks/{check_id}", response_model=CheckDetailPublic, summary="A check, its error and its fixes")
async def get_one_check(
    check_id: Annotated[int, Path(ge=0, le=MAX_CURSOR)], ctx: Context, _: Viewer, audit: Audit
) -> CheckDetailPublic:
    found = await calibration.check_with_fixes(ctx.store, ctx.settings, check_id)
    audit.record(found.check.device_id, {"check_id": check_id})
    fixes, east, north = found.fixes, found.east_m, found.north_m
    accuracy = [None if math.isnan(a) else a for a in fixes.accuracy_m.tolist()]
    columns = {
        "ts": fixes.ts.tolist(), "lat": fixes.lat.tolist(), "lon": fixes.lon.tolist(), "accuracy_m": accuracy,
        "source": fixes.source.tolist(), "east_m": east.tolist(), "north_m": north.tolist(),
        "distance_m": np.hypot(east, north).tolist(),
    }  # fmt: skip
    rows = [FixPublic(**dict(zip(columns, values, strict=True))) for values in zip(*columns.values(), strict=True)]
    by_source = {k: _summary(v) for k, v in found.calibration.by_source.items()}
    return CheckDetailPublic(**_public(found.check, found.calibration.overall), by_source=by_source, fixes=rows)


@router.get("/summary", response_model=CalibrationPublic, summary="Error of the fixes held, per device and source")
async def get_summary(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    device_id: Annotated[str | None, Query()] = None,
    source: Annotated[str | None, Query(description="radio, handset...; 'unknown' for fixes without one")] = None,
    start: Annotated[str | None, Query(alias="from", description="fix time, ISO 8601 with offset or epoch")] = None,
    end: Annotated[str | None, Query(alias="to", description="fix time, ISO 8601 with offset or epoch")] = None,
) -> CalibrationPublic:
    lo, hi = time_range(start, end, required=False)
    result = await calibration.fixes_error(ctx.store, ctx.settings, device_id=device_id, source=source, since=lo,
                                           until=hi)  # fmt: skip
    filters = {k: v for k, v in {"source": source, "from": lo, "to": hi}.items() if v is not None}
    audit.record(device_id, {"filters": filters, "devices": sorted(result.by_device)})
    return CalibrationPublic(
        overall=_summary(result.overall),
        devices={k: _summary(v) for k, v in result.by_device.items()},
        sources={k: _summary(v) for k, v in result.by_source.items()},
    )


@router.post("/apply", response_model=BufferChangePublic,
             summary="Set fences' buffer_m: given, or recommended by the fixes")  # fmt: skip
async def apply_buffer(body: BufferChangeCreate, ctx: Context, _: Admin, audit: Audit) -> BufferChangePublic:
    change = await calibration.apply_buffer(
        ctx.store, ctx.settings, fence_ids=body.fence_ids, quantile=body.quantile, buffer_m=body.buffer_m,
        device_id=body.device_id, source=body.source, since=body.start, until=body.end,
    )  # fmt: skip
    ids = list(change.old_buffer_m)
    audit.record(None, {"fences": ids, "buffer_m": change.buffer_m, "quantile": body.quantile,
                        "version": change.version})  # fmt: skip
    return BufferChangePublic(
        version=change.version, buffer_m=change.buffer_m, quantile=body.quantile,
        based_on=None if change.based_on is None else _summary(change.based_on),
        fences=[FenceBufferPublic(fence_id=i, old_buffer_m=old, new_buffer_m=change.buffer_m)
                for i, old in change.old_buffer_m.items()],
        warnings=change.warnings,
    )  # fmt: skip
