"""Liveness, readiness and Prometheus metrics: no authentication (metrics: unless restricted)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Context, authenticate
from services.access.roles import Role

router = APIRouter(tags=["health"])

#: Checkpoints failed in a row before /readyz says not ready: one may meet a store restarting;
#: three in a row (seconds at the default interval) mean nothing is being saved.
CHECKPOINT_FAILURES_UNREADY = 3


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Broker reachable, store open, partitions assigned")
async def readyz(ctx: Context) -> JSONResponse:
    checks = {"store": await ctx.store.healthy(), "broker": ctx.health.broker}
    if ctx.matcher_running:
        checks["consumer_assigned"] = ctx.health.assigned
        checks["checkpoints"] = ctx.health.checkpoint_failures < CHECKPOINT_FAILURES_UNREADY
    ready = all(checks.values())
    body: dict[str, object] = {"ready": ready, "checks": checks}
    if not ready and ctx.health.error:
        body["error"] = ctx.health.error
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics (a viewer key is needed when metrics_public is off)")
async def metrics(request: Request, ctx: Context) -> Response:
    if not ctx.settings.metrics_public:
        who = await authenticate(request, ctx)
        if not who.may(Role.VIEWER):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs the viewer role")
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
