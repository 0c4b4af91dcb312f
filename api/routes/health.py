"""Liveness, readiness and Prometheus metrics: no authentication, for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Context

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Broker reachable, store open, partitions assigned")
async def readyz(ctx: Context) -> JSONResponse:
    checks = {"store": await ctx.store.healthy(), "broker": ctx.health.broker}
    if ctx.matcher_running:
        checks["consumer_assigned"] = ctx.health.assigned
    ready = all(checks.values())
    body: dict[str, object] = {"ready": ready, "checks": checks}
    if not ready and ctx.health.error:
        body["error"] = ctx.health.error
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(ctx: Context) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
