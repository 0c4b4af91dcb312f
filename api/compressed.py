"""Large cached answers sent gzip-compressed to the clients that accept it.

Presence of every hot spot or a week of dwell per hot spot is 0.2-0.8 MB of JSON, asked for many
times a second; compressed once per cached answer (`JsonBody`) it is a tenth of that on the wire,
for the server to send and the dashboard to receive. Every browser and HTTP library accepts gzip.
"""

from __future__ import annotations

from fastapi import Request, Response

from services.query.cache import JsonBody


def accepts_gzip(request: Request) -> bool:
    """Whether Accept-Encoding names gzip (or *) without q=0."""
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.partition(";")
        if name.strip().lower() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00"):
            return True
    return False


def json_response(request: Request, body: JsonBody) -> Response:
    """The body as application/json, gzip-encoded when it has a compressed form and the client accepts it."""
    headers = {"vary": "Accept-Encoding"}
    if body.gzipped is not None and accepts_gzip(request):
        return Response(body.gzipped, media_type="application/json", headers={**headers, "content-encoding": "gzip"})
    return Response(body.raw, media_type="application/json", headers=headers)
