"""Fence validation and the metric buffer: make_fence, figures by hand (GeoJSON documents: tests/ingest).

Metres to degrees: 1 deg lat = 111 195 m; 1 deg lon = 111 195 x cos(lat), i.e. 69 220 m at
London (lat 51.5, cos = 0.62251).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import shapely
from support.helpers import M_PER_DEG_LAT, m_per_deg_lon, square_geometry

from geofence.fences import FenceError, make_fence

LONDON_LAT = 51.5
LONDON_LON = -0.1


def london_square(side_m: float) -> dict[str, Any]:
    """An axis-aligned square side_m metres a side, south-west corner at (-0.1, 51.5)."""
    dlon = side_m / m_per_deg_lon(LONDON_LAT)
    dlat = side_m / M_PER_DEG_LAT
    coords = [
        [LONDON_LON, LONDON_LAT],
        [LONDON_LON + dlon, LONDON_LAT],
        [LONDON_LON + dlon, LONDON_LAT + dlat],
        [LONDON_LON, LONDON_LAT + dlat],
        [LONDON_LON, LONDON_LAT],
    ]
    return {"type": "Polygon", "coordinates": [coords]}


SQUARE = square_geometry(0.0, 0.0, 0.001)
FAR_SQUARE = square_geometry(0.01, 0.0, 0.001)
MULTI = {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"], FAR_SQUARE["coordinates"]]}
# A 0.003 deg square with a 0.001 deg hole in the middle.
WITH_HOLE = {
    "type": "Polygon",
    "coordinates": [
        [[0.0, 0.0], [0.003, 0.0], [0.003, 0.003], [0.0, 0.003], [0.0, 0.0]],
        [[0.001, 0.001], [0.001, 0.002], [0.002, 0.002], [0.002, 0.001], [0.001, 0.001]],
    ],
}


# ---------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("geometry", "inside", "outside"),
    [
        # the 0.001 deg square: its centre in, a point east of it out
        (SQUARE, [(0.0005, 0.0005)], [(0.0015, 0.0005)]),
        # a MultiPolygon of two squares 1 km apart: both centres in, the gap between them out
        (MULTI, [(0.0005, 0.0005), (0.0105, 0.0005)], [(0.005, 0.0005)]),
        # a polygon with a hole: the ring in, the hole out
        (WITH_HOLE, [(0.0005, 0.0005)], [(0.0015, 0.0015)]),
    ],
)
def test_make_fence_valid_polygon_accepted_area_is_polygon(geometry: dict, inside: list, outside: list) -> None:
    fence = make_fence("hs-1", geometry)
    assert (fence.id, fence.buffer_m) == ("hs-1", 0.0)
    assert [bool(shapely.intersects_xy(fence.area, x, y)) for x, y in inside] == [True] * len(inside)
    assert [bool(shapely.intersects_xy(fence.area, x, y)) for x, y in outside] == [False] * len(outside)


# ---------------------------------------------------------------------------- refused


BOW_TIE = {"type": "Polygon", "coordinates": [[[0.0, 0.0], [0.001, 0.001], [0.001, 0.0], [0.0, 0.001], [0.0, 0.0]]]}


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        (BOW_TIE, "'bad': invalid geometry: Self-intersection"),  # a bow-tie crosses itself
        (  # a bow-tie as the second part of a MultiPolygon
            {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"], BOW_TIE["coordinates"]]},
            "'bad': invalid geometry: Self-intersection",
        ),
        (  # a closed ring of 3 points (a line there and back)
            {"type": "Polygon", "coordinates": [[[0.0, 0.0], [0.001, 0.0], [0.0, 0.0]]]},
            "'bad': polygon 0 ring 0: has 3 points, a ring needs at least 4",
        ),
        (  # a hole with 3 points
            {
                "type": "Polygon",
                "coordinates": [SQUARE["coordinates"][0], [[0.0002, 0.0002], [0.0004, 0.0002], [0.0002, 0.0002]]],
            },
            "'bad': polygon 0 ring 1: has 3 points",
        ),
        (  # NaN latitude
            {"type": "Polygon", "coordinates": [[[0.0, 0.0], [0.001, math.nan], [0.001, 0.001], [0.0, 0.0]]]},
            "'bad': polygon 0 ring 0: has non-finite coordinates",
        ),
        (  # infinite longitude
            {"type": "Polygon", "coordinates": [[[0.0, 0.0], [math.inf, 0.0], [0.001, 0.001], [0.0, 0.0]]]},
            "'bad': polygon 0 ring 0: has non-finite coordinates",
        ),
        (  # four points, last differs from first
            {"type": "Polygon", "coordinates": [[[0.0, 0.0], [0.001, 0.0], [0.001, 0.001], [0.0, 0.001]]]},
            "'bad': polygon 0 ring 0: is not closed",
        ),
        (
            {"type": "Point", "coordinates": [0.0, 0.0]},
            "'bad': geometry type must be Polygon or MultiPolygon, got 'Point'",
        ),
        (
            {"type": "LineString", "coordinates": [[0.0, 0.0], [0.001, 0.0]]},
            "'bad': geometry type must be Polygon or MultiPolygon, got 'LineString'",
        ),
        ({"type": "Polygon", "coordinates": []}, "'bad': geometry has no coordinates"),  # empty
        (  # latitude 91
            {"type": "Polygon", "coordinates": [[[0.0, 90.5], [0.001, 90.5], [0.001, 91.0], [0.0, 90.5]]]},
            "'bad': polygon 0 ring 0: coordinates out of range",
        ),
        (  # all points on a line, no area (GEOS reports a self-intersection)
            {"type": "Polygon", "coordinates": [[[0.0, 0.0], [0.001, 0.0], [0.002, 0.0], [0.0, 0.0]]]},
            "'bad': invalid geometry",
        ),
    ],
)
def test_make_fence_invalid_geometry_refused_naming_fence(geometry: dict, message: str) -> None:
    with pytest.raises(FenceError) as caught:
        make_fence("bad", geometry)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "buffer_m",
    [
        -1.0,  # negative
        -0.001,  # barely negative
        "10",  # a string, even a numeric one
        None,  # null
        True,  # a bool is not a number here
        math.nan,  # not a number
        math.inf,  # not finite
    ],
)
def test_make_fence_bad_buffer_m_refused(buffer_m: Any) -> None:
    with pytest.raises(FenceError, match=r"fence 'hs-1': buffer_m must be a number >= 0"):
        make_fence("hs-1", SQUARE, buffer_m=buffer_m)


@pytest.mark.parametrize("fence_id", ["", None, 3])  # empty, missing, not a string
def test_make_fence_missing_or_non_string_id_refused(fence_id: Any) -> None:
    with pytest.raises(FenceError, match="fence id must be a non-empty string"):
        make_fence(fence_id, SQUARE)


# ---------------------------------------------------------------------------- micro-place warning


@pytest.mark.parametrize(
    ("side_m", "buffer_m", "warned"),
    [
        (500.0, 0.0, True),  # 500 m square: 707 m across the diagonal, not a micro-place
        (100.0, 0.0, False),  # 100 m square: 141 m across
        (200.0, 0.0, False),  # 200 m square: 283 m across, under 300
        (100.0, 100.0, True),  # 100 m square grown 100 m: 2 x (70.7 + 100) = 341 m across
    ],
)
def test_make_fence_micro_place_warning_above_300m_across(side_m: float, buffer_m: float, warned: bool) -> None:
    fence = make_fence("hs-9", london_square(side_m), buffer_m=buffer_m)
    assert bool(fence.warnings) is warned
    if warned:
        assert "'hs-9'" in fence.warnings[0]
        assert "micro-place" in fence.warnings[0]


# ---------------------------------------------------------------------------- metric buffer


def effective_size_m(fence_bounds: tuple[float, float, float, float]) -> tuple[float, float]:
    """(east-west, north-south) extent in metres of a bounding box at London."""
    minx, miny, maxx, maxy = fence_bounds
    return (maxx - minx) * m_per_deg_lon(LONDON_LAT), (maxy - miny) * M_PER_DEG_LAT


@pytest.mark.parametrize(
    ("buffer_m", "width_m", "across_m"),
    [
        # no buffer: 100 m wide; across (smallest enclosing circle) = the diagonal, 141.4 m
        (0.0, 100.0, 141.42),
        # buffer 50 m: 100 + 2 x 50 = 200 m wide (east-west and north-south alike, so metric, not
        # degrees); across = 2 x (half-diagonal 70.71 + 50) = 241.42 m through the rounded corners
        (50.0, 200.0, 241.42),
        # buffer 10 m: 120 m wide, across 2 x (70.71 + 10) = 161.42 m
        (10.0, 120.0, 161.42),
    ],
)
def test_make_fence_buffer_m_grows_effective_area_in_metres(buffer_m: float, width_m: float, across_m: float) -> None:
    fence = make_fence("hs-1", london_square(100.0), buffer_m=buffer_m)
    east_west, north_south = effective_size_m(fence.area.bounds)
    assert east_west == pytest.approx(width_m, rel=0.02)
    assert north_south == pytest.approx(width_m, rel=0.02)
    assert fence.across_m == pytest.approx(across_m, rel=0.02)


def test_make_fence_buffer_keeps_given_geometry_unbuffered() -> None:
    fence = make_fence("hs-1", london_square(100.0), buffer_m=50.0)
    east_west, north_south = effective_size_m(fence.geometry.bounds)
    assert (east_west, north_south) == (pytest.approx(100.0, rel=1e-6), pytest.approx(100.0, rel=1e-6))
    assert fence.to_feature()["properties"] == {"id": "hs-1", "buffer_m": 50.0}
