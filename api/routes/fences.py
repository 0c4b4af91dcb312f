"""Fences (hot spots) as GeoJSON: read by viewers, changed by admins, picked up live by matchers."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, status

from api.bodies import read_body
from api.deps import Admin, Audit, Context, Viewer
from api.schemas.fences import FenceChangePublic
from geofence.fences import Fence, FenceError
from ingest.geojson_fences import fence_from_feature, fences_from_geojson

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
    "", status_code=status.HTTP_201_CREATED, response_model=FenceChangePublic,
    summary="Create or replace fences: a Feature, or a FeatureCollection for bulk upsert",
)  # fmt: skip
async def upsert_fences(request: Request, ctx: Context, _: Admin, audit: Audit) -> FenceChangePublic:
    try:
        fences = fences_from_geojson(await _geojson_body(request), max_buffer_m=ctx.settings.max_buffer_m)
    except FenceError as exc:
        raise _unprocessable(str(exc)) from None
    version = await ctx.store.upsert_fences(fences)
    audit.record(None, {"fences": [f.id for f in fences], "version": version})
    return FenceChangePublic(
        version=version, fences=[f.id for f in fences], warnings=[w for f in fences for w in f.warnings]
    )


@router.put("/{fence_id}", response_model=FenceChangePublic, summary="Create or replace one fence")
async def put_fence(fence_id: str, request: Request, ctx: Context, _: Admin, audit: Audit) -> FenceChangePublic:
    doc = await _geojson_body(request)
    if isinstance(doc, dict):
        given = (doc.get("properties") or {}).get("id", doc.get("id"))
        if given is not None and str(given) != fence_id:
            raise _unprocessable(f"feature id {given!r} does not match the path's {fence_id!r}")
        doc = {**doc, "id": fence_id, "properties": {**(doc.get("properties") or {}), "id": fence_id}}
    try:
        fence = fence_from_feature(doc, max_buffer_m=ctx.settings.max_buffer_m)
    except FenceError as exc:
        raise _unprocessable(str(exc)) from None
    version = await ctx.store.upsert_fences([fence])
    audit.record(fence_id, {"version": version})
    return FenceChangePublic(version=version, fences=[fence_id], warnings=fence.warnings)


@router.delete("/{fence_id}", response_model=FenceChangePublic, summary="Delete a fence; its open visits end",
               responses={409: {"description": "a patrol plan names the fence"}})  # fmt: skip
async def delete_fence(fence_id: str, ctx: Context, _: Admin, audit: Audit) -> FenceChangePublic:
    version = await ctx.store.delete_fence(fence_id)  # Conflict (409) while a patrol plan names it
    if version is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no fence {fence_id!r}")
    audit.record(fence_id, {"version": version})
    return FenceChangePublic(version=version, fences=[fence_id], warnings=[])
