"""Loading fences from a GeoJSON file, with one-line errors naming the file and the fence."""

from __future__ import annotations

import json
from pathlib import Path

from geofence.fences import Fence, FenceError, fences_from_geojson


class FenceFileError(ValueError):
    """A fences file that cannot be used; the message is one line."""


def load_fences(path: str | Path) -> list[Fence]:
    """Every fence in a GeoJSON FeatureCollection file, validated."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FenceFileError(f"cannot read fences file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FenceFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    try:
        return fences_from_geojson(doc)
    except FenceError as exc:
        raise FenceFileError(f"{path}: {exc}") from None
