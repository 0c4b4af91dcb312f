"""Fences (hot spots) as GeoJSON: read by viewers, changed by admins, picked up live by matchers."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, status

from api.deps import Context
from api.routes.pings import read_body
from api.schemas import FenceChange
from api.security import Admin, Viewer, audit
from geofence.fences import Fence, FenceError, fence_from_feature, fences_from_geojson
from services.store.plans import list_plans

router = APIRouter(prefix="/v1/fences", tags=["fences"])

#: The largest fences body accepted (a bulk upload of thousands of hot spots fits).
MAX_FENCES_BODY = 20 * 1024 * 1024


def _feature(fence: Fence, version: int | None = None) -> dict[str, Any]:
    out = fence.to_feature()
    if version is not None:
        out["properties"]["fence_set_version"] = version
    return out


async def _geojson_body(request: Request) -> Any:
    body = await read_body(request, MAX_FENCES_BODY)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body is not valid JSON: {exc}") from None


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


@router.get("", summary="Every fence, as a GeoJSON FeatureCollection")
async def list_fences(ctx: Context, _: Viewer) -> dict[str, Any]:
    fences, version = await ctx.store.load_fences()
    return {"type": "FeatureCollection", "fence_set_version": version, "features": [_feature(f) for f in fences]}


@router.get("/{fence_id}", summary="One fence, as a GeoJSON Feature")
async def get_fence(fence_id: str, ctx: Context, _: Viewer) -> dict[str, Any]:
    found = await ctx.store.load_fence(fence_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no fence {fence_id!r}")
    return _feature(*found)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=FenceChange,
    summary="Create or replace fences: a Feature, or a FeatureCollection for bulk upsert",
)  # fmt: skip
async def upsert_fences(request: Request, ctx: Context, who: Admin) -> FenceChange:
    try:
        fences = fences_from_geojson(await _geojson_body(request))
    except FenceError as exc:
        raise _unprocessable(str(exc)) from None
    version = await ctx.store.upsert_fences(fences)
    await audit(ctx, who, "POST /v1/fences", None, {"fences": [f.id for f in fences], "version": version})
    return FenceChange(version=version, fences=[f.id for f in fences], warnings=[w for f in fences for w in f.warnings])


@router.put("/{fence_id}", response_model=FenceChange, summary="Create or replace one fence")
async def put_fence(fence_id: str, request: Request, ctx: Context, who: Admin) -> FenceChange:
    doc = await _geojson_body(request)
    if isinstance(doc, dict):
        given = (doc.get("properties") or {}).get("id", doc.get("id"))
        if given is not None and str(given) != fence_id:
            raise _unprocessable(f"feature id {given!r} does not match the path's {fence_id!r}")
        doc = {**doc, "id": fence_id, "properties": {**(doc.get("properties") or {}), "id": fence_id}}
    try:
        fence = fence_from_feature(doc)
    except FenceError as exc:
        raise _unprocessable(str(exc)) from None
    version = await ctx.store.upsert_fences([fence])
    await audit(ctx, who, "PUT /v1/fences/{id}", fence_id, {"version": version})
    return FenceChange(version=version, fences=[fence_id], warnings=fence.warnings)


@router.delete("/{fence_id}", response_model=FenceChange, summary="Delete a fence; its open visits end")
async def delete_fence(fence_id: str, ctx: Context, who: Admin) -> FenceChange:
    planned = [p.plan_id for p in await list_plans(ctx.store, fence_id=fence_id)]
    if planned:  # a plan's dosage would silently stop being deliverable: make the admin decide
        detail = f"fence {fence_id!r} is in patrol plan(s) {', '.join(planned)}: delete or change them first"
        raise HTTPException(status.HTTP_409_CONFLICT, detail)
    version = await ctx.store.delete_fence(fence_id)
    if version is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no fence {fence_id!r}")
    await audit(ctx, who, "DELETE /v1/fences/{id}", fence_id, {"version": version})
    return FenceChange(version=version, fences=[fence_id], warnings=[])
