"""The FastAPI application: thin routes over the service context."""

from __future__ import annotations

from fastapi import FastAPI

from api.context import ServiceContext
from api.routes import audit, dwell, events, fences, health, pings, presence


def create_app(ctx: ServiceContext) -> FastAPI:
    """An app bound to one running service; nothing is read from module globals."""
    app = FastAPI(
        title="Hotspot Tracker",
        version="0.1.0",
        description="Geofence events and dwell for hot spots policing.",
    )
    app.state.ctx = ctx
    app.include_router(health.router)
    app.include_router(pings.router)
    app.include_router(fences.router)
    app.include_router(presence.router)
    app.include_router(dwell.router)
    app.include_router(events.router)
    app.include_router(audit.router)
    return app
