"""Plan compliance (planned vs delivered dosage) and the live due list for control rooms."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import Audit, Context, Viewer
from api.schemas.compliance import CompliancePublic, ComplianceRowPublic, DuePublic, DueRowPublic
from api.timeparams import invalid_query, parse_time, time_range
from services.measures.compliance import compliance_rows, due_list

router = APIRouter(prefix="/v1/compliance", tags=["compliance"])

#: Window occurrences are enumerated day by day: ranges are bounded to keep that small.
MAX_RANGE_S = 400 * 86400.0
#: Times must fall in 1970-2099: local calendar dates are taken of them.
LAST_TS = 4102444800.0


def _in_calendar(name: str, ts: float) -> float:
    if not 0.0 <= ts < LAST_TS:
        raise invalid_query(name, "must be between 1970 and 2099")
    return ts


@router.get("", response_model=CompliancePublic, summary="Planned vs delivered for windows starting in [from, to)")
async def compliance(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    start: Annotated[str, Query(alias="from", description="ISO 8601 with offset, or epoch seconds")],
    end: Annotated[str, Query(alias="to", description="ISO 8601 with offset, or epoch seconds")],
    group_by: Annotated[Literal["window", "fence", "team", "officer"], Query()] = "window",
    fence_id: Annotated[str | None, Query()] = None,
    team: Annotated[str | None, Query()] = None,
) -> CompliancePublic:
    lo, hi = time_range(start, end, required=True)
    assert lo is not None and hi is not None
    _in_calendar("from", lo)
    _in_calendar("to", hi)
    if hi - lo > MAX_RANGE_S:
        raise invalid_query("to", f"must be at most {MAX_RANGE_S / 86400:.0f} days after from")
    rows = await compliance_rows(ctx.store, ctx.settings, lo, hi, group_by=group_by, fence_id=fence_id, team=team)
    if group_by == "officer":  # officers' time in hot spots is their location history
        officers = sorted({r.officer_id for r in rows if r.officer_id})
        audit.record(None, {"from": lo, "to": hi, "group_by": group_by, "officers": officers})
    return CompliancePublic(
        start=lo, end=hi, group_by=group_by,
        rows=[ComplianceRowPublic.model_validate(r, from_attributes=True) for r in rows],
    )  # fmt: skip


@router.get("/due", response_model=DuePublic, summary="Open windows behind plan, most behind first")
async def due(
    ctx: Context,
    _: Viewer,
    at: Annotated[str | None, Query(description="ISO 8601 with offset, or epoch seconds; default now")] = None,
) -> DuePublic:
    now = parse_time("at", at)
    as_of = _in_calendar("at", time.time() if now is None else now)
    rows = await due_list(ctx.store, ctx.settings, as_of)
    return DuePublic(as_of=as_of, due=[DueRowPublic.model_validate(r, from_attributes=True) for r in rows])
