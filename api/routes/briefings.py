"""The sergeant's briefing pack: one team's page for the start of a shift, as HTML, PDF or JSON.

Audited: it shows officers' visits, time and radios (their location history, summed).
"""

from __future__ import annotations

import time
from typing import Annotated, Literal, NoReturn
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Response, status

from api.deps import Audit, Context, Viewer
from api.schemas.briefings import BriefingPublic
from ingest.rules import ID
from services.errors import Invalid
from services.measures.local_weeks import day_of, parse_day
from services.reports.briefing import MEDIA_TYPES, briefing, render

router = APIRouter(prefix="/v1", tags=["reports"])


def _refuse(name: str, message: str) -> NoReturn:
    detail = [{"loc": ["query", name], "msg": message, "type": "value_error"}]
    raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


@router.get(
    "/briefings",
    summary="A team's briefing pack: last shift's dosage vs plan, officers, hot spots behind, feedback, signal loss",
    response_model=BriefingPublic,
    responses={200: {"content": {t.split(";")[0]: {} for t in MEDIA_TYPES.values()}}},
)
async def get_briefing(
    ctx: Context,
    _: Viewer,
    audit: Audit,
    team: Annotated[str, Query(description="the team of the plans (and assignments)")],
    date: Annotated[
        str | None,
        Query(description="the local day of the briefing, YYYY-MM-DD (last shift: the day before); default today"),
    ] = None,
    format: Annotated[Literal["html", "pdf", "json"], Query()] = "html",
) -> Response | BriefingPublic:
    tz = ctx.settings.timezone
    reason = ID.reason(team)
    if reason is not None:
        _refuse("team", f"team: {reason}")
    try:
        day = day_of(time.time(), tz) if date is None else parse_day(date, tz)
    except ValueError as exc:
        _refuse("date", str(exc))
    try:
        made = await briefing(ctx.store, ctx.settings, team, day)
    except Invalid as exc:
        _refuse(str(exc.loc[0]), exc.message)
    audit.record(None, {"team": team, "date": day.day.isoformat(), "format": format, "devices": list(made.devices)})
    if format == "json":
        return BriefingPublic.of(made)
    plain = f"briefing-{day.day.isoformat()}.{format}"  # the team's name may hold anything: quoted below
    named = quote(f"briefing-{team}-{day.day.isoformat()}.{format}", safe="")
    disposition = "inline" if format == "html" else "attachment"
    return Response(
        await render(made, format),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{named}"},
    )
