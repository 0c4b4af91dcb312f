"""Feedback from the front line: officers (or viewers, admins) send it; supervisors list, reply, close,
and confirm a GPS report's calibration check, which applies its buffer to the hot spot."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.deps import Admin, Audit, Context, Officer, Viewer
from api.schemas import MAX_CURSOR
from api.schemas.calibration import BufferChangePublic, FenceBufferPublic
from api.schemas.feedback import (
    ConfirmCreate,
    ConfirmPublic,
    FeedbackCreate,
    FeedbackListPublic,
    FeedbackPublic,
    Kind,
    ReplyCreate,
)
from services.measures import feedback
from services.store.feedback import State, list_feedback

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])
FeedbackId = Annotated[int, Path(ge=0, le=MAX_CURSOR)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=FeedbackPublic,
             summary="Flag what is wrong: GPS, a boundary, the activity, other")  # fmt: skip
async def post_feedback(body: FeedbackCreate, ctx: Context, who: Officer, audit: Audit) -> FeedbackPublic:
    made = await feedback.submit(
        ctx.store, ctx.settings, who, kind=body.kind, text=body.text, fence_id=body.fence_id,
        device_id=body.device_id, lat=body.lat, lon=body.lon, at=body.at,
    )  # fmt: skip
    audit.record(made.device_id or made.fence_id, {"feedback_id": made.feedback_id, "check_id": made.check_id})
    return FeedbackPublic.of(made)


@router.get("", response_model=FeedbackListPublic, summary="Reports for supervisors, oldest first; paged by `after`")
async def get_feedback_list(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    team: Annotated[str | None, Query()] = None,
    fence_id: Annotated[str | None, Query()] = None,
    kind: Annotated[Kind | None, Query()] = None,
    state: Annotated[State | None, Query()] = None,
    after: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FeedbackListPublic:
    rows = await list_feedback(
        ctx.store, team=team, fence_id=fence_id, kind=kind, state=state, after_id=after, limit=limit
    )
    audit.record(fence_id, {"feedback": [r.feedback_id for r in rows]})
    return FeedbackListPublic(
        feedback=[FeedbackPublic.of(r) for r in rows], next_after=rows[-1].feedback_id if len(rows) == limit else None
    )


@router.post("/{feedback_id}/reply", response_model=FeedbackPublic, summary="Answer a report: the officer sees it")
async def post_reply(
    feedback_id: FeedbackId, body: ReplyCreate, ctx: Context, who: Viewer, audit: Audit
) -> FeedbackPublic:
    done = await feedback.reply(ctx.store, who, feedback_id, body.text)
    audit.record(done.officer_id, {"feedback_id": feedback_id})
    return FeedbackPublic.of(done)


@router.post("/{feedback_id}/close", response_model=FeedbackPublic, summary="Close a report")
async def post_close(feedback_id: FeedbackId, ctx: Context, who: Viewer, audit: Audit) -> FeedbackPublic:
    done = await feedback.close(ctx.store, who, feedback_id)
    audit.record(done.officer_id, {"feedback_id": feedback_id})
    return FeedbackPublic.of(done)


@router.post("/{feedback_id}/confirm", response_model=ConfirmPublic,
             summary="Confirm a GPS report: apply the buffer its calibration check recommends")  # fmt: skip
async def post_confirm(
    feedback_id: FeedbackId, body: ConfirmCreate, ctx: Context, _: Admin, audit: Audit
) -> ConfirmPublic:
    done, change = await feedback.confirm(ctx.store, ctx.settings, feedback_id, body.fence_ids, body.quantile)
    audit.record(done.device_id, {"feedback_id": feedback_id, "fences": list(change.old_buffer_m),
                                  "buffer_m": change.buffer_m, "version": change.version})  # fmt: skip
    return ConfirmPublic(
        feedback=FeedbackPublic.of(done),
        change=BufferChangePublic(
            version=change.version, buffer_m=change.buffer_m, quantile=body.quantile, based_on=None,
            fences=[FenceBufferPublic(fence_id=i, old_buffer_m=old, new_buffer_m=change.buffer_m)
                    for i, old in change.old_buffer_m.items()],
            warnings=change.warnings,
        ),
    )  # fmt: skip
