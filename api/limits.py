"""What every request goes through before a route sees it: URL, key, body size and time, headers.

A route that declares a body model has its body read and parsed by FastAPI before any of its
dependencies run, authentication included: so an anonymous client could make the service hold
and parse a 400 MB body before it answered 401. Here, for every request with a body under
/v1/, the key is checked first (the caller is left in the request state for api.deps), the
body is refused with 413 past `max_request_bytes` (declared or streamed), and a client that
stops sending its body is cut off with 408 after `body_timeout_s`. A client that goes away
mid-body is logged in one line, not as a traceback. A URL holding a NUL byte is refused (400).

Responses get the headers the issue of officers' positions needs: `no-store` (no cache keeps
them), `nosniff`, and on HTML from the API (the weekly report) a Content Security Policy that
allows no script and no remote resource.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.context import ServiceContext, client_address
from api.deps import check_key

log = logging.getLogger(__name__)

#: Refused items an HTTP answer lists (the rest are counted): the first few show what is wrong.
ERRORS_LISTED = 100
#: The HTML the API serves (reports) may show inline styles and data: images, nothing else.
HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


class RequestGuard:
    """The pure ASGI middleware of the module docstring (no per-request task, streams untouched)."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # No id or filter may hold a NUL byte: PostgreSQL text cannot store one (it would be a 500).
            await _refuse(
                scope, receive, send, HTTPException(status.HTTP_400_BAD_REQUEST, "the request URL holds a NUL byte")
            )
            return
        settings = self.ctx.settings
        limit = settings.max_request_bytes
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(scope, receive, send, _too_large(limit))
            return
        has_body = declared not in (None, "0") or "transfer-encoding" in headers
        if has_body and scope["path"].startswith("/v1/"):
            try:
                who = await check_key(self.ctx, headers.get("authorization"), client_address(scope))
            except HTTPException as exc:
                await _refuse(scope, receive, send, exc)
                return
            scope.setdefault("state", {})["principal"] = who
        received = 0

        async def guarded_receive() -> Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), settings.body_timeout_s)
            except TimeoutError:
                raise HTTPException(
                    status.HTTP_408_REQUEST_TIMEOUT, f"no body data for {settings.body_timeout_s:g} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.setdefault("x-content-type-options", "nosniff")
                if scope["path"].startswith("/v1/"):
                    out.setdefault("cache-control", "no-store")
                    if out.get("content-type", "").startswith("text/html"):
                        out.setdefault("content-security-policy", HTML_CSP)
            await send(message)

        try:
            await self.app(scope, guarded_receive if has_body else receive, secured_send)
        except ClientDisconnect:
            log.info("%s %s: the client went away before its body was read", scope["method"], scope["path"])


def _too_large(limit: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body over {limit} bytes")


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: HTTPException) -> None:
    """Answer exc before the body is read (the server then closes the connection)."""
    headers: Any = exc.headers
    response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
    response.headers["x-content-type-options"] = "nosniff"
    await response(scope, receive, send)
