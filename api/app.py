"""The FastAPI application: thin routes over the service context, services' refusals mapped to HTTP here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse

from api.context import ServiceContext
from api.limits import RequestGuard
from api.routes import (
    assignments,
    audit,
    briefings,
    calibration,
    compliance,
    dwell,
    events,
    feedback,
    fences,
    health,
    incidents,
    keys,
    me,
    osmand,
    page,
    pings,
    plans,
    presence,
    reports,
    tiles,
)
from api.url_key import UrlKey
from services.errors import Conflict, DomainError, Invalid, NotFound, Unavailable

#: The HTTP status of each kind of refusal a service raises.
STATUS: dict[type[DomainError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Invalid: status.HTTP_422_UNPROCESSABLE_CONTENT,
    Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def refusal(exc: DomainError) -> JSONResponse:
    """A service's refusal as HTTP: its status, and `detail` as FastAPI words its own errors (an
    invalid value as a validation error naming the body field, the rest as the message)."""
    detail: Any = exc.message
    if isinstance(exc, Invalid) and exc.loc:
        where = ".".join(map(str, exc.loc))
        detail = [{"loc": ["body", *exc.loc], "msg": f"{where}: {exc.message}", "type": "value_error"}]
    code = next(STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS)
    return JSONResponse({"detail": detail}, status_code=code)


def create_app(ctx: ServiceContext) -> FastAPI:
    """An app bound to one running service; nothing is read from module globals."""
    app = FastAPI(
        title="Hotspot Tracker",
        version="0.1.0",
        description="Geofence events and dwell for hot spots policing.",
        docs_url="/docs" if ctx.settings.api_docs else None,  # Swagger UI and ReDoc load from a CDN
        redoc_url="/redoc" if ctx.settings.api_docs else None,
    )
    app.state.ctx = ctx
    app.add_middleware(RequestGuard, ctx=ctx)
    app.add_middleware(UrlKey)  # added last, runs first: a ?key= is a header before RequestGuard checks it

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> Response:
        return refusal(exc)

    app.include_router(health.router)
    app.include_router(pings.router)
    app.include_router(osmand.router)
    app.include_router(fences.router)
    app.include_router(presence.router)
    app.include_router(dwell.router)
    app.include_router(events.router)
    app.include_router(audit.router)
    app.include_router(keys.router)
    app.include_router(incidents.router)
    app.include_router(calibration.router)
    app.include_router(plans.router)
    app.include_router(assignments.router)
    app.include_router(compliance.router)
    app.include_router(reports.router)
    app.include_router(briefings.router)
    app.include_router(me.router)
    app.include_router(feedback.router)
    app.include_router(tiles.router)
    page.mount(app)
    return app
