"""API keys in the URL, for handset apps (Traccar Client, OsmAnd) that can set only a server URL.

Such an app is configured with ``https://host/v1/osmand?key=<ingest key>``. Before anything
else reads the request, ``UrlKey`` takes ``key`` out of the query string and hands it on as the
``Authorization: Bearer`` header the rest of the API checks (api/limits.py before a body,
api/deps.py for every route); an Authorization header already present wins. The scope is
changed in place, so the key is not in the query string that uvicorn's access log prints (it
logs the scope the app was given), nor in any route's parameters, error message or audit entry.
A proxy in front logs the URL before we see it: keep its access log off for these paths.

Only an ingest key may come this way (api/deps.py refuses the others with 401): a key in a URL
lands in app settings, screenshots and proxy logs, and a leaked ingest key bound to a device
(``hotspots keys create --role ingest --device-id PHONE1``) can post for that device only.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Receive, Scope, Send

#: The query parameter a handset app's key comes in.
PARAM = "key"
#: Set in the ASGI scope when the request's key came in the URL.
KEY_IN_URL = "hotspots.key_in_url"


class UrlKey:
    """Pure ASGI middleware: ``?key=`` out of the URL, into the Authorization header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"")
        if scope["type"] == "http" and b"key" in query:
            kept: list[bytes] = []
            token = None
            for part in query.split(b"&"):
                name, _, value = part.partition(b"=")
                if unquote_plus(name.decode("latin-1"), "latin-1") == PARAM:
                    token = unquote_plus(value.decode("latin-1"), "latin-1")  # bytes kept 1:1 for the header
                else:
                    kept.append(part)
            if token is not None:
                scope["query_string"] = b"&".join(kept)
                if not any(name == b"authorization" for name, _ in scope["headers"]):
                    scope["headers"] = [*scope["headers"], (b"authorization", f"Bearer {token}".encode("latin-1"))]
                    scope[KEY_IN_URL] = True
        await self.app(scope, receive, send)
