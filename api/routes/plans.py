"""Patrol plans: read by viewers, written by admins; the same document as `hotspots plans load`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import BaseModel, Field

from api.deps import Context
from api.security import Admin, Viewer, audit
from geofence.plans import Plan, PlanError, parse_plan, parse_plans
from services.store.plans import delete_plan, get_plan, list_plans, upsert_plans

router = APIRouter(prefix="/v1/plans", tags=["plans"])


class WindowModel(BaseModel):
    days: list[str] = Field(description="days the window STARTS on, local time: mon..sun")
    start: str = Field(description="local HH:MM")
    end: str = Field(description="local HH:MM; before start: the window crosses midnight")
    visits: int = Field(description="planned qualifying visits in each occurrence")


class PlanModel(BaseModel):
    plan_id: str
    fence_id: str
    team: str | None
    target_pct: float = Field(description="compliance target, % of planned visits")
    min_visit_min: float = Field(description="shorter visits do not qualify")
    target_visit_min: float = Field(description="longer visits are 'long'")
    max_gap_min: float | None = Field(description="longest allowed gap between qualifying visits in a window")
    windows: list[WindowModel]
    timezone: str | None = Field(None, description="IANA zone of the windows; null: the service's timezone setting")


class PlanList(BaseModel):
    plans: list[PlanModel]


class PlanChange(BaseModel):
    plans: list[str] = Field(description="ids of the plans changed")


def _model(plan: Plan) -> PlanModel:
    return PlanModel.model_validate(plan.to_dict())


def _unprocessable(exc: PlanError) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": ["body", *exc.loc], "msg": exc.message, "type": "value_error"}]
    )


@router.get("", response_model=PlanList, summary="Every plan, optionally of one fence or team")
async def plans(
    ctx: Context,
    _: Viewer,
    fence_id: Annotated[str | None, Query()] = None,
    team: Annotated[str | None, Query()] = None,
) -> PlanList:
    return PlanList(plans=[_model(p) for p in await list_plans(ctx.store, fence_id=fence_id, team=team)])


@router.get("/{plan_id}", response_model=PlanModel, summary="One plan")
async def plan(plan_id: str, ctx: Context, _: Viewer) -> PlanModel:
    found = await get_plan(ctx.store, plan_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no plan {plan_id!r}")
    return _model(found)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=PlanChange,
    summary="Create or replace plans: a document {timezone?, plans: [...]}, all or none",
)  # fmt: skip
async def post_plans(document: Annotated[dict[str, Any], Body()], ctx: Context, who: Admin) -> PlanChange:
    try:
        parsed = parse_plans(document)
        await upsert_plans(ctx.store, parsed)  # PlanError at plans[i].fence_id for an unknown fence
    except PlanError as exc:
        raise _unprocessable(exc) from None
    ids = [p.plan_id for p in parsed]
    await audit(ctx, who, "POST /v1/plans", None, {"plans": ids})
    return PlanChange(plans=ids)


@router.put("/{plan_id}", response_model=PlanChange, summary="Create or replace one plan")
async def put_plan(plan_id: str, body: Annotated[dict[str, Any], Body()], ctx: Context, who: Admin) -> PlanChange:
    given = body.get("plan_id", plan_id)
    if given != plan_id:
        raise _unprocessable(PlanError(("plan_id",), f"plan id {given!r} does not match the path's {plan_id!r}"))
    try:
        parsed = parse_plan({**body, "plan_id": plan_id})
    except PlanError as exc:
        raise _unprocessable(exc) from None
    try:
        await upsert_plans(ctx.store, [parsed])
    except PlanError as exc:  # the only store-side refusal: an unknown fence
        raise _unprocessable(PlanError(("fence_id",), exc.message)) from None
    await audit(ctx, who, "PUT /v1/plans/{id}", plan_id)
    return PlanChange(plans=[plan_id])


@router.delete("/{plan_id}", response_model=PlanChange, summary="Delete a plan")
async def remove_plan(plan_id: str, ctx: Context, who: Admin) -> PlanChange:
    if not await delete_plan(ctx.store, plan_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no plan {plan_id!r}")
    await audit(ctx, who, "DELETE /v1/plans/{id}", plan_id)
    return PlanChange(plans=[plan_id])
