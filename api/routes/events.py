"""The event log: paged queries, and a live Server-Sent Events stream resumable by Last-Event-ID.

The stream is one subscription to the process's event feed (services/query/feed.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, status
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from api.context import ServiceContext
from api.deps import Audit, AuditTrail, Context, Viewer
from api.schemas import MAX_CURSOR
from api.schemas.events import EventPagePublic
from api.timeparams import time_range
from services.access.roles import Principal
from services.query.attribution import attributed_events
from services.query.feed import EventFilter, TooManyStreams

router = APIRouter(prefix="/v1/events", tags=["events"])

EventType = Literal["enter", "exit", "signal_lost", "signal_restored"]
#: A comment line this often keeps proxies from closing a quiet stream.
HEARTBEAT_S = 15.0
#: A client that takes longer than this to accept one write is cut (it reconnects and resumes).
SEND_TIMEOUT_S = 30.0


@router.get("", response_model=EventPagePublic, summary="Events by time, type, fence and device; paged by `after`")
async def list_events(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 with offset, or epoch")] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO 8601 with offset, or epoch")] = None,
    type: Annotated[list[EventType] | None, Query()] = None,
    fence_id: Annotated[str | None, Query()] = None,
    device_id: Annotated[str | None, Query()] = None,
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="cursor: next_after of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPagePublic:
    lo, hi = time_range(start, end, required=False)
    rows = await attributed_events(ctx.store, await ctx.store.events_page(
        since=lo, until=hi, types=type, fence_id=fence_id, device_id=device_id, after_seq=after, limit=limit
    ))  # fmt: skip
    devices = sorted({r.device_id for r in rows})
    audit.record(device_id or fence_id, {"from": lo, "to": hi, "devices": devices})
    return EventPagePublic(
        events=[{**r.body, "seq": r.seq} for r in rows], next_after=rows[-1].seq if len(rows) == limit else None
    )


@router.get(
    "/stream",
    summary="Live events as Server-Sent Events; reconnect with Last-Event-ID to catch up",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        429: {"description": "this key already holds `max_streams_per_key` open streams"},
    },
)
async def stream_events(
    ctx: Context,
    who: Viewer,
    audit: Audit,
    type: Annotated[list[EventType] | None, Query()] = None,
    fence_id: Annotated[str | None, Query()] = None,
    device_id: Annotated[str | None, Query()] = None,
    last_event_id: Annotated[str | None, Header(description="seq of the last event received")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_CURSOR, description="start after this seq (instead of Last-Event-ID)")
    ] = None,
) -> EventSourceResponse:
    wanted = EventFilter(None if type is None else frozenset(type), fence_id, device_id)
    return await open_stream(ctx, who, audit, wanted, device_id or fence_id, after, last_event_id)


async def open_stream(
    ctx: ServiceContext, who: Principal, audit: AuditTrail, wanted: EventFilter, target: str | None,
    after: int | None, last_event_id: str | None,
) -> EventSourceResponse:  # fmt: skip
    """A subscription to the feed as an SSE response, audited (target: whose events) before it starts.

    It starts after `after=`, else Last-Event-ID, else the newest event now (what happens next).
    """
    start = after if after is not None else _seq(last_event_id)
    if start is None:
        start = await ctx.feed.latest()

    async def key_still_valid() -> bool:
        return await ctx.store.find_api_key(who.key_id) is not None

    try:
        stream = ctx.feed.open(who.key_id, start, wanted, key_still_valid)
    except TooManyStreams as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "5"}) from None
    try:
        await audit.write(target, {"after": start})
    except BaseException:
        stream.close()
        raise
    return EventSourceResponse(
        stream.frames(), headers={"Cache-Control": "no-cache"}, ping=HEARTBEAT_S, sep="\n",
        send_timeout=SEND_TIMEOUT_S, background=BackgroundTask(stream.close),
    )  # fmt: skip


def _seq(value: str | None) -> int | None:
    seq = int(value) if value is not None and value.strip().isdigit() else None
    return seq if seq is not None and seq <= MAX_CURSOR else None
