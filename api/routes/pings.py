"""HTTP ingest for radio systems that cannot write to Kafka."""

from __future__ import annotations

import asyncio

import orjson
from aiokafka.errors import KafkaError
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from api.deps import Context
from api.schemas import IngestResult, RejectedPing
from api.security import Ingest
from geofence.events import format_ts
from geofence.pings import PingBatch
from ingest.ping_message import BodyError, parse_http_body

router = APIRouter(prefix="/v1", tags=["pings"])

#: How long ingest waits for Kafka to acknowledge before telling the client to retry.
PRODUCE_TIMEOUT_S = 10.0


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing it with 413 as soon as it passes the limit (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def ping_messages(batch: PingBatch) -> list[tuple[bytes, bytes]]:
    """(key, value) Kafka messages for validated pings, in SEMANTICS.md form."""
    out = []
    extras = batch.extras.tolist() if len(batch.extras) else [None] * len(batch)
    rows = zip(
        batch.device_id.tolist(), batch.ts.tolist(), batch.lat.tolist(), batch.lon.tolist(),
        batch.accuracy_m.tolist(), extras, strict=True,
    )  # fmt: skip
    for device, ts, lat, lon, acc, extra in rows:
        msg: dict[str, object] = {"device_id": device, "ts": format_ts(ts), "lat": lat, "lon": lon}
        if acc == acc:  # not NaN: accuracy known
            msg["accuracy_m"] = acc
        if extra:
            msg.update({k: v for k, v in extra.items() if v is not None})
        out.append((device.encode(), orjson.dumps(msg)))
    return out


@router.post(
    "/pings",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestResult,
    summary="Submit pings: a JSON array (or one object) or NDJSON",
    responses={413: {"description": "body too large"}, 422: {"description": "no ping was valid"}},
)
async def post_pings(request: Request, ctx: Context, _: Ingest) -> JSONResponse:
    body = await read_body(request, ctx.settings.max_body_bytes)
    try:
        parsed = parse_http_body(body, request.headers.get("content-type", "application/json"))
    except BodyError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    rejected = [RejectedPing(index=r.index, field=r.field, reason=r.reason) for r in parsed.rejects]
    messages = ping_messages(parsed.batch)
    if messages:
        producer = ctx.producer
        if producer is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Kafka is not reachable; retry later")
        try:
            futures = [await producer.send(ctx.settings.topic_pings, v, key=k) for k, v in messages]
            await asyncio.wait_for(asyncio.gather(*futures), PRODUCE_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"Kafka did not accept the pings ({type(exc).__name__}); retry"
            ) from None
        ctx.metrics.pings_ingested_http.inc(len(messages))
    result = IngestResult(accepted=len(messages), rejected=len(rejected), errors=rejected)
    code = status.HTTP_202_ACCEPTED if messages or not rejected else status.HTTP_422_UNPROCESSABLE_CONTENT
    return JSONResponse(result.model_dump(), status_code=code)
