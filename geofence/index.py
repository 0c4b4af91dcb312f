"""An immutable spatial index over fences' effective areas.

Two levels, both built once per snapshot:
- an STRtree (packed R-tree) over the effective areas finds, for every cell of a uniform
  grid laid over the fences, the fences that touch the cell and whether they cover it whole;
- a dense cell table then answers a batch of points with arithmetic and array gathers:
  no geometry object is made per point, and only points in cells a fence boundary crosses
  get an exact point-in-polygon test (against prepared polygons, vectorised).
A snapshot never changes; when fences change a new one is built and swapped in whole, so
a batch always sees one consistent set of fences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import shapely

from geofence.fences import Fence
from geofence.pings import FloatArray, IntArray, ObjArray

#: Cells per fence side: finer cells mean more cells wholly inside a fence (no exact test).
CELLS_PER_FENCE = 4
#: Upper bound on the dense cell table, so fences spread over a country stay cheap.
MAX_CELLS = 4_000_000


class FenceIndex:
    """Fences by position, an STRtree over their effective areas and a cell table."""

    __slots__ = (
        "_areas",
        "_cell",
        "_cell_fence",
        "_cell_start",
        "_cell_sure",
        "_nx",
        "_ny",
        "_origin",
        "_tree",
        "fences",
        "ids",
        "position",
        "version",
    )

    def __init__(self, fences: Iterable[Fence], version: int | None = None) -> None:
        self.fences: tuple[Fence, ...] = tuple(fences)
        self.version = version
        ids = np.empty(len(self.fences), dtype=object)
        ids[:] = [f.id for f in self.fences]
        self.ids: ObjArray = ids
        self.position: dict[str, int] = {f.id: i for i, f in enumerate(self.fences)}
        if len(self.position) != len(self.fences):
            raise ValueError("fence ids must be unique within an index")
        self._areas = np.array([f.area for f in self.fences], dtype=object)
        shapely.prepare(self._areas)
        self._tree = shapely.STRtree(self._areas)
        self._build_cells()

    def __len__(self) -> int:
        return len(self.fences)

    def query_bbox(self, minx: float, miny: float, maxx: float, maxy: float) -> IntArray:
        """Positions of fences whose effective area meets the box."""
        hits: IntArray = self._tree.query(shapely.box(minx, miny, maxx, maxy), predicate="intersects")
        return np.sort(hits)

    def _build_cells(self) -> None:
        empty = np.empty(0, dtype=np.int64)
        self._origin = (0.0, 0.0, 1.0)
        self._nx = self._ny = 0
        self._cell = np.empty(0, dtype=np.int32)
        self._cell_start, self._cell_fence, self._cell_sure = np.zeros(1, dtype=np.int64), empty, np.empty(0, bool)
        if not self.fences:
            return
        bounds = shapely.bounds(self._areas)
        x0, y0 = bounds[:, 0].min(), bounds[:, 1].min()
        x1, y1 = bounds[:, 2].max(), bounds[:, 3].max()
        extent = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
        size = float(np.median(extent)) / CELLS_PER_FENCE
        size = max(size, math.sqrt((x1 - x0) * (y1 - y0) / MAX_CELLS), 1e-9)
        nx, ny = int((x1 - x0) / size) + 1, int((y1 - y0) / size) + 1
        # Every cell some fence's bounding box touches, once.
        ix0 = ((bounds[:, 0] - x0) / size).astype(np.int64)
        iy0 = ((bounds[:, 1] - y0) / size).astype(np.int64)
        ix1 = np.minimum(((bounds[:, 2] - x0) / size).astype(np.int64), nx - 1)
        iy1 = np.minimum(((bounds[:, 3] - y0) / size).astype(np.int64), ny - 1)
        wide, high = ix1 - ix0 + 1, iy1 - iy0 + 1
        per = wide * high
        owner = np.repeat(np.arange(len(per)), per)
        k = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
        cells = np.unique((iy0[owner] + k // wide[owner]) * nx + ix0[owner] + k % wide[owner])
        cx, cy = cells % nx, cells // nx
        # Grown a hair so a point floored into the wrong cell by rounding still finds its fences.
        eps = size * 1e-6
        boxes = shapely.box(
            x0 + cx * size - eps, y0 + cy * size - eps, x0 + (cx + 1) * size + eps, y0 + (cy + 1) * size + eps
        )
        ci, fi = self._tree.query(boxes, predicate="intersects")
        sure = shapely.covers(self._areas[fi], boxes[ci])
        order = np.lexsort((fi, ci))
        ci, fi, sure = ci[order], fi[order], sure[order]
        table = np.full(nx * ny, -1, dtype=np.int32)
        used, first = np.unique(ci, return_index=True)
        table[cells[used]] = np.arange(len(used), dtype=np.int32)
        self._origin = (float(x0), float(y0), size)
        self._nx, self._ny = nx, ny
        self._cell = table
        self._cell_start = np.append(first, len(ci)).astype(np.int64)
        self._cell_fence = fi.astype(np.int64)
        self._cell_sure = sure

    def match(self, lon: FloatArray, lat: FloatArray) -> tuple[IntArray, IntArray]:
        """All (point, fence) pairs with the point inside the fence, boundary included.

        Pairs come sorted by point, then fence. A point on a cell edge is looked up in one
        cell only, so a fence that merely touches that cell's neighbour is never missed:
        such a fence also touches the cell looked up (cells are closed boxes).
        """
        empty = np.empty(0, dtype=np.int64)
        if not len(self.fences) or not len(lon):
            return empty, empty
        x0, y0, size = self._origin
        fx = np.floor((lon - x0) / size)
        fy = np.floor((lat - y0) / size)
        inside = (fx >= 0) & (fx < self._nx) & (fy >= 0) & (fy < self._ny)
        pts = np.flatnonzero(inside)
        if not len(pts):
            return empty, empty
        cell = self._cell[fy[pts].astype(np.int64) * self._nx + fx[pts].astype(np.int64)]
        has = cell >= 0
        pts, cell = pts[has], cell[has]
        lo = self._cell_start[cell]
        n = self._cell_start[cell + 1] - lo
        pi = np.repeat(pts, n)
        slot = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
        fi = self._cell_fence[slot]
        sure = self._cell_sure[slot]
        test = np.flatnonzero(~sure)
        hit = sure
        if len(test):
            hit = sure.copy()
            hit[test] = shapely.intersects_xy(self._areas[fi[test]], lon[pi[test]], lat[pi[test]])
        return pi[hit].astype(np.int64), fi[hit]
