"""HTTP ingest for radio systems that cannot write to Kafka: JSON pings, TETRA LIP records, NMEA sentences.

Every way in answers alike (202 with the accepted count and each refused item's reason) and
produces the valid pings to the pings topic, which the matcher reads as any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from api.bodies import read_body
from api.context import ServiceContext
from api.deps import Context, Ingest
from api.limits import ERRORS_LISTED
from api.schemas.pings import PingIngestPublic, PingRejectPublic
from ingest.lip_records import parse_lip_body
from ingest.nmea import NmeaError
from ingest.ping_files import parse_nmea_body
from ingest.ping_message import BodyError, ParsedPings, UnsupportedContentType, parse_http_body
from ingest.rules import InputError
from services.access.devices import keep_own_pings
from services.pipeline.http_ingest import produce_pings

router = APIRouter(prefix="/v1", tags=["pings"])
_Route = TypeVar("_Route", bound=Callable[..., Any])
_JSON_OR_NDJSON: dict[int | str, dict[str, Any]] = {415: {"description": "neither JSON nor NDJSON"}}


def _ingest(path: str, summary: str, responses: dict[int | str, dict[str, Any]]) -> Callable[[_Route], _Route]:
    """A POST route of one input format, answering as every other (202 and PingIngestPublic)."""
    responses = {413: {"description": "body too large"}, **responses}
    return router.post(
        path,
        status_code=status.HTTP_202_ACCEPTED,
        response_model=PingIngestPublic,
        summary=summary,
        responses=responses,
    )


@_ingest(
    "/pings",
    "Submit pings: a JSON array (or one object) or NDJSON",
    {**_JSON_OR_NDJSON, 422: {"description": "no ping was valid"}},
)
async def post_pings(request: Request, ctx: Context, who: Ingest) -> JSONResponse:
    body = await read_body(request, ctx.settings.max_body_bytes)
    content_type = request.headers.get("content-type", "application/json")
    explain_max = ERRORS_LISTED if who.device_id is None else None  # keep_own_pings needs every refusal
    parsed = await _parsed(partial(parse_http_body, body, content_type, explain_max=explain_max))
    return await _answer(ctx, keep_own_pings(parsed, who, body, content_type, ERRORS_LISTED))


@_ingest(
    "/pings/lip",
    "Submit TETRA LIP records {issi, received_at, payload (hex)}: a JSON array (or one object) or NDJSON",
    {**_JSON_OR_NDJSON, 422: {"description": "no record was valid"}},
)
async def post_lip(request: Request, ctx: Context, who: Ingest) -> JSONResponse:
    body = await read_body(request, ctx.settings.max_body_bytes)
    content_type = request.headers.get("content-type", "application/json")
    parsed = await _parsed(partial(parse_lip_body, body, content_type))
    return await _answer(ctx, keep_own_pings(parsed, who, body, content_type, ERRORS_LISTED))


@_ingest(
    "/pings/nmea",
    "Submit one device's NMEA 0183 sentences (RMC, GGA), one per line; index = line - 1",
    {
        403: {"description": "a device-bound key posting for another device"},
        422: {"description": "no sentence gave a fix"},
    },
)
async def post_nmea(
    request: Request, ctx: Context, who: Ingest, device_id: Annotated[str, Query(description="the sending device")]
) -> JSONResponse:
    if who.device_id is not None and who.device_id != device_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, who.device_refusal(device_id))
    body = await read_body(request, ctx.settings.max_body_bytes)
    return await _answer(ctx, await _parsed(partial(parse_nmea_body, body, device_id)))


async def _parsed(parse: Callable[[], ParsedPings]) -> ParsedPings:
    """Run a body's parser off the event loop (a big body takes a while); a body unusable as a whole is 4xx."""
    try:
        return await asyncio.to_thread(parse)
    except UnsupportedContentType as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
    except (BodyError, NmeaError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    except InputError as exc:  # the device id of an NMEA post
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


async def _answer(ctx: ServiceContext, parsed: ParsedPings) -> JSONResponse:
    """Produce the valid pings; 202 with what became of each item (422 when none was valid)."""
    listed = parsed.rejects[:ERRORS_LISTED]
    errors = [PingRejectPublic(index=r.index, field=r.field, reason=r.reason) for r in listed]
    accepted = await produce_pings(ctx.producer, ctx.settings.topic_pings, parsed.batch, ctx.metrics, ctx.journal)
    result = PingIngestPublic(
        accepted=accepted, rejected=parsed.rejected, errors=errors, errors_unlisted=parsed.rejected - len(errors)
    )
    code = status.HTTP_202_ACCEPTED if accepted or not parsed.rejected else status.HTTP_422_UNPROCESSABLE_CONTENT
    return JSONResponse(result.model_dump(), status_code=code)
