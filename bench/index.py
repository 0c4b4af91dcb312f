"""Point-in-fence lookup for a batch: the three index designs we measured, same answers.

- rtree (libspatialindex) bulk `intersection_v` on point boxes, then an exact test;
- a shapely STRtree `query(points, predicate="intersects")` (one GEOS point per ping);
- the cell table FenceIndex uses: built from the STRtree once, no geometry per ping.
"""

from __future__ import annotations

import time

import numpy as np
import rtree
import shapely

from geofence.index import FenceIndex
from ingest.geojson_fences import fences_from_geojson
from services.workload import make_workload


def _best(fn: object, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def bench_index() -> None:
    print("index, one batch of all pings against 2,000 fences (best of 3)")
    w = make_workload(2_000, 600, 3 * 3600)
    fences = fences_from_geojson(w.fences)
    lon, lat = w.pings.lon, w.pings.lat
    n = len(lon)
    areas = np.array([f.area for f in fences], dtype=object)
    shapely.prepare(areas)
    tree = shapely.STRtree(areas)
    bounds = shapely.bounds(areas)
    rt = rtree.index.Index((i, tuple(b), None) for i, b in enumerate(bounds))
    index = FenceIndex(fences)
    xy = np.column_stack((lon, lat))

    def with_rtree() -> int:
        ids, counts = rt.intersection_v(xy, xy)
        pi = np.repeat(np.arange(n), counts.astype(np.int64))
        return int(shapely.intersects_xy(areas[ids.astype(np.int64)], lon[pi], lat[pi]).sum())

    def with_strtree() -> int:
        return len(tree.query(shapely.points(lon, lat), predicate="intersects")[0])

    def with_cells() -> int:
        return len(index.match(lon, lat)[0])

    assert with_rtree() == with_strtree() == with_cells()
    for name, fn in (("rtree intersection_v", with_rtree), ("STRtree query", with_strtree), ("cell table", with_cells)):
        seconds = _best(fn)
        print(f"  {name:<22} {n / seconds:>14,.0f} pings/s")
