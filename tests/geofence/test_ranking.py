"""Choosing hot spots: cell ranking (hand-made points and the real Camden crimes) and capacity."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import shapely
from support.paths import SAMPLES
from support.shared_data import CAMDEN_CRIMES

from geofence.fences import EARTH_RADIUS_M
from geofence.ranking import DEFAULT_HARM_WEIGHTS, capacity, incident_weights, rank_cells
from ingest.geojson_fences import fence_from_feature, load_fences

CAMDEN = CAMDEN_CRIMES
SAMPLE_FENCES = SAMPLES / "fences.geojson"
#: Metres per degree at the equator (origin (0, 0): longitude and latitude alike).
M_PER_DEG = math.radians(1.0) * EARTH_RADIUS_M


def points(*rows: tuple[float, float, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x metres east, y metres north of (0, 0), category) -> lon, lat, categories."""
    lon = np.array([x / M_PER_DEG for x, _, _ in rows])
    lat = np.array([y / M_PER_DEG for _, y, _ in rows])
    cats = np.array([c for _, _, c in rows], dtype=object)
    return lon, lat, cats


# Cell (0, 0): 3 anti-social behaviour (weight 1 each); cell (1, 0): 2 robberies (8 each);
# cell (-1, -1): 1 violence (10). With 100 m cells on the origin (0, 0).
HAND = points(
    (50, 50, "Anti-social behaviour"),
    (10, 90, "Anti-social behaviour"),
    (99, 1, "Anti-social behaviour"),
    (150, 50, "Robbery"),
    (199, 99, "Robbery"),
    (-50, -50, "Violence and sexual offences"),
)


def test_rank_by_count_orders_cells_by_incidents_with_bounds_and_categories() -> None:
    r = rank_cells(*HAND, cell_m=100, top=2, origin=(0.0, 0.0))
    assert [(c.rank, c.ix, c.iy, c.count) for c in r.cells] == [(1, 0, 0, 3), (2, 1, 0, 2)]
    second = r.cells[1]
    assert (second.west, second.south) == pytest.approx((100 / M_PER_DEG, 0.0), abs=1e-12)
    assert (second.east, second.north) == pytest.approx((200 / M_PER_DEG, 100 / M_PER_DEG), abs=1e-12)
    assert second.categories == {"Robbery": 2}
    assert (r.incidents, r.cells_with_incidents) == (6, 3)
    assert r.top_share == pytest.approx(5 / 6)


def test_rank_by_harm_puts_two_robberies_above_three_antisocial() -> None:
    r = rank_cells(*HAND, cell_m=100, top=3, by="harm", origin=(0.0, 0.0))
    # Robbery 2 x 8 = 16, violence 1 x 10 = 10, anti-social 3 x 1 = 3.
    assert [(c.ix, c.iy, c.score) for c in r.cells] == [(1, 0, 16.0), (-1, -1, 10.0), (0, 0, 3.0)]


def test_rank_by_harm_own_weights_and_per_incident_harm_override_table() -> None:
    harm = np.array([20.0, np.nan, np.nan, np.nan, np.nan, np.nan])  # the first ASB is an injury-rated 20
    r = rank_cells(*HAND, cell_m=100, top=3, by="harm", origin=(0.0, 0.0), harm=harm,
                   weights={"robbery": 0.5, "VIOLENCE AND SEXUAL OFFENCES": 2})  # fmt: skip
    # Cell (0, 0): 20 + 1 + 1 (anti-social behaviour keeps the default 1); (-1, -1): 2; (1, 0): 2 x 0.5 = 1.
    assert [(c.ix, c.iy, c.score) for c in r.cells] == [(0, 0, 22.0), (-1, -1, 2.0), (1, 0, 1.0)]


def test_incident_weights_match_police_uk_slugs_case_and_punctuation_free() -> None:
    cats = np.array(["violent-crime", "anti-social-behaviour", "Something new"], dtype=object)
    assert incident_weights(cats).tolist() == [10.0, 1.0, 1.0]
    assert DEFAULT_HARM_WEIGHTS["Robbery"] == 8.0


def test_rank_ties_broken_by_count_then_position_so_output_is_stable() -> None:
    lon, lat, cats = points((50, 50, "A"), (150, 50, "A"), (150, 60, "B"))
    r = rank_cells(lon, lat, cats, cell_m=100, top=5, origin=(0.0, 0.0))
    assert [(c.ix, c.count) for c in r.cells] == [(1, 2), (0, 1)]


def test_rank_no_incidents_gives_no_cells_and_bad_options_are_refused() -> None:
    empty = np.empty(0)
    assert rank_cells(empty, empty, np.empty(0, dtype=object)).cells == []
    with pytest.raises(ValueError, match="cell_m"):
        rank_cells(*HAND, cell_m=0)
    with pytest.raises(ValueError, match="top"):
        rank_cells(*HAND, top=0)


def _camden() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with CAMDEN.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    lon = np.array([float(r["lon"]) for r in rows])
    lat = np.array([float(r["lat"]) for r in rows])
    return lon, lat, np.array([r["category"] for r in rows], dtype=object)


def test_rank_camden_each_cell_count_equals_plain_count_of_points_in_its_bounds() -> None:
    lon, lat, cats = _camden()
    r = rank_cells(lon, lat, cats, top=20)
    assert r.incidents == len(lon)
    for cell in r.cells:
        inside = [
            (x, y, c)
            for x, y, c in zip(lon.tolist(), lat.tolist(), cats.tolist(), strict=True)
            if cell.west <= x < cell.east and cell.south <= y < cell.north
        ]
        assert cell.count == len(inside)
        assert sum(cell.categories.values()) == len(inside)
        assert (cell.east - cell.west) * M_PER_DEG * math.cos(math.radians(r.origin[1])) == pytest.approx(150)
        assert (cell.north - cell.south) * M_PER_DEG == pytest.approx(150)
    counts = [c.count for c in r.cells]
    assert counts == sorted(counts, reverse=True)
    assert r.top_share == pytest.approx(sum(counts) / len(lon))


def test_rank_camden_top_cell_holds_the_sample_st_pancras_hot_spot() -> None:
    """The sample fences were cut around the street points with the most crime: the top cell meets the first."""
    lon, lat, cats = _camden()
    top = rank_cells(lon, lat, cats, top=1).cells[0]
    st_pancras = next(f for f in load_fences(SAMPLE_FENCES) if f.id == "HS00001")
    assert shapely.intersects(st_pancras.area, shapely.box(top.west, top.south, top.east, top.north))
    assert top.count > 100  # 130 crimes in one 150 m cell, out of 4,075 in the borough


def test_rank_camden_proposals_are_valid_fences_named_after_their_cell() -> None:
    lon, lat, cats = _camden()
    r = rank_cells(lon, lat, cats, top=3)
    features = r.feature_collection(buffer_m=25.0)["features"]
    fences = [fence_from_feature(f) for f in features]
    assert [f.id for f in fences] == [f"cell150m_{c.ix}_{c.iy}" for c in r.cells]
    assert all(f.buffer_m == 25.0 for f in fences)
    assert all(f.across_m == pytest.approx(150 * math.sqrt(2) + 50, rel=0.01) for f in fences)


# ---------------------------------------------------------------------- capacity


def test_capacity_forty_planned_only_twenty_resourced() -> None:
    # 5 officers x 8 h = 480 min each; a visit costs 15 on site + 15 travel = 30 min -> 16 visits each,
    # 80 in all; 4 visits per hot spot -> 20 hot spots. 40 planned need 160 visits = 10 officers.
    c = capacity(officers=5, shift_h=8, visits_per_shift=4, visit_min=15, travel_min=15, planned=40)
    assert (c.minutes_per_visit, c.visits_per_officer, c.total_visits) == (30, 16, 80)
    assert (c.hotspots_resourced, c.shortfall, c.officers_needed) == (20, 20, 10)
    assert c.dosage_min_per_hotspot == 60


def test_capacity_partial_visits_do_not_count_and_officers_needed_rounds_up() -> None:
    # 480 / 25 = 19.2 -> 19 whole visits per officer; 76 visits / 3 = 25 hot spots (1 visit spare);
    # 40 planned x 3 = 120 visits: 6 officers give 114, so 7.
    c = capacity(officers=4, shift_h=8, visits_per_shift=3, visit_min=15, travel_min=10, planned=40)
    assert (c.visits_per_officer, c.total_visits, c.hotspots_resourced) == (19, 76, 25)
    assert (c.shortfall, c.officers_needed) == (15, 7)


def test_capacity_exact_fit_is_not_lost_to_float_rounding() -> None:
    # 0.4 h = 24 min; 0.2 + 0.1 min per visit = 80 visits, though 24 / (0.2 + 0.1) is 79.99... in floats.
    assert capacity(1, 0.4, 1, 0.2, 0.1).visits_per_officer == 80


def test_capacity_edges_no_officers_and_visit_longer_than_shift() -> None:
    none = capacity(officers=0, shift_h=8, visits_per_shift=2, visit_min=15, travel_min=0, planned=6)
    assert (none.hotspots_resourced, none.shortfall, none.officers_needed) == (0, 6, 1)
    too_long = capacity(officers=3, shift_h=1, visits_per_shift=1, visit_min=50, travel_min=20, planned=1)
    assert (too_long.visits_per_officer, too_long.shortfall, too_long.officers_needed) == (0, 1, None)
    assert capacity(2, 8, 1, 10, 0).shortfall is None


@pytest.mark.parametrize(
    ("args", "field"),
    [((1, 8, 0, 15, 0), "visits_per_shift"), ((1, 0, 1, 15, 0), "shift_h"), ((1, 8, 1, 15, -1), "travel_min"),
     ((-1, 8, 1, 15, 0), "officers"), ((1, 8, 1, math.nan, 0), "visit_min")],
)  # fmt: skip
def test_capacity_invalid_input_names_the_field(args: tuple[float, ...], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        capacity(*args)  # type: ignore[arg-type]
