"""The event log: paged queries, and a live Server-Sent Events stream resumable by Last-Event-ID."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import Context
from api.schemas import MAX_CURSOR, EventPage
from api.security import Viewer, audit
from api.timeparams import time_range
from services.store import Store

router = APIRouter(prefix="/v1/events", tags=["events"])

EventType = Literal["enter", "exit", "signal_lost", "signal_restored"]
#: How often the stream looks for new events: well under the 2 s a control room notices.
POLL_S = 0.25
#: A comment line this often keeps proxies from closing a quiet stream.
HEARTBEAT_S = 15.0
#: Events sent per poll at most; a client catching up gets them in pages.
PAGE = 500


@router.get("", response_model=EventPage, summary="Events by time, type, fence and device; paged by `after`")
async def list_events(
    ctx: Context,
    who: Viewer,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 with offset, or epoch")] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO 8601 with offset, or epoch")] = None,
    type: Annotated[list[EventType] | None, Query()] = None,
    fence_id: Annotated[str | None, Query()] = None,
    device_id: Annotated[str | None, Query()] = None,
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR, description="cursor: next_after of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPage:
    lo, hi = time_range(start, end, required=False)
    rows = await ctx.store.events_page(
        since=lo, until=hi, types=type, fence_id=fence_id, device_id=device_id, after_seq=after, limit=limit
    )
    devices = sorted({r.device_id for r in rows})
    await audit(ctx, who, "GET /v1/events", device_id or fence_id, {"from": lo, "to": hi, "devices": devices})
    return EventPage(
        events=[{**r.body, "seq": r.seq} for r in rows], next_after=rows[-1].seq if len(rows) == limit else None
    )


@router.get(
    "/stream",
    summary="Live events as Server-Sent Events; reconnect with Last-Event-ID to catch up",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    request: Request,
    ctx: Context,
    who: Viewer,
    type: Annotated[list[EventType] | None, Query()] = None,
    fence_id: Annotated[str | None, Query()] = None,
    device_id: Annotated[str | None, Query()] = None,
    last_event_id: Annotated[str | None, Header(description="seq of the last event received")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_CURSOR, description="start after this seq (instead of Last-Event-ID)")
    ] = None,
) -> StreamingResponse:
    start = after if after is not None else _seq(last_event_id)
    if start is None:
        start = await ctx.store.last_event_seq()  # new subscribers get what happens from now on
    await audit(ctx, who, "GET /v1/events/stream", device_id or fence_id, {"after": start})
    body = _stream(request, ctx.store, start, type, fence_id, device_id)
    return StreamingResponse(body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _seq(value: str | None) -> int | None:
    seq = int(value) if value is not None and value.strip().isdigit() else None
    return seq if seq is not None and seq <= MAX_CURSOR else None


async def _stream(
    request: Request, store: Store, after: int, types: list[EventType] | None, fence_id: str | None,
    device_id: str | None,
) -> AsyncIterator[bytes]:  # fmt: skip
    # Reconnect after a second, with Last-Event-ID: the id here is where this stream starts, so a
    # client that got no event before a drop still resumes without a gap.
    yield b"retry: 1000\nid: %d\n\n" % after
    quiet = 0.0
    while not await request.is_disconnected():
        rows = await store.events_page(types=types, fence_id=fence_id, device_id=device_id, after_seq=after, limit=PAGE)
        for r in rows:
            yield b"id: %d\nevent: %s\ndata: %s\n\n" % (r.seq, r.type.encode(), orjson.dumps(r.body))
            after = r.seq
        if rows:
            quiet = 0.0
            if len(rows) == PAGE:
                continue
        elif quiet >= HEARTBEAT_S:
            yield b": keep-alive\n\n"
            quiet = 0.0
        await asyncio.sleep(POLL_S)
        quiet += POLL_S
