"""Authentication (Bearer API keys), roles, per-key rate limits and the audit trail."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from api.context import ServiceContext
from api.deps import Context
from services.access.roles import Principal, Role, secret_matches, split_token


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request, ctx: Context) -> Principal:
    """The caller of a request with a valid `Authorization: Bearer <key>`; 401 otherwise."""
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing Authorization: Bearer <API key>")
    scheme, _, token = header.partition(" ")
    parts = split_token(token.strip()) if scheme.lower() == "bearer" else None
    if parts is None:
        raise _unauthorized("malformed API key")
    key_id, secret = parts
    row = await ctx.store.find_api_key(key_id)
    if row is None or not secret_matches(secret, row.secret_hash):
        raise _unauthorized("unknown or revoked API key")
    if not ctx.limiter.allow(key_id, time.monotonic()):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "rate limit exceeded", headers={"Retry-After": "1"})
    return Principal(key_id=key_id, name=row.name, role=Role(row.role))


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers whose role grants `role`; 403 for the others."""

    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.may(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role.value} role")
        return principal

    return check


Ingest = Annotated[Principal, Depends(require(Role.INGEST))]
Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


async def audit(
    ctx: ServiceContext, who: Principal, action: str, target: str | None, detail: dict[str, Any] | None = None
) -> None:
    """Write who did what to whom; called by every route that reveals or changes tracked data."""
    await ctx.store.audit(who.key_id, who.role.value, action, target, detail)
