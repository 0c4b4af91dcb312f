"""Reading fences from GeoJSON (a file, an API body): features and collections into Fences.

Input parsing only: ids and names follow the input rules (ingest.rules), the geometry and the
buffer are checked by geofence.fences.make_fence, the domain's constructor.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from geofence.fences import Fence, FenceError, make_fence
from ingest.rules import BUFFER_MAX_M, ID, NAME, show


class FenceFileError(ValueError):
    """A fences file that cannot be used; the message is one line."""


def load_fences(path: str | Path, *, max_buffer_m: float = BUFFER_MAX_M) -> list[Fence]:
    """Every fence in a GeoJSON FeatureCollection file, validated."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise FenceFileError(f"cannot read fences file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(text)  # half the time of json.loads on 2,000 fences
    except orjson.JSONDecodeError as exc:
        raise FenceFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    try:
        return fences_from_geojson(doc, max_buffer_m=max_buffer_m)
    except FenceError as exc:
        raise FenceFileError(f"{path}: {exc}") from None


def fence_from_feature(
    feature: Mapping[str, Any], position: int | None = None, *, max_buffer_m: float = BUFFER_MAX_M
) -> Fence:
    """A GeoJSON Feature with `id` (top level or in properties), `name` and `buffer_m` (at most
    max_buffer_m: the buffer of a district took seconds to build and froze the service)."""
    label = f"feature {position}" if position is not None else "feature"
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        raise FenceError(f"{label}: expected a GeoJSON Feature")
    props = feature.get("properties") or {}
    if not isinstance(props, Mapping):
        raise FenceError(f"{label}: properties must be an object")
    fence_id = props.get("id", feature.get("id"))
    if isinstance(fence_id, int) and not isinstance(fence_id, bool):
        fence_id = str(fence_id)
    if not isinstance(fence_id, str) or not fence_id:
        raise FenceError(f"{label}: needs a string id (Feature.id or properties.id)")
    reason = ID.reason(fence_id)
    if reason is not None:
        raise FenceError(f"{label}: id: {reason}")
    name = props.get("name")
    reason = NAME.reason(name)
    if reason is not None:
        raise FenceError(f"fence {show(fence_id)}: name: {reason}")
    geometry = feature.get("geometry")
    if not isinstance(geometry, Mapping):
        raise FenceError(f"fence {fence_id!r}: has no geometry")
    buffer_m = props.get("buffer_m", 0.0)
    if isinstance(buffer_m, int | float) and not isinstance(buffer_m, bool) and buffer_m > max_buffer_m:
        raise FenceError(f"fence {show(fence_id)}: buffer_m must be at most {max_buffer_m:g} m, got {show(buffer_m)}")
    return make_fence(fence_id, geometry, name=name, buffer_m=buffer_m)


def fences_from_geojson(doc: Mapping[str, Any], *, max_buffer_m: float = BUFFER_MAX_M) -> list[Fence]:
    """Every fence of a FeatureCollection (or a single Feature); ids must be unique."""
    if not isinstance(doc, Mapping):
        raise FenceError("fences must be a GeoJSON FeatureCollection or Feature")
    if doc.get("type") == "Feature":
        features: list[Any] = [doc]
    elif doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
        features = doc["features"]
    else:
        raise FenceError("fences must be a GeoJSON FeatureCollection or Feature")
    fences = [fence_from_feature(f, i, max_buffer_m=max_buffer_m) for i, f in enumerate(features)]
    seen: set[str] = set()
    for fence in fences:
        if fence.id in seen:
            raise FenceError(f"fence {fence.id!r}: id appears more than once")
        seen.add(fence.id)
    return fences
