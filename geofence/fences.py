"""Fences (hot spots): validation of GeoJSON geometry and the metric buffer."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

#: Hot spots are micro-places an officer can see across; larger fences get a warning.
MICRO_PLACE_MAX_ACROSS_M = 300.0
#: Mean Earth radius (IUGG), for the local metric projection used by the buffer.
EARTH_RADIUS_M = 6_371_008.8
#: Segments per quarter circle when rounding a buffer's corners (about 1% area error).
BUFFER_QUAD_SEGS = 8


class FenceError(ValueError):
    """A fence that cannot be accepted; the message names the fence and the problem."""


@dataclass(frozen=True, slots=True)
class Fence:
    """A hot spot: the polygon as given and its effective (buffered) area, both WGS84."""

    id: str
    name: str | None
    buffer_m: float
    geometry: BaseGeometry
    area: BaseGeometry
    across_m: float

    @property
    def warnings(self) -> list[str]:
        if self.across_m > MICRO_PLACE_MAX_ACROSS_M:
            return [
                f"fence {self.id!r} is {self.across_m:.0f} m across (effective area), larger than "
                f"a micro-place ({MICRO_PLACE_MAX_ACROSS_M:.0f} m): officers cannot see across it"
            ]
        return []

    def to_feature(self) -> dict[str, Any]:
        """The fence as a GeoJSON Feature (geometry as given, not buffered)."""
        props: dict[str, Any] = {"id": self.id, "buffer_m": self.buffer_m}
        if self.name is not None:
            props["name"] = self.name
        return {
            "type": "Feature",
            "id": self.id,
            "properties": props,
            "geometry": shapely.geometry.mapping(self.geometry),
        }


def local_projection(lon0: float, lat0: float) -> tuple[Any, Any]:
    """Forward and inverse equirectangular projection centred on (lon0, lat0), in metres.

    Accurate to well under 0.1% across a few kilometres, which is all a hot spot spans.
    """
    kx = math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    ky = math.radians(1.0) * EARTH_RADIUS_M

    def forward(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(((xy[:, 0] - lon0) * kx, (xy[:, 1] - lat0) * ky))

    def inverse(xy: np.ndarray) -> np.ndarray:
        return np.column_stack((xy[:, 0] / kx + lon0, xy[:, 1] / ky + lat0))

    return forward, inverse


def _check_rings(fence_id: str, geometry: Mapping[str, Any]) -> None:
    gtype = geometry.get("type")
    coords = geometry.get("coordinates")
    if gtype not in ("Polygon", "MultiPolygon"):
        raise FenceError(f"fence {fence_id!r}: geometry type must be Polygon or MultiPolygon, got {gtype!r}")
    if not isinstance(coords, list) or not coords:
        raise FenceError(f"fence {fence_id!r}: geometry has no coordinates")
    polygons = [coords] if gtype == "Polygon" else coords
    for p, rings in enumerate(polygons):
        if not isinstance(rings, list) or not rings:
            raise FenceError(f"fence {fence_id!r}: polygon {p} has no rings")
        for r, ring in enumerate(rings):
            where = f"fence {fence_id!r}: polygon {p} ring {r}"
            try:
                arr = np.asarray(ring, dtype=np.float64)
            except (TypeError, ValueError):
                raise FenceError(f"{where}: coordinates must be [lon, lat] number pairs") from None
            if arr.ndim != 2 or arr.shape[1] < 2:
                raise FenceError(f"{where}: coordinates must be [lon, lat] number pairs")
            if len(arr) < 4:
                raise FenceError(f"{where}: has {len(arr)} points, a ring needs at least 4")
            if not np.isfinite(arr[:, :2]).all():
                raise FenceError(f"{where}: has non-finite coordinates")
            if (np.abs(arr[:, 0]) > 180).any() or (np.abs(arr[:, 1]) > 90).any():
                raise FenceError(f"{where}: coordinates out of range (lon in [-180, 180], lat in [-90, 90])")
            if not np.array_equal(arr[0, :2], arr[-1, :2]):
                raise FenceError(f"{where}: is not closed (first and last points differ)")


def make_fence(fence_id: str, geometry: Mapping[str, Any], *, name: str | None = None, buffer_m: float = 0.0) -> Fence:
    """Validate a GeoJSON Polygon/MultiPolygon and compute its effective area."""
    if not isinstance(fence_id, str) or not fence_id:
        raise FenceError(f"fence id must be a non-empty string, got {fence_id!r}")
    if (
        isinstance(buffer_m, bool)
        or not isinstance(buffer_m, int | float)
        or not math.isfinite(buffer_m)
        or buffer_m < 0
    ):
        raise FenceError(f"fence {fence_id!r}: buffer_m must be a number >= 0, got {buffer_m!r}")
    if name is not None and not isinstance(name, str):
        raise FenceError(f"fence {fence_id!r}: name must be a string, got {name!r}")
    if not isinstance(geometry, Mapping):
        raise FenceError(f"fence {fence_id!r}: geometry must be a GeoJSON object")
    _check_rings(fence_id, geometry)
    geom = shapely.geometry.shape(geometry)
    if not geom.is_valid:
        raise FenceError(f"fence {fence_id!r}: invalid geometry: {shapely.is_valid_reason(geom)}")
    if geom.is_empty or geom.area == 0:
        raise FenceError(f"fence {fence_id!r}: polygon has no area")
    centre = geom.centroid
    forward, inverse = local_projection(centre.x, centre.y)
    local = shapely.transform(geom, forward)
    local_area = local.buffer(float(buffer_m), quad_segs=BUFFER_QUAD_SEGS) if buffer_m > 0 else local
    area = shapely.transform(local_area, inverse) if buffer_m > 0 else geom
    across = 2.0 * float(shapely.minimum_bounding_radius(local_area))
    return Fence(id=fence_id, name=name, buffer_m=float(buffer_m), geometry=geom, area=area, across_m=across)
