"""FastAPI dependencies as Annotated aliases: the service context, the caller and its role, the audit trail.

Authentication (Bearer API keys), roles and per-key rate limits live here beside the audit trail
because the trail needs the caller: a route that declares `Audit` gets it with no further wiring.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from api.context import ServiceContext, client_address
from api.url_key import KEY_IN_URL
from services.access.roles import UNKNOWN_KEY_HASH, Principal, Role, secret_matches, split_token
from services.store import Store


def get_context(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Context = Annotated[ServiceContext, Depends(get_context)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request, ctx: Context) -> Principal:
    """The caller of a request with a valid key (api.limits checks the key of a request with a
    body before the body is read, and leaves the caller in the request's state). A key that came
    in the URL (api/url_key.py) must be an ingest key: a URL is no place for any other."""
    known: Principal | None = getattr(request.state, "principal", None)
    who = known or await check_key(ctx, request.headers.get("authorization"), client_address(request.scope))
    if request.scope.get(KEY_IN_URL) and who.role is not Role.INGEST:
        raise _unauthorized(f"only an ingest key may be sent in the URL; send this {who.role.value} key in a header")
    return who


async def check_key(ctx: ServiceContext, header: str | None, client: str) -> Principal:
    """The caller behind `Authorization: Bearer <key>`; 401 otherwise. 429 past the key's rate,
    or once one client address has failed too many checks (guessing keys is throttled)."""
    now = time.monotonic()
    if ctx.failed_checks.exhausted(client, now):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed key checks", {"Retry-After": "1"})
    if not header:
        raise _unauthorized("missing Authorization: Bearer <API key>")
    scheme, _, token = header.partition(" ")
    parts = split_token(token.strip()) if scheme.lower() == "bearer" else None
    if parts is None:
        ctx.failed_checks.allow(client, now)
        raise _unauthorized("malformed API key")
    key_id, secret = parts
    row = await ctx.store.find_api_key(key_id)
    # Hashed whether the key exists or not, so both refusals cost the same.
    matches = secret_matches(secret, UNKNOWN_KEY_HASH if row is None else row.secret_hash)
    if row is None or not matches:
        ctx.failed_checks.allow(client, now)
        raise _unauthorized("unknown or revoked API key")
    if not ctx.limiter.allow(key_id, now):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "rate limit exceeded", headers={"Retry-After": "1"})
    return Principal(
        key_id=key_id, name=row.name, role=Role(row.role), officer_id=row.officer_id, device_id=row.device_id
    )


def _require(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.may(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role.value} role")
        return principal

    return check


#: Per role, the dependency admitting callers whose role grants it (403 for the others); a route's
#: role is the one whose check it depends on.
ROLE_CHECKS = {role: _require(role) for role in Role}

Ingest = Annotated[Principal, Depends(ROLE_CHECKS[Role.INGEST])]
Viewer = Annotated[Principal, Depends(ROLE_CHECKS[Role.VIEWER])]
Admin = Annotated[Principal, Depends(ROLE_CHECKS[Role.ADMIN])]
#: Officers, and viewers or admins acting for the front line (e.g. sending feedback).
Officer = Annotated[Principal, Depends(ROLE_CHECKS[Role.OFFICER])]


async def _bound_officer(principal: Officer) -> str:
    """The officer an officer key is bound to; 403 for a key bound to none (a viewer has no "own" data)."""
    if principal.officer_id is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs a key bound to an officer (--officer-id)")
    return principal.officer_id


#: The calling key's own officer id: routes showing "my" data read only this officer's.
Me = Annotated[str, Depends(_bound_officer)]

_PATH_PARAM = re.compile(r"\{[^}]*\}")


class AuditTrail:
    """Who this request showed or changed: the route records it, the dependency writes it.

    A route records the entry's target (device or fence id) and detail (e.g. the devices shown);
    a route that shows nothing personal on some path (dwell per fence) records nothing there.
    """

    def __init__(self, store: Store, who: Principal, action: str) -> None:
        self._store = store
        self.who = who
        self.action = action
        self._entry: tuple[str | None, dict[str, Any] | None] | None = None

    def record(self, target: str | None, detail: dict[str, Any] | None = None) -> None:
        self._entry = (target, detail)

    async def write(self, target: str | None, detail: dict[str, Any] | None = None) -> None:
        """Record and write now: for a route that must know the entry is stored before it goes on
        (an event stream it would otherwise have to close after the response)."""
        self.record(target, detail)
        await self.flush()

    async def flush(self) -> None:
        """Write the entry recorded, if any (once)."""
        if self._entry is not None:
            (target, detail), self._entry = self._entry, None
            await self._store.audit(self.who.key_id, self.who.role.value, self.action, target, detail)


async def audit_trail(
    request: Request, ctx: Context, who: Annotated[Principal, Depends(authenticate)]
) -> AsyncIterator[AuditTrail]:
    """The request's audit trail, written when the route function ends, before the response is sent.

    The action is the method and route path with every path parameter as `{id}` (`GET
    /v1/presence/devices/{id}`). An entry recorded is written even when the route then fails
    (a device looked up and not found was still asked for); a failed write fails the request,
    so nothing is shown unaudited.
    """
    trail = AuditTrail(ctx.store, who, f"{request.method} {_PATH_PARAM.sub('{id}', request.scope['route'].path)}")
    try:
        yield trail
    finally:
        await trail.flush()


#: Declared by every route that shows officer data or changes what is tracked (tests/api check it).
Audit = Annotated[AuditTrail, Depends(audit_trail, scope="function")]
