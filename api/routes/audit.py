"""The audit log: who read which officer's location, and who changed what. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Admin, Context
from api.schemas import MAX_CURSOR
from api.schemas.audit import AuditEntryPublic, AuditPagePublic
from api.timeparams import time_range

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", response_model=AuditPagePublic, summary="Audit entries in [from, to), oldest first, paged with `after`")
async def audit_log(
    ctx: Context,
    _: Admin,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 with offset, or epoch seconds")] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO 8601 with offset, or epoch seconds")] = None,
    target: Annotated[str | None, Query(description="device or fence id")] = None,
    key_id: Annotated[str | None, Query(description="the API key that acted")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="cursor: the next_after of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPagePublic:
    lo, hi = time_range(start, end, required=False)
    rows = await ctx.store.audit_entries(since=lo, until=hi, target=target, key_id=key_id, after_id=after, limit=limit)
    entries = [
        AuditEntryPublic(
            id=r.id, ts=r.ts, key_id=r.key_id, role=r.role, action=r.action, target=r.target, detail=r.detail
        )
        for r in rows
    ]
    return AuditPagePublic(entries=entries, next_after=entries[-1].id if len(entries) == limit else None)
