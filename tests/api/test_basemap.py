"""`--basemap FILE.mbtiles`: the service serves its own base-map tiles, so an offline control room
needs nothing from outside. The MBTiles files are made here, as the spec lays them out (TMS rows)."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError
from support.api import Api, serve_api

from services.query.basemap import Basemap, BasemapError
from services.settings import Settings

ATTRIBUTION = "© OpenStreetMap contributors"


def png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (256, 256), colour).save(out, format="PNG")
    return out.getvalue()


def make_mbtiles(path: Path, tiles: dict[tuple[int, int, int], bytes], fmt: str = "png") -> Path:
    """An MBTiles 1.3 file; `tiles` is keyed by XYZ (z, x, y) and stored by TMS row."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        db.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
        meta = {"name": "camden", "format": fmt, "attribution": ATTRIBUTION, "minzoom": "0", "maxzoom": "1"}
        db.executemany("INSERT INTO metadata VALUES (?, ?)", meta.items())
        db.executemany(
            "INSERT INTO tiles VALUES (?, ?, ?, ?)",
            [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()],
        )
    db.close()
    return path


TILES = {(0, 0, 0): png((200, 200, 200)), (1, 0, 0): png((255, 0, 0)), (1, 0, 1): png((0, 0, 255))}


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    basemap = make_mbtiles(tmp_path / "camden.mbtiles", TILES)
    async with serve_api(db_url, Settings(basemap=basemap)) as served:
        yield served


async def test_basemap_tile_served_by_xyz_row_from_the_tms_file(api: Api) -> None:
    north = await api.client.get("/tiles/1/0/0")
    south = await api.client.get("/tiles/1/0/1")
    assert north.status_code == south.status_code == 200
    assert north.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(north.content)).getpixel((5, 5)) == (255, 0, 0)  # y 0 is the north row
    assert Image.open(io.BytesIO(south.content)).getpixel((5, 5)) == (0, 0, 255)


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/tiles/1/1/1", 404, "no tile at 1/1/1"),
        ("/tiles/1/2/0", 422, "x: 2 is beyond zoom 1"),
        ("/tiles/1/0/5", 422, "y: 5 is beyond zoom 1"),
        ("/tiles/31/0/0", 422, "z"),
        ("/tiles/1/-1/0", 422, "x"),
    ],
)
async def test_basemap_missing_or_impossible_tile_is_refused_naming_it(
    api: Api, path: str, status: int, says: str
) -> None:
    r = await api.client.get(path)
    assert r.status_code == status
    assert says in r.text


async def test_basemap_page_uses_own_tiles_credit_of_the_file_and_csp_admits_only_this_server(api: Api) -> None:
    config = (await api.client.get("/config.json")).json()
    assert config == {"map_tile_url": "/tiles/{z}/{x}/{y}", "map_attribution": ATTRIBUTION}
    page = await api.client.get("/")
    if page.status_code == 200:  # the page is built (make web); the CSP is what matters
        assert "img-src 'self' data:;" in page.headers["content-security-policy"]


async def test_no_basemap_tiles_answer_404_saying_how_to_give_one(db_url: str) -> None:
    async with serve_api(db_url) as api:
        r = await api.client.get("/tiles/0/0/0")
    assert r.status_code == 404
    assert "--basemap" in r.text


def test_basemap_refused_when_not_mbtiles_or_not_raster_or_beside_a_tile_url(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mbtiles"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(BasemapError, match="not an MBTiles file"):
        Basemap(junk)
    vector = make_mbtiles(tmp_path / "vector.mbtiles", {(0, 0, 0): b"\x1a\x00"}, fmt="pbf")
    with pytest.raises(BasemapError, match="'pbf' tiles"):
        Basemap(vector)
    with pytest.raises(ValidationError, match="give one base map"):
        Settings(basemap=vector, map_tile_url="https://tile.openstreetmap.org/{z}/{x}/{y}.png")
