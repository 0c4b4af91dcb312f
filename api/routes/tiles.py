"""`/tiles/{z}/{x}/{y}`: the base map of `--basemap FILE.mbtiles`, so the page needs no outside server.

Public like the page itself: map tiles hold no officer data, and the page's map loads them as
images, which cannot carry an API key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from api.deps import Context
from services.errors import Invalid, NotFound

router = APIRouter(include_in_schema=False)

#: Tiles change only when the service restarts with another file.
TILE_CACHE = "public, max-age=86400"


@router.get("/tiles/{z}/{x}/{y}")
async def tile(
    ctx: Context,
    z: Annotated[int, Path(ge=0, le=30)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
) -> Response:
    if ctx.basemap is None:
        raise NotFound("no base map: start the service with --basemap FILE.mbtiles")
    for name, value in (("x", x), ("y", y)):
        if value >= 1 << z:
            raise Invalid(f"{name}: {value} is beyond zoom {z} (at most {(1 << z) - 1})", "path", name)
    data = await ctx.basemap.tile(z, x, y)
    if data is None:
        raise NotFound(f"no tile at {z}/{x}/{y} in the base map")
    return Response(data, media_type=ctx.basemap.info.media_type, headers={"Cache-Control": TILE_CACHE})
