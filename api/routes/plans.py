"""Patrol plans: read by viewers, written by admins; the same document as `hotspots plans load`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status

from api.deps import Admin, Audit, Context, Viewer
from api.schemas.plans import PlanChangePublic, PlanPublic, PlansPublic
from geofence.plans import Plan, PlanError
from ingest.plan_file import parse_plan, parse_plans
from services.store.plans import delete_plan, get_plan, list_plans, upsert_plans

router = APIRouter(prefix="/v1/plans", tags=["plans"])


def _model(plan: Plan) -> PlanPublic:
    return PlanPublic.model_validate(plan.to_dict())


def _unprocessable(exc: PlanError) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": ["body", *exc.loc], "msg": exc.message, "type": "value_error"}]
    )


@router.get("", response_model=PlansPublic, summary="Every plan, optionally of one fence or team")
async def plans(
    ctx: Context,
    _: Viewer,
    fence_id: Annotated[str | None, Query()] = None,
    team: Annotated[str | None, Query()] = None,
) -> PlansPublic:
    return PlansPublic(plans=[_model(p) for p in await list_plans(ctx.store, fence_id=fence_id, team=team)])


@router.get("/{plan_id}", response_model=PlanPublic, summary="One plan")
async def plan(plan_id: str, ctx: Context, _: Viewer) -> PlanPublic:
    found = await get_plan(ctx.store, plan_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no plan {plan_id!r}")
    return _model(found)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=PlanChangePublic,
    summary="Create or replace plans: a document {timezone?, plans: [...]}, all or none",
)  # fmt: skip
async def post_plans(
    document: Annotated[dict[str, Any], Body()], ctx: Context, _: Admin, audit: Audit
) -> PlanChangePublic:
    try:
        parsed = parse_plans(document)
        await upsert_plans(ctx.store, parsed)  # PlanError at plans[i].fence_id for an unknown fence
    except PlanError as exc:
        raise _unprocessable(exc) from None
    ids = [p.plan_id for p in parsed]
    audit.record(None, {"plans": ids})
    return PlanChangePublic(plans=ids)


@router.put("/{plan_id}", response_model=PlanChangePublic, summary="Create or replace one plan")
async def put_plan(
    plan_id: str, body: Annotated[dict[str, Any], Body()], ctx: Context, _: Admin, audit: Audit
) -> PlanChangePublic:
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
    audit.record(plan_id)
    return PlanChangePublic(plans=[plan_id])


@router.delete("/{plan_id}", response_model=PlanChangePublic, summary="Delete a plan")
async def remove_plan(plan_id: str, ctx: Context, _: Admin, audit: Audit) -> PlanChangePublic:
    if not await delete_plan(ctx.store, plan_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no plan {plan_id!r}")
    audit.record(plan_id)
    return PlanChangePublic(plans=[plan_id])
