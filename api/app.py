"""The FastAPI application: thin routes over the service context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from api.context import ServiceContext
from api.routes import (
    audit,
    calibration,
    compliance,
    dwell,
    events,
    fences,
    health,
    incidents,
    page,
    pings,
    plans,
    presence,
    reports,
)


def create_app(ctx: ServiceContext) -> FastAPI:
    """An app bound to one running service; nothing is read from module globals."""
    app = FastAPI(
        title="Hotspot Tracker",
        version="0.1.0",
        description="Geofence events and dwell for hot spots policing.",
    )
    app.state.ctx = ctx

    @app.middleware("http")
    async def refuse_nul(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """No id or filter may hold a NUL byte: PostgreSQL text cannot store one (it would be a 500)."""
        if "\x00" in request.scope["path"] or b"%00" in request.scope.get("query_string", b""):
            return JSONResponse({"detail": "the request URL holds a NUL byte"}, status_code=400)
        return await call_next(request)

    app.include_router(health.router)
    app.include_router(pings.router)
    app.include_router(fences.router)
    app.include_router(presence.router)
    app.include_router(dwell.router)
    app.include_router(events.router)
    app.include_router(audit.router)
    app.include_router(incidents.router)
    app.include_router(calibration.router)
    app.include_router(plans.router)
    app.include_router(compliance.router)
    app.include_router(reports.router)
    page.mount(app)
    return app
