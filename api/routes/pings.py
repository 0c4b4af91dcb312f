"""HTTP ingest for radio systems that cannot write to Kafka."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from api.bodies import read_body
from api.deps import Context, Ingest
from api.schemas.pings import PingIngestPublic, PingRejectPublic
from ingest.ping_message import BodyError, UnsupportedContentType, parse_http_body
from services.pipeline.http_ingest import produce_pings

router = APIRouter(prefix="/v1", tags=["pings"])


@router.post(
    "/pings",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PingIngestPublic,
    summary="Submit pings: a JSON array (or one object) or NDJSON",
    responses={
        413: {"description": "body too large"},
        415: {"description": "neither JSON nor NDJSON"},
        422: {"description": "no ping was valid"},
    },
)
async def post_pings(request: Request, ctx: Context, _: Ingest) -> JSONResponse:
    body = await read_body(request, ctx.settings.max_body_bytes)
    try:
        parsed = parse_http_body(body, request.headers.get("content-type", "application/json"))
    except UnsupportedContentType as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
    except BodyError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    rejected = [PingRejectPublic(index=r.index, field=r.field, reason=r.reason) for r in parsed.rejects]
    accepted = await produce_pings(ctx.producer, ctx.settings.topic_pings, parsed.batch, ctx.metrics)
    result = PingIngestPublic(accepted=accepted, rejected=len(rejected), errors=rejected)
    code = status.HTTP_202_ACCEPTED if accepted or not rejected else status.HTTP_422_UNPROCESSABLE_CONTENT
    return JSONResponse(result.model_dump(), status_code=code)
