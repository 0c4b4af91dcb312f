"""An officer's own view: GET /v1/me and the live events naming that officer.

Only officer keys (bound to one officer) get here with data: the officer is the key's, never a
parameter, so no officer key can ask for another officer's figures or events.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse

from api.deps import Audit, Context, Me, Officer
from api.routes.events import open_stream
from api.schemas import MAX_CURSOR
from api.schemas.compliance import DueRowPublic
from api.schemas.feedback import FeedbackPublic
from api.schemas.me import InsideNowPublic, MePublic, RadioPublic, ShiftPublic, VisitPublic, WindowPublic
from api.timeparams import parse_time
from services.measures.me import me
from services.query.feed import EventFilter

router = APIRouter(prefix="/v1/me", tags=["me"])


@router.get("", response_model=MePublic, summary="This officer's hot spots, dosage, time inside and radio")
async def get_me(
    ctx: Context,
    officer: Me,
    audit: Audit,
    at: Annotated[str | None, Query(description="ISO 8601 with offset, or epoch seconds; default now")] = None,
) -> MePublic:
    now = parse_time("at", at)
    found = await me(ctx.store, ctx.settings, officer, time.time() if now is None else now)
    audit.record(officer, {"at": found.as_of, "devices": [r.device_id for r in found.radios]})
    s = found.shift
    shift = None if s is None else ShiftPublic(
        start=s.start, end=s.end, inside_min=s.inside_s / 60.0, outside_min=s.outside_s / 60.0,
        lost_min=s.lost_s / 60.0, losses=s.losses,
    )  # fmt: skip
    return MePublic(
        officer_id=found.officer_id, team=found.team, as_of=found.as_of, shift=shift,
        period_start=found.period_start, visits_today=found.visits_today,
        qualifying_visits_today=found.qualifying_visits_today,
        due=[DueRowPublic.model_validate(r, from_attributes=True) for r in found.due],
        windows=[WindowPublic.model_validate(w) for w in found.windows],
        visits=[VisitPublic.model_validate(v) for v in found.visits],
        inside_now=[InsideNowPublic.model_validate(i) for i in found.inside_now],
        radios=[RadioPublic.model_validate(r) for r in found.radios],
        feedback=[FeedbackPublic.of(f) for f in found.feedback],
    )  # fmt: skip


@router.get(
    "/stream",
    summary="Live events naming this officer as Server-Sent Events; resumable by Last-Event-ID",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_mine(
    ctx: Context,
    who: Officer,
    officer: Me,
    audit: Audit,
    last_event_id: Annotated[str | None, Header(description="seq of the last event received")] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_CURSOR)] = None,
) -> EventSourceResponse:
    return await open_stream(ctx, who, audit, EventFilter(officer_id=officer), officer, after, last_event_id)
