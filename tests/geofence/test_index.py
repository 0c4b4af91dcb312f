"""FenceIndex.match against a brute-force shapely `intersects` of every point with every fence.

Random small fences (axis-aligned and rotated rectangles, triangles, some buffered) and points
around them, with a fixed numpy seed; the points include every vertex of every effective area,
points exactly on axis-aligned edges, a lattice over each fence's bounding box (so points fall on
the index's cell edges) and uniform random points.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from support.helpers import square_fence

from geofence.fences import Fence, make_fence
from geofence.index import FenceIndex


def ring(points: list[tuple[float, float]]) -> list[list[float]]:
    return [[x, y] for x, y in points] + [[points[0][0], points[0][1]]]


def random_fence(rng: np.random.Generator, i: int, spread: float, size: float) -> Fence:
    """Fence i: a rectangle (axis-aligned or rotated) or a triangle, size..3 x size degrees across."""
    cx, cy = rng.uniform(-spread, spread, 2)
    hw, hh = rng.uniform(size / 2, 1.5 * size, 2)
    kind = i % 4
    if kind in (0, 1):  # axis-aligned rectangle
        corners = [(cx - hw, cy - hh), (cx + hw, cy - hh), (cx + hw, cy + hh), (cx - hw, cy + hh)]
    elif kind == 2:  # rotated rectangle
        a = rng.uniform(0.1, 1.4)
        c, s = math.cos(a), math.sin(a)
        corners = [(cx + x * c - y * s, cy + x * s + y * c) for x, y in [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]]
    else:  # triangle
        t0 = rng.uniform(0, 2 * math.pi)
        corners = [(cx + hw * math.cos(t0 + k * 2.1), cy + hw * math.sin(t0 + k * 2.1)) for k in range(3)]
    buffer_m = float(rng.choice([0.0, 0.0, 0.0, 5.0, 20.0])) if i % 4 != 0 else 0.0  # kind 0 never buffered
    return make_fence(f"f{i}", {"type": "Polygon", "coordinates": [ring(corners)]}, buffer_m=buffer_m)


def boundary_points(fences: list[Fence]) -> tuple[np.ndarray, np.ndarray]:
    """Every vertex of every effective area, and a 9 x 9 lattice over every fence's bounding box."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for fence in fences:
        coords = shapely.get_coordinates(fence.area)
        xs.append(coords[:, 0])
        ys.append(coords[:, 1])
        minx, miny, maxx, maxy = fence.area.bounds
        gx, gy = np.meshgrid(np.linspace(minx, maxx, 9), np.linspace(miny, maxy, 9))
        xs.append(gx.ravel())
        ys.append(gy.ravel())
    return np.concatenate(xs), np.concatenate(ys)


def edge_midpoints(fence: Fence) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints of an axis-aligned rectangle's edges: exactly on the boundary."""
    minx, miny, maxx, maxy = fence.area.bounds
    midx, midy = (minx + maxx) / 2, (miny + maxy) / 2
    return np.array([midx, maxx, midx, minx]), np.array([miny, midy, maxy, midy])


def brute_force(fences: list[Fence], lon: np.ndarray, lat: np.ndarray) -> set[tuple[int, int]]:
    points = shapely.points(lon, lat)
    pairs: set[tuple[int, int]] = set()
    for j, fence in enumerate(fences):
        hit = shapely.intersects(fence.area, points)
        pairs |= {(int(i), j) for i in np.flatnonzero(hit)}
    return pairs


def matched(index: FenceIndex, lon: np.ndarray, lat: np.ndarray) -> set[tuple[int, int]]:
    pi, fi = index.match(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return set(zip(pi.tolist(), fi.tolist(), strict=True))


def scene(
    seed: int, n_fences: int, spread: float, size: float, n_random: int
) -> tuple[list[Fence], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    fences = [random_fence(rng, i, spread, size) for i in range(n_fences)]
    bx, by = boundary_points(fences)
    ex, ey = zip(*(edge_midpoints(f) for f in fences[::4]), strict=True)  # the axis-aligned, unbuffered ones
    pad = spread + 3 * size
    rx, ry = rng.uniform(-pad, pad, n_random), rng.uniform(-pad, pad, n_random)
    lon = np.concatenate([bx, *ex, rx])
    lat = np.concatenate([by, *ey, ry])
    return fences, lon, lat


@pytest.mark.parametrize(
    ("seed", "n_fences", "spread", "size"),
    [
        (0, 1, 0.002, 0.0005),  # a single fence
        (1, 5, 0.002, 0.0005),  # a few, overlapping, 50-150 m fences
        (2, 30, 0.005, 0.0005),  # a busy neighbourhood, many overlaps
        (3, 80, 0.05, 0.0003),  # a city: sparse small fences, most cells empty
        (4, 40, 2.0, 0.0005),  # a region: cells capped by MAX_CELLS
        (5, 20, 0.003, 0.002),  # large fences relative to the spread
    ],
)
def test_match_random_points_agrees_with_brute_force_intersects(
    seed: int, n_fences: int, spread: float, size: float
) -> None:
    fences, lon, lat = scene(seed, n_fences, spread, size, n_random=3000)
    want = brute_force(fences, lon, lat)
    assert matched(FenceIndex(fences), lon, lat) == want
    assert len(want) > n_fences  # the scene does exercise hits


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_match_vertices_and_edges_count_as_inside(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fences = [random_fence(rng, i, 0.002, 0.0005) for i in range(0, 24, 4)]  # axis-aligned, unbuffered
    index = FenceIndex(fences)
    for j, fence in enumerate(fences):
        coords = shapely.get_coordinates(fence.area)  # the 5 ring points (4 corners)
        ex, ey = edge_midpoints(fence)
        lon, lat = np.concatenate([coords[:, 0], ex]), np.concatenate([coords[:, 1], ey])
        assert {(i, j) for i in range(9)} <= matched(index, lon, lat)


def test_match_pairs_sorted_by_point_then_fence() -> None:
    fences, lon, lat = scene(2, 30, 0.005, 0.0005, n_random=500)
    pi, fi = FenceIndex(fences).match(lon, lat)
    keys = list(zip(pi.tolist(), fi.tolist(), strict=True))
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_match_empty_index_no_pairs() -> None:
    index = FenceIndex([])
    pi, fi = index.match(np.array([0.0, 0.0005, 13.4]), np.array([0.0, 0.0005, 52.5]))
    assert len(index) == 0
    assert (pi.tolist(), fi.tolist()) == ([], [])


def test_match_no_points_no_pairs() -> None:
    pi, fi = FenceIndex([square_fence("A")]).match(np.empty(0), np.empty(0))
    assert (pi.tolist(), fi.tolist()) == ([], [])


@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        (179.9, -89.9),  # the other side of the world
        (-0.5, 0.0005),  # 55 km west
        (0.0015, 0.0015),  # just beyond the grid's corner
        (0.001 + 1e-9, 0.0005),  # a hair east of A, inside B's bounding box row
        (-1e-12, -1e-12),  # a hair south-west of A's corner, below the grid
        (0.0025 + 1e-9, 0.001 + 1e-9),  # a hair beyond the far corner of the last fence
    ],
)
def test_match_points_outside_all_fences_no_pairs(lon: float, lat: float) -> None:
    index = FenceIndex([square_fence("A"), square_fence("C", 0.0015, 0.0)])
    assert matched(index, np.array([lon]), np.array([lat])) == set()


def big_fences() -> list[Fence]:
    """Forty 0.0004 deg squares (44 m), 0.001 deg apart, and two big fences spanning thousands of cells.

    "L": an L-shaped 0.02 deg polygon; "ring": a 0.02 deg square with a 0.01 deg hole.
    """
    small = [square_fence(f"s{i}", 0.001 * (i % 10), 0.001 * (i // 10), 0.0004) for i in range(40)]
    l_shape = [(0.0, 0.0), (0.02, 0.0), (0.02, 0.005), (0.005, 0.005), (0.005, 0.02), (0.0, 0.02)]
    big_l = make_fence("L", {"type": "Polygon", "coordinates": [ring(l_shape)]})
    hole = [(0.015, 0.015), (0.015, 0.025), (0.025, 0.025), (0.025, 0.015)]
    outer = [(0.01, 0.01), (0.03, 0.01), (0.03, 0.03), (0.01, 0.03)]
    big_ring = make_fence("ring", {"type": "Polygon", "coordinates": [ring(outer), ring(hole)]}, buffer_m=3.0)
    return [*small, big_l, big_ring]


def test_match_fence_spanning_many_cells_agrees_with_brute_force() -> None:
    fences = big_fences()
    rng = np.random.default_rng(7)
    bx, by = boundary_points(fences)
    lon = np.concatenate([bx, rng.uniform(-0.001, 0.031, 20000)])
    lat = np.concatenate([by, rng.uniform(-0.001, 0.031, 20000)])
    assert matched(FenceIndex(fences), lon, lat) == brute_force(fences, lon, lat)


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (0.0025, 0.0025, {"L"}),  # in L's corner block, north of the small squares' rows
        (0.015, 0.0025, {"L"}),  # in L's long east arm, far from its corner
        (0.0025, 0.015, {"L"}),  # in L's long north arm
        (0.015, 0.015, {"ring"}),  # the hole's corner: inside (the 3 m buffer shrinks the hole)
        (0.02, 0.02, set()),  # in the hole
        (0.012, 0.028, {"ring"}),  # in the ring
        (0.00005, 0.00005, {"s0", "L"}),  # in a small square, inside L too
        (0.01, 0.01, {"ring"}),  # the ring's outer corner; outside L (its arms are 0.005 wide)
    ],
)
def test_match_fence_spanning_many_cells_hand_points(lon: float, lat: float, expected: set[str]) -> None:
    index = FenceIndex(big_fences())
    _, fi = index.match(np.array([lon]), np.array([lat]))
    assert {index.fences[j].id for j in fi.tolist()} == expected
