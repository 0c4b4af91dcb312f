"""Handset apps (Traccar Client, OsmAnd): one position per request in the OsmAnd protocol.

The apps retry until they get a 2xx, and a Traccar Client keeps a refused position at the head
of its queue, so the answers are the ones they act on: 200 (empty body, as Traccar answers) once
the ping is in the pings topic, 400 naming the field for a position no retry can fix, 401/403
for a wrong key, 503 to retry later. ingest/osmand.py decodes; the ping then goes the way of
every HTTP ping (services/pipeline/http_ingest.py).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status

from api.bodies import read_body
from api.deps import Context, Ingest
from ingest.osmand import parse_request
from ingest.rules import InputError
from services.pipeline.http_ingest import produce_pings

router = APIRouter(prefix="/v1", tags=["pings"])


#: What both methods answer (the apps use either: OsmAnd a GET, Traccar Client a POST).
ANSWERS: dict[str, Any] = {
    "status_code": status.HTTP_200_OK,
    "response_class": Response,
    "summary": "One position from a handset app (OsmAnd protocol: query, form or Traccar Client JSON)",
    "responses": {
        200: {"description": "the ping is in the pings topic (empty body)"},
        400: {"description": "a parameter is missing or invalid; detail names it"},
        403: {"description": "the key is bound to another device"},
        503: {"description": "Kafka is not reachable; retry"},
    },
}


@router.get("/osmand", operation_id="osmand_get", **ANSWERS)
@router.post("/osmand", operation_id="osmand_post", **ANSWERS)
async def osmand(request: Request, ctx: Context, who: Ingest) -> Response:
    body = await read_body(request, ctx.settings.max_body_bytes) if request.method == "POST" else b""
    content_type = request.headers.get("content-type", "")
    try:
        fix = parse_request(request.scope["query_string"], body, content_type, time.time())
    except InputError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if not who.posts_for(fix.device_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, who.device_refusal(fix.device_id))
    await produce_pings(ctx.producer, ctx.settings.topic_pings, fix.to_batch(), ctx.metrics, ctx.journal)
    return Response(status_code=status.HTTP_200_OK)
