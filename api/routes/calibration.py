"""GPS calibration: verification checks, the error of a device's fixes, and fence buffers from it.

A check's fixes are where an officer's device put them while the officer stood at a known
spot: location history, so every read of fixes or of figures derived from them is audited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.deps import Context
from api.schemas import MAX_CURSOR
from api.security import Admin, Viewer, audit
from api.timeparams import time_range
from geofence.calibration import ErrorSummary, Fixes, calibrate, offsets_m, summarise_by
from geofence.fences import Fence, make_fence
from ingest.ping_message import Accuracy, DeviceId, FenceId, Lat, Lon, Ping, Text
from services.measures.calibration import Check, create_check, get_check, list_checks, load_fixes
from services.settings import Settings

router = APIRouter(prefix="/v1/calibration", tags=["calibration"])

#: A check is minutes at a known spot, not a tracking warrant: longer windows are refused.
MAX_WINDOW_S = 24 * 3600.0
#: Most fixes one check may bring with it (an exported track of a long window at 1 Hz fits).
MAX_SUPPLIED_FIXES = 100_000
#: Largest buffer an admin may apply: beyond this a "hot spot" is a district.
MAX_BUFFER_M = 1000.0


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("must not contain a NUL byte")
    return text


#: Text stored in the database: PostgreSQL text cannot hold a NUL byte.
NoNul = AfterValidator(_no_nul)
#: The ping's `ts` rule: ISO 8601 with a UTC offset, or epoch seconds; validated to epoch seconds.
Timestamp = Annotated[float, *Ping.model_fields["ts"].metadata]


class SuppliedFix(BaseModel):
    """A fix from an exported track of the check's device, with the ping rules."""

    model_config = ConfigDict(extra="forbid")
    ts: Timestamp
    lat: Lat
    lon: Lon
    accuracy_m: Accuracy | None = None
    source: Annotated[Text, NoNul] | None = Field(None, description="radio, handset...")


class CheckCreate(BaseModel):
    """A device held at a known true position (lat, lon) during [start, end)."""

    model_config = ConfigDict(extra="forbid")
    device_id: Annotated[DeviceId, NoNul]
    lat: Lat = Field(description="true position, WGS84 degrees (e.g. a CCTV-verified spot)")
    lon: Lon = Field(description="true position, WGS84 degrees")
    start: Timestamp
    end: Timestamp
    note: Annotated[str, Field(max_length=500), NoNul] | None = None
    fixes: list[SuppliedFix] = Field(
        default_factory=list, max_length=MAX_SUPPLIED_FIXES,
        description="for a check done after the fact; otherwise the matcher captures the fixes live",
    )  # fmt: skip


class Summary(BaseModel):
    """Error of fixes in metres; see docs/semantics.md "GPS calibration"."""

    model_config = ConfigDict(from_attributes=True)
    fixes: int = Field(description="fixes the figures come from")
    uncertain: int = Field(description="fixes left out: accuracy_m above max_accuracy_m")
    median_m: float | None
    p80_m: float | None = Field(description="smallest distance holding at least 80% of the fixes")
    p95_m: float | None = Field(description="smallest distance holding at least 95% of the fixes")
    mean_east_m: float | None
    mean_north_m: float | None
    mean_offset_m: float | None = Field(description="length of the mean offset vector")
    offset_bearing_deg: float | None = Field(description="direction of the mean offset, clockwise from north")
    buffer_80_m: float | None = Field(description="fence buffer capturing 80% of the fixes")
    buffer_95_m: float | None = Field(description="fence buffer capturing 95% of the fixes")


class CheckPublic(BaseModel):
    check_id: int
    device_id: str
    lat: float
    lon: float
    start: float = Field(description="epoch seconds")
    end: float = Field(description="epoch seconds, exclusive")
    note: str | None
    created_at: float
    created_by: str = Field(description="API key id")
    result: Summary


class FixPublic(BaseModel):
    ts: float
    lat: float
    lon: float
    accuracy_m: float | None
    source: str | None
    east_m: float
    north_m: float
    distance_m: float


class CheckDetail(CheckPublic):
    by_source: dict[str, Summary]
    fixes: list[FixPublic]


class CheckList(BaseModel):
    checks: list[CheckPublic]


class CalibrationSummary(BaseModel):
    overall: Summary
    devices: dict[str, Summary]
    sources: dict[str, Summary] = Field(description="per source; fixes without one under 'unknown'")


class ApplyRequest(BaseModel):
    """Set the buffer of fences: a given buffer_m, or the one recommended for a quantile of the fixes
    (all fixes held, or those of a device, a source or a time range)."""

    model_config = ConfigDict(extra="forbid")
    fence_ids: list[FenceId] = Field(min_length=1, max_length=10_000)
    quantile: Literal[80, 95] | None = None
    buffer_m: Annotated[float, Field(ge=0, le=MAX_BUFFER_M, allow_inf_nan=False)] | None = None
    device_id: DeviceId | None = None
    source: Text | None = None
    start: Timestamp | None = Field(None, alias="from")
    end: Timestamp | None = Field(None, alias="to")


class FenceBuffer(BaseModel):
    fence_id: str
    old_buffer_m: float
    new_buffer_m: float


class ApplyResult(BaseModel):
    version: int = Field(description="the fence-set version after the change")
    buffer_m: float
    quantile: int | None
    based_on: Summary | None = Field(description="the fixes the recommendation came from (quantile only)")
    fences: list[FenceBuffer]
    warnings: list[str]


def _invalid(message: str, *loc: str | int) -> HTTPException:
    """422 in FastAPI's own shape, naming the body field at loc (e.g. "fixes", 3, "ts")."""
    where = ".".join(map(str, loc))
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": ["body", *loc], "msg": f"{where}: {message}", "type": "value_error"}],
    )


def _summary(s: ErrorSummary) -> Summary:
    return Summary.model_validate(s, from_attributes=True)


def _rules(settings: Settings) -> dict[str, float]:
    return {"max_accuracy_m": settings.max_accuracy_m, "step_m": settings.calibration_step_m}


def _public(check: Check, result: ErrorSummary) -> dict[str, Any]:
    return {
        "check_id": check.check_id, "device_id": check.device_id, "lat": check.lat, "lon": check.lon,
        "start": check.start_ts, "end": check.end_ts, "note": check.note, "created_at": check.created_at,
        "created_by": check.created_by, "result": _summary(result),
    }  # fmt: skip


def _retention_horizon(settings: Settings) -> float:
    """Fixes taken before this are past the ping retention (epoch seconds)."""
    return time.time() - settings.ping_retention_days * 86_400.0


def _rebuffered(fence: Fence, buffer_m: float) -> Fence:
    """The fence grown by another buffer; its GeoJSON as the store holds it (JSON arrays, not tuples)."""
    geometry = orjson.loads(orjson.dumps(fence.to_feature()["geometry"]))
    return make_fence(fence.id, geometry, name=fence.name, buffer_m=buffer_m)


def _by_check(fixes: Fixes, settings: Settings) -> Mapping[str, ErrorSummary]:
    east, north = offsets_m(fixes.lat, fixes.lon, fixes.true_lat, fixes.true_lon)
    return summarise_by(fixes.check_id.astype(object), east, north, fixes.accuracy_m, **_rules(settings))


@router.post("/checks", status_code=status.HTTP_201_CREATED, response_model=CheckPublic,
             summary="Register a verification check (with fixes, when done after the fact)")  # fmt: skip
async def post_check(body: CheckCreate, ctx: Context, who: Admin) -> CheckPublic:
    if body.end <= body.start:
        raise _invalid("must be after start", "end")
    if body.end - body.start > MAX_WINDOW_S:
        raise _invalid(f"window longer than {MAX_WINDOW_S / 3600:g} h: a check is minutes at a known spot", "end")
    horizon = _retention_horizon(ctx.settings)
    for i, fix in enumerate(body.fixes):
        if not body.start <= fix.ts < body.end:
            raise _invalid("outside the check's window [start, end)", "fixes", i, "ts")
        if fix.ts < horizon:
            raise _invalid("older than the ping retention: raw fixes are not kept that long", "fixes", i, "ts")
    if len({f.ts for f in body.fixes}) < len(body.fixes):
        raise _invalid("two fixes with the same ts (a device reports one fix per instant)", "fixes")
    check = await create_check(
        ctx.store, device_id=body.device_id, lat=body.lat, lon=body.lon, start_ts=body.start, end_ts=body.end,
        note=body.note, created_by=who.key_id,
        fixes=[(f.ts, f.lat, f.lon, f.accuracy_m, f.source) for f in body.fixes],
    )  # fmt: skip
    await audit(ctx, who, "POST /v1/calibration/checks", check.device_id,
                {"check_id": check.check_id, "fixes": len(body.fixes)})  # fmt: skip
    result = calibrate(await load_fixes(ctx.store, check_id=check.check_id), **_rules(ctx.settings)).overall
    return CheckPublic(**_public(check, result))


@router.get("/checks", response_model=CheckList, summary="Checks whose window overlaps [from, to), with their error")
async def get_checks(
    ctx: Context,
    who: Viewer,
    device_id: Annotated[str | None, Query()] = None,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 with offset, or epoch seconds")] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO 8601 with offset, or epoch seconds")] = None,
) -> CheckList:
    lo, hi = time_range(start, end, required=False)
    checks = await list_checks(ctx.store, device_id=device_id, since=lo, until=hi)
    fixes = await load_fixes(ctx.store, device_id=device_id)
    by_check = _by_check(fixes, ctx.settings)
    empty = ErrorSummary(fixes=0, uncertain=0)
    devices = sorted({c.device_id for c in checks})
    await audit(ctx, who, "GET /v1/calibration/checks", device_id,
                {"from": lo, "to": hi, "checks": [c.check_id for c in checks], "devices": devices})  # fmt: skip
    return CheckList(checks=[CheckPublic(**_public(c, by_check.get(str(c.check_id), empty))) for c in checks])


@router.get("/checks/{check_id}", response_model=CheckDetail, summary="A check, its error and its fixes")
async def get_one_check(check_id: Annotated[int, Path(ge=0, le=MAX_CURSOR)], ctx: Context, who: Viewer) -> CheckDetail:
    check = await get_check(ctx.store, check_id)
    if check is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no calibration check {check_id}")
    await audit(ctx, who, "GET /v1/calibration/checks/{id}", check.device_id, {"check_id": check_id})
    fixes = await load_fixes(ctx.store, check_id=check_id)
    result = calibrate(fixes, **_rules(ctx.settings))
    east, north = offsets_m(fixes.lat, fixes.lon, fixes.true_lat, fixes.true_lon)
    accuracy = [None if math.isnan(a) else a for a in fixes.accuracy_m.tolist()]
    columns = {
        "ts": fixes.ts.tolist(), "lat": fixes.lat.tolist(), "lon": fixes.lon.tolist(), "accuracy_m": accuracy,
        "source": fixes.source.tolist(), "east_m": east.tolist(), "north_m": north.tolist(),
        "distance_m": np.hypot(east, north).tolist(),
    }  # fmt: skip
    rows = [FixPublic(**dict(zip(columns, values, strict=True))) for values in zip(*columns.values(), strict=True)]
    by_source = {k: _summary(v) for k, v in result.by_source.items()}
    return CheckDetail(**_public(check, result.overall), by_source=by_source, fixes=rows)


@router.get("/summary", response_model=CalibrationSummary, summary="Error of the fixes held, per device and source")
async def get_summary(
    ctx: Context,
    who: Viewer,
    device_id: Annotated[str | None, Query()] = None,
    source: Annotated[str | None, Query(description="radio, handset...; 'unknown' for fixes without one")] = None,
    start: Annotated[str | None, Query(alias="from", description="fix time, ISO 8601 with offset or epoch")] = None,
    end: Annotated[str | None, Query(alias="to", description="fix time, ISO 8601 with offset or epoch")] = None,
) -> CalibrationSummary:
    lo, hi = time_range(start, end, required=False)
    fixes = await load_fixes(ctx.store, device_id=device_id, source=source, since=lo, until=hi)
    result = calibrate(fixes, **_rules(ctx.settings))
    filters = {k: v for k, v in {"source": source, "from": lo, "to": hi}.items() if v is not None}
    await audit(ctx, who, "GET /v1/calibration/summary", device_id,
                {"filters": filters, "devices": sorted(result.by_device)})  # fmt: skip
    return CalibrationSummary(
        overall=_summary(result.overall),
        devices={k: _summary(v) for k, v in result.by_device.items()},
        sources={k: _summary(v) for k, v in result.by_source.items()},
    )


@router.post("/apply", response_model=ApplyResult, summary="Set fences' buffer_m: given, or recommended by the fixes")
async def apply_buffer(body: ApplyRequest, ctx: Context, who: Admin) -> ApplyResult:
    if (body.quantile is None) == (body.buffer_m is None):
        raise _invalid("give either quantile (80 or 95) or buffer_m, not both or neither", "quantile")
    fences, _ = await ctx.store.load_fences()
    by_id = {f.id: f for f in fences}
    unknown = sorted(set(body.fence_ids) - set(by_id))
    if unknown:
        raise _invalid(f"unknown fence(s) {unknown}", "fence_ids")
    based_on: ErrorSummary | None = None
    if body.buffer_m is not None:
        buffer_m = body.buffer_m
    else:
        if body.start is not None and body.end is not None and body.end <= body.start:
            raise _invalid("must be after from", "to")
        fixes = await load_fixes(ctx.store, device_id=body.device_id, source=body.source, since=body.start,
                                 until=body.end)  # fmt: skip
        based_on = calibrate(fixes, **_rules(ctx.settings)).overall
        recommended = based_on.buffer_80_m if body.quantile == 80 else based_on.buffer_95_m
        if recommended is None:
            raise _invalid("no calibration fixes match: nothing to recommend a buffer from", "quantile")
        if recommended > MAX_BUFFER_M:
            raise _invalid(f"the recommended buffer {recommended:g} m exceeds {MAX_BUFFER_M:g} m", "quantile")
        buffer_m = recommended
    ids = list(dict.fromkeys(body.fence_ids))
    changed = [_rebuffered(by_id[i], buffer_m) for i in ids]
    version = await ctx.store.upsert_fences(changed)
    await audit(ctx, who, "POST /v1/calibration/apply", None,
                {"fences": ids, "buffer_m": buffer_m, "quantile": body.quantile, "version": version})  # fmt: skip
    return ApplyResult(
        version=version, buffer_m=buffer_m, quantile=body.quantile,
        based_on=None if based_on is None else _summary(based_on),
        fences=[FenceBuffer(fence_id=i, old_buffer_m=by_id[i].buffer_m, new_buffer_m=buffer_m) for i in ids],
        warnings=[w for f in changed for w in f.warnings],
    )  # fmt: skip
