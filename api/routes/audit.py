"""The audit log: who read which officer's location, and who changed what. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Context
from api.schemas import MAX_CURSOR, AuditEntry, AuditPage
from api.security import Admin

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", response_model=AuditPage, summary="Audit entries, oldest first, paged with `after`")
async def audit_log(
    ctx: Context,
    _: Admin,
    since: Annotated[float | None, Query(description="epoch seconds, inclusive")] = None,
    until: Annotated[float | None, Query(description="epoch seconds, exclusive")] = None,
    target: Annotated[str | None, Query(description="device or fence id")] = None,
    key_id: Annotated[str | None, Query(description="the API key that acted")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="cursor: the next_after of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    rows = await ctx.store.audit_entries(
        since=since, until=until, target=target, key_id=key_id, after_id=after, limit=limit
    )
    entries = [
        AuditEntry(id=r.id, ts=r.ts, key_id=r.key_id, role=r.role, action=r.action, target=r.target, detail=r.detail)
        for r in rows
    ]
    return AuditPage(entries=entries, next_after=entries[-1].id if len(entries) == limit else None)
