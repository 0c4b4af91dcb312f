"""Raster MBTiles served by the service itself, so an offline control room gets streets under its
hot spots with nothing fetched from outside.

MBTiles 1.3 (https://github.com/mapbox/mbtiles-spec/blob/master/1.3/spec.md) is an SQLite file with
a `metadata(name, value)` table and a `tiles(zoom_level, tile_column, tile_row, tile_data)` table
whose rows count from the south (TMS), while web maps count from the north (XYZ): row = 2^z - 1 - y.
The standard library's sqlite3 reads it; the file is opened read-only and each read runs in a worker
thread, so a large tile set never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

#: Raster formats of the spec and the media type each is served as.
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


class BasemapError(ValueError):
    """The file is not a raster MBTiles set this service can serve (says which and why)."""


@dataclass(frozen=True, slots=True)
class BasemapInfo:
    media_type: str
    attribution: str | None
    min_zoom: int
    max_zoom: int


class Basemap:
    """One open MBTiles file; `tile` answers XYZ coordinates."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            meta = dict(self._db.execute("SELECT name, value FROM metadata").fetchall())
            zooms = self._db.execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
        except sqlite3.Error as e:
            raise BasemapError(f"basemap: {path} is not an MBTiles file ({e})") from None
        fmt = str(meta.get("format", "png")).lower()
        if fmt not in MEDIA_TYPES:
            self._db.close()
            raise BasemapError(f"basemap: {path} holds {fmt!r} tiles; only raster {sorted(MEDIA_TYPES)} are served")
        self.info = BasemapInfo(
            MEDIA_TYPES[fmt],
            meta.get("attribution"),
            int(meta.get("minzoom", zooms[0] or 0)),
            int(meta.get("maxzoom", zooms[1] or 0)),
        )
        self._lock = threading.Lock()  # one connection, shared by the worker threads

    def _read(self, z: int, x: int, y: int) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                (z, x, (1 << z) - 1 - y),
            ).fetchone()
        return None if row is None else bytes(row[0])

    async def tile(self, z: int, x: int, y: int) -> bytes | None:
        """The tile's bytes, or None when the set has none there (x and y must be within zoom z)."""
        return await asyncio.to_thread(self._read, z, x, y)

    def close(self) -> None:
        self._db.close()
