"""Choosing hot spots: rank micro-places by incidents, and size the patrol plan to the officers.

Micro-places are square cells of a fixed size (150 m by default) on a grid laid out in the
local metric projection that fences use (`geofence.fences`): cell (ix, iy) holds the points
with ix * cell_m <= x < (ix + 1) * cell_m (likewise y), x and y being metres east and north
of the grid origin. The origin is the middle of the points' bounding box rounded to 0.01
degrees unless given, so the same data (or a little more of it) gives the same cells. A cell
is an axis-aligned box in longitude/latitude too, which is the proposed fence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from geofence.fences import local_projection
from geofence.pings import FloatArray, IntArray, ObjArray

RankBy = Literal["count", "harm"]

#: Default relative harm of the police.uk street-crime categories (module constant, override
#: per call). An illustrative ordering by seriousness (violence and robbery highest, anti-social
#: behaviour and minor theft lowest), in the spirit of crime harm indices such as the Cambridge
#: CHI but not taken from one: forces should supply their own table. Keys are matched
#: case-insensitively, ignoring punctuation, so police.uk slugs ("violent-crime") match too.
DEFAULT_HARM_WEIGHTS: Mapping[str, float] = {
    "Violence and sexual offences": 10.0,
    "Violent crime": 10.0,
    "Robbery": 8.0,
    "Possession of weapons": 6.0,
    "Burglary": 5.0,
    "Criminal damage and arson": 3.0,
    "Drugs": 3.0,
    "Theft from the person": 3.0,
    "Public order": 2.0,
    "Vehicle crime": 2.0,
    "Other crime": 2.0,
    "Bicycle theft": 1.0,
    "Other theft": 1.0,
    "Shoplifting": 1.0,
    "Anti-social behaviour": 1.0,
}
#: Weight of a category the table does not list.
UNKNOWN_CATEGORY_WEIGHT = 1.0
#: Default micro-place size: about what an officer can see across (College of Policing guidance).
DEFAULT_CELL_M = 150.0


def category_key(name: str) -> str:
    """How categories are compared: lower case, words only ("Anti-social behaviour" = "anti-social-behaviour")."""
    return " ".join(re.findall(r"[a-z0-9]+", name.lower()))


@dataclass(frozen=True, slots=True)
class Cell:
    """One ranked micro-place: grid position, incidents, score and bounds (WGS84 degrees)."""

    rank: int
    ix: int
    iy: int
    count: int
    score: float
    west: float
    south: float
    east: float
    north: float
    categories: dict[str, int]  # most frequent first

    def polygon(self) -> dict[str, Any]:
        """The cell as a closed GeoJSON Polygon (counter-clockwise)."""
        w, s, e, n = self.west, self.south, self.east, self.north
        return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}

    def fence_id(self, cell_m: float) -> str:
        """Stable across runs on the same grid, so posting the proposal again replaces it."""
        return f"cell{cell_m:g}m_{self.ix}_{self.iy}"

    def to_feature(self, cell_m: float, buffer_m: float = 0.0) -> dict[str, Any]:
        """A proposed fence, in the form POST /v1/fences and fence files take."""
        fid = self.fence_id(cell_m)
        return {
            "type": "Feature",
            "id": fid,
            "properties": {
                "id": fid,
                "name": f"Candidate {self.rank} ({cell_m:g} m cell)",
                "buffer_m": buffer_m,
                "rank": self.rank,
                "count": self.count,
                "score": self.score,
                "categories": self.categories,
            },
            "geometry": self.polygon(),
        }


@dataclass(frozen=True, slots=True)
class Ranking:
    """The top cells and what share of all incidents (and of the score) they hold."""

    cell_m: float
    by: RankBy
    origin: tuple[float, float]  # (lon, lat) of the grid origin
    incidents: int
    total_score: float
    cells_with_incidents: int
    cells: list[Cell]

    @property
    def top_share(self) -> float:
        """Fraction of the incidents inside the returned cells (0 with no incidents)."""
        return sum(c.count for c in self.cells) / self.incidents if self.incidents else 0.0

    def feature_collection(self, buffer_m: float = 0.0) -> dict[str, Any]:
        return {
            "type": "FeatureCollection",
            "properties": {
                "cell_m": self.cell_m,
                "by": self.by,
                "origin": list(self.origin),
                "incidents": self.incidents,
                "cells_with_incidents": self.cells_with_incidents,
                "top_share": self.top_share,
            },
            "features": [c.to_feature(self.cell_m, buffer_m) for c in self.cells],
        }


def incident_weights(
    categories: ObjArray, harm: FloatArray | None = None, weights: Mapping[str, float] | None = None
) -> FloatArray:
    """Per incident: its own harm weight where given (not NaN), else its category's weight.

    `weights` override the default table category by category; unlisted categories keep it.
    """
    table = {category_key(k): float(v) for k, v in {**DEFAULT_HARM_WEIGHTS, **(weights or {})}.items()}
    names, codes = _codes(categories)
    per_name = np.array([table.get(category_key(n), UNKNOWN_CATEGORY_WEIGHT) for n in names], dtype=np.float64)
    out: FloatArray = per_name[codes] if names else np.zeros(len(categories))
    if harm is not None:
        out = np.where(np.isnan(harm), out, harm)
    return out


def _codes(categories: ObjArray) -> tuple[list[str], IntArray]:
    """Distinct categories in first-seen order and each incident's position among them.

    A dict lookup per incident: several times faster than sorting a million strings.
    """
    lookup: dict[str, int] = {}
    codes = np.fromiter((lookup.setdefault(c, len(lookup)) for c in categories.tolist()), np.int64, len(categories))
    return list(lookup), codes


def rank_cells(
    lon: FloatArray,
    lat: FloatArray,
    categories: ObjArray,
    *,
    cell_m: float = DEFAULT_CELL_M,
    top: int = 20,
    by: RankBy = "count",
    weights: Mapping[str, float] | None = None,
    harm: FloatArray | None = None,
    origin: tuple[float, float] | None = None,
) -> Ranking:
    """The `top` cells by incident count or by summed harm weight (ties: more incidents first).

    `harm` gives per-incident weights (NaN: use the category's weight: `weights` over
    DEFAULT_HARM_WEIGHTS). Only cells with at least one incident are ranked.
    """
    if not (math.isfinite(cell_m) and cell_m > 0):
        raise ValueError(f"cell_m must be a number > 0, got {cell_m!r}")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top!r}")
    if by not in ("count", "harm"):
        raise ValueError(f"by must be 'count' or 'harm', got {by!r}")
    n = len(lon)
    if len(lat) != n or len(categories) != n or (harm is not None and len(harm) != n):
        raise ValueError("lon, lat, categories (and harm) must have the same length")
    if origin is None:
        origin = (0.0, 0.0) if n == 0 else (_mid(lon), _mid(lat))
    if n == 0:
        return Ranking(cell_m, by, origin, 0, 0.0, 0, [])
    forward, inverse = local_projection(*origin)
    xy = forward(np.column_stack((lon, lat)))
    ix = np.floor(xy[:, 0] / cell_m).astype(np.int64)
    iy = np.floor(xy[:, 1] / cell_m).astype(np.int64)
    x0, y0, ny = ix.min(), iy.min(), int(iy.max() - iy.min()) + 1
    keys, cell_of = np.unique((ix - x0) * ny + (iy - y0), return_inverse=True)
    cells = np.column_stack((keys // ny + x0, keys % ny + y0))
    counts = np.bincount(cell_of, minlength=len(cells))
    w = incident_weights(categories, harm, weights) if by == "harm" else np.ones(n)
    scores = np.bincount(cell_of, weights=w, minlength=len(cells))
    order = np.lexsort((cells[:, 1], cells[:, 0], -counts, -scores))[:top]
    # Category counts of the chosen cells only: one bincount over (chosen cell, category) pairs.
    slot = np.full(len(cells), -1, dtype=np.int64)
    slot[order] = np.arange(len(order))
    chosen = np.flatnonzero(slot[cell_of] >= 0)
    names, cat_of = _codes(categories[chosen])
    pair = slot[cell_of[chosen]] * len(names) + cat_of
    per_cat = np.bincount(pair, minlength=len(order) * len(names)).reshape(len(order), len(names))
    corners = inverse(np.column_stack((cells[order, 0] * cell_m, cells[order, 1] * cell_m)))
    far = inverse(np.column_stack(((cells[order, 0] + 1) * cell_m, (cells[order, 1] + 1) * cell_m)))
    out: list[Cell] = []
    for k, c in enumerate(order.tolist()):
        row = per_cat[k]
        cats = {names[j]: int(row[j]) for j in np.lexsort((names, -row)).tolist() if row[j]}
        out.append(
            Cell(
                rank=k + 1,
                ix=int(cells[c, 0]),
                iy=int(cells[c, 1]),
                count=int(counts[c]),
                score=float(scores[c]),
                west=float(corners[k, 0]),
                south=float(corners[k, 1]),
                east=float(far[k, 0]),
                north=float(far[k, 1]),
                categories=cats,
            )
        )
    return Ranking(cell_m, by, origin, n, float(scores.sum()), len(cells), out)


def _mid(values: FloatArray) -> float:
    return round((float(values.min()) + float(values.max())) / 2, 2)


@dataclass(frozen=True, slots=True)
class Capacity:
    """How many hot spots the officers on a shift can give the planned dosage.

    Each visit costs its minutes on site plus the travel to reach it; an officer fits a whole
    number of visits in a shift, and a hot spot counts as resourced only with all its planned
    visits.
    """

    officers: int
    shift_h: float
    visits_per_shift: int
    visit_min: float
    travel_min: float
    planned: int | None
    minutes_per_visit: float
    visits_per_officer: int
    total_visits: int
    hotspots_resourced: int
    dosage_min_per_hotspot: float
    shortfall: int | None  # planned hot spots that cannot be resourced (0 when all can)
    officers_needed: int | None  # for every planned hot spot; None without a plan or when no visit fits a shift


def capacity(
    officers: int,
    shift_h: float,
    visits_per_shift: int,
    visit_min: float,
    travel_min: float,
    planned: int | None = None,
) -> Capacity:
    """The "40 planned, only 20 resourced" arithmetic, for one shift."""
    checks = (
        ("officers", officers, officers >= 0),
        ("shift_h", shift_h, math.isfinite(shift_h) and shift_h > 0),
        ("visits_per_shift", visits_per_shift, visits_per_shift >= 1),
        ("visit_min", visit_min, math.isfinite(visit_min) and visit_min > 0),
        ("travel_min", travel_min, math.isfinite(travel_min) and travel_min >= 0),
        ("planned", planned, planned is None or planned >= 0),
    )
    for name, value, ok in checks:
        if not ok:
            raise ValueError(f"{name} out of range: {value!r}")
    per_visit = visit_min + travel_min
    # A hair of tolerance so 480 / (14.4 + 9.6) is 20 visits, not 19 by rounding.
    per_officer = math.floor(shift_h * 60.0 / per_visit + 1e-9)
    total = officers * per_officer
    resourced = total // visits_per_shift
    shortfall = officers_needed = None
    if planned is not None:
        shortfall = max(planned - resourced, 0)
        if per_officer > 0:
            officers_needed = -(-planned * visits_per_shift // per_officer)
    return Capacity(
        officers, shift_h, visits_per_shift, visit_min, travel_min, planned, per_visit, per_officer, total,
        resourced, visits_per_shift * visit_min, shortfall, officers_needed,
    )  # fmt: skip
