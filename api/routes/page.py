"""The control-room page at `/` and the officer's phone page at `/me`: public static files that hold no data.

The pages sign in with a viewer (an officer) key and read everything through the authenticated `/v1` API.
Its assets are built from `web/` into `api/static/` (`make web`); nothing is fetched from a CDN.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from api.deps import Context

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


#: The tiles of `--basemap`, served by this origin (api/routes/tiles.py).
OWN_TILES = "/tiles/{z}/{x}/{y}"


class PageConfig(BaseModel):
    map_tile_url: str | None
    map_attribution: str | None = None


def security_headers(tile_url: str | None) -> dict[str, str]:
    """Only this origin's scripts, styles and API (and `--basemap` tiles), plus the tile server's images
    when one is set."""
    tiles = f" {tile_origin(tile_url)}" if tile_url else ""
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        f"img-src 'self' data:{tiles}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def tile_origin(url: str) -> str:
    """The CSP source of a tile URL template: `https://{s}.tile.example.org/...` -> `https://*.tile.example.org`."""
    parts = urlsplit(url.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}"


@router.get("/")
async def index(ctx: Context) -> Response:
    page = STATIC / "index.html"
    if not page.exists():
        return PlainTextResponse("the control-room page is not built: run `make web` (npm ci && npm run build)", 503)
    return FileResponse(page, media_type="text/html", headers=security_headers(ctx.settings.map_tile_url))


@router.get("/me")
async def officer_page() -> Response:
    """The officer's phone page: signs in with an officer key, reads only /v1/me and its stream."""
    page = STATIC / "me.html"
    if not page.exists():
        return PlainTextResponse("the officer page is not built: run `make web` (npm ci && npm run build)", 503)
    return FileResponse(page, media_type="text/html", headers=security_headers(None))


@router.get("/config.json")
async def config(ctx: Context) -> PageConfig:
    """What the page needs before sign-in: the base-map tile URL (no data)."""
    if ctx.basemap is not None:
        return PageConfig(map_tile_url=OWN_TILES, map_attribution=ctx.basemap.info.attribution)
    return PageConfig(map_tile_url=ctx.settings.map_tile_url)


def mount(app: FastAPI) -> None:
    """`/`, `/config.json` and the assets under `/static/` (a clear 404 for each when not built)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
