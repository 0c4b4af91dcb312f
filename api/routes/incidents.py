"""Outcomes and choosing hot spots: incident upload, counts per hot spot, candidate cells, capacity."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, status

from api.bodies import read_body
from api.deps import Admin, Audit, Context, Viewer
from api.schemas.incidents import (
    CapacityPublic,
    FenceOutcomePublic,
    IncidentImportPublic,
    OutcomePeriodPublic,
    OutcomesPublic,
)
from api.timeparams import invalid_query, parse_time, time_range
from geofence.ranking import DEFAULT_CELL_M, capacity
from ingest.incidents_csv import CsvError, ParsedIncidents, parse_incident_csv, parse_incident_records
from services.measures.incidents import Dosed, FenceOutcome, outcomes, rank_incidents, store_incidents

router = APIRouter(prefix="/v1", tags=["outcomes"])

Source = Literal["crime", "call", "injury"]


#: The body as the route reads it itself: incident objects (fields as the CSV columns), or CSV text.
_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "text/csv": {"schema": {"type": "string"}},
    },
}


def _bad_rows(parsed: ParsedIncidents) -> HTTPException:
    listed = [{"line": e.line, "index": e.index, "field": e.field, "reason": e.reason} for e in parsed.errors]
    message = f"{parsed.rejected} of {parsed.rows} rows are invalid; nothing was stored"
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"message": message, "errors": listed})


@router.post(
    "/incidents", status_code=status.HTTP_201_CREATED, response_model=IncidentImportPublic,
    summary="Import incidents: a JSON array of objects, or CSV (Content-Type: text/csv)",
    responses={413: {"description": "body too large"}, 422: {"description": "bad rows, each named; nothing stored"}},
    openapi_extra={"requestBody": _BODY},
)  # fmt: skip
async def post_incidents(
    request: Request,
    ctx: Context,
    _: Admin,
    audit: Audit,
    source: Annotated[Source, Query(description="for rows that name none")] = "crime",
) -> IncidentImportPublic:
    """All or nothing: one bad row refuses the upload (the answer names every bad row and field);
    the upload is idempotent by (source, id), so the corrected body can simply be sent again."""
    body = await read_body(request, ctx.settings.max_body_bytes)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    try:
        if content_type in ("text/csv", "application/csv"):
            parsed = parse_incident_csv(body.decode("utf-8-sig", "surrogateescape").splitlines(True), source, "body")
        else:
            doc = orjson.loads(body)
            parsed = parse_incident_records(doc if isinstance(doc, list) else [doc], source)
    except CsvError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except orjson.JSONDecodeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body is not valid JSON: {exc}") from None
    if parsed.errors:
        raise _bad_rows(parsed)
    if not parsed.incidents:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the body holds no incidents")
    result = await store_incidents(ctx.store, parsed.incidents)
    audit.record(None, {"incidents": len(parsed.incidents), "new": result.new})
    return IncidentImportPublic(
        rows=parsed.rows, imported=len(parsed.incidents), new=result.new, replaced=result.replaced,
        repeated=parsed.repeated,
    )  # fmt: skip


def _period(d: Dosed) -> OutcomePeriodPublic:
    p = d.period
    return OutcomePeriodPublic(
        start=p.start, end=p.end, weeks=p.weeks, incidents=p.count, per_week=p.per_week, categories=p.categories,
        partial=p.partial, visits=d.visits, dwell_s=d.dwell_s,
    )  # fmt: skip


def _outcome(o: FenceOutcome) -> FenceOutcomePublic:
    return FenceOutcomePublic(
        fence_id=o.fence_id, name=o.name, period=_period(o.whole),
        before=None if o.before is None else _period(o.before),
        during=None if o.during is None else _period(o.during),
        change_per_week=None if o.change is None else o.change.change_per_week,
        change_pct=None if o.change is None else o.change.change_pct,
    )  # fmt: skip


@router.get("/outcomes", response_model=OutcomesPublic, summary="Incidents per hot spot beside dosage")
async def get_outcomes(
    ctx: Context,
    _: Viewer,
    start: Annotated[str, Query(alias="from", description="ISO 8601 with offset, or epoch seconds")],
    end: Annotated[str, Query(alias="to", description="ISO 8601 with offset, or epoch seconds")],
    programme_start: Annotated[str | None, Query(description="compare [from, this) with [this, to)")] = None,
    fence_id: Annotated[list[str] | None, Query(description="only these hot spots (repeat)")] = None,
) -> OutcomesPublic:
    """An incident counts in a period when it is inside the fence's effective area and its time in
    the period; a month-only incident only when its whole month is (else it is `partial`)."""
    lo, hi = time_range(start, end, required=True)
    assert lo is not None and hi is not None
    pivot = parse_time("programme_start", programme_start)
    if pivot is not None and not lo < pivot < hi:
        raise invalid_query("programme_start", "must lie between from and to")
    found = await outcomes(ctx.store, lo, hi, programme_start=pivot, fence_ids=fence_id)
    return OutcomesPublic(start=lo, end=hi, programme_start=pivot, fences=[_outcome(o) for o in found])


def _weights(given: list[str] | None) -> dict[str, float] | None:
    if not given:
        return None
    table: dict[str, float] = {}
    for item in given:
        name, sep, number = item.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or not value >= 0 or value == float("inf"):
            raise invalid_query("weight", f"{item!r} is not CATEGORY=NUMBER (>= 0)")
        table[name.strip()] = value
    return table


@router.get("/hotspots/candidates", summary="Micro-places ranked by incidents, as proposed fences (GeoJSON)")
async def candidates(
    ctx: Context,
    _: Viewer,
    cell_m: Annotated[float, Query(ge=1, le=5000, description="cell side, metres")] = DEFAULT_CELL_M,
    top: Annotated[int, Query(ge=1, le=1000)] = 20,
    by: Annotated[Literal["count", "harm"], Query(description="incident count or summed harm weight")] = "count",
    weight: Annotated[
        list[str] | None, Query(description="CATEGORY=NUMBER harm weights (repeat); default: built-in table")
    ] = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    source: Annotated[list[Source] | None, Query(description="only these sources (repeat)")] = None,
    buffer_m: Annotated[float, Query(ge=0, le=1000, description="buffer_m of the proposed fences")] = 0.0,
) -> dict[str, Any]:
    lo, hi = time_range(start, end, required=False)
    table = _weights(weight)
    ranking = await rank_incidents(ctx.store, lo, hi, sources=source, cell_m=cell_m, top=top, by=by, weights=table)
    return ranking.feature_collection(buffer_m)


@router.get("/hotspots/capacity", response_model=CapacityPublic, summary="How many hot spots the officers can dose")
async def hotspot_capacity(
    _: Viewer,
    officers: Annotated[int, Query(ge=0, le=100_000, description="officers on the shift for hot-spot patrol")],
    shift_h: Annotated[float, Query(gt=0, le=24, description="shift length, hours")],
    visits_per_shift: Annotated[int, Query(ge=1, le=1000, description="planned visits per hot spot per shift")],
    visit_min: Annotated[float, Query(ge=1, le=1440, description="minutes of each visit (10-15 guidance)")],
    travel_min: Annotated[float, Query(ge=0, le=1440, description="minutes travelling between visits")] = 0.0,
    planned: Annotated[int | None, Query(ge=0, le=1_000_000, description="hot spots in the plan")] = None,
) -> CapacityPublic:
    c = capacity(officers, shift_h, visits_per_shift, visit_min, travel_min, planned)
    return CapacityPublic.model_validate(c, from_attributes=True)
