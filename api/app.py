"""The FastAPI application: thin routes over the service context, services' refusals mapped to HTTP here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response, status
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
    )
    app.state.ctx = ctx

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> Response:
        return refusal(exc)

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
