"""GeoJSON documents into fences: features, collections, ids and names (ingest.geojson_fences)."""

from __future__ import annotations

from typing import Any

import pytest
from support.helpers import square_geometry

from geofence.fences import FenceError
from ingest.geojson_fences import fences_from_geojson

SQUARE = square_geometry(0.0, 0.0, 0.001)
FAR_SQUARE = square_geometry(0.01, 0.0, 0.001)
MULTI = {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"], FAR_SQUARE["coordinates"]]}
BOW_TIE = {"type": "Polygon", "coordinates": [[[0.0, 0.0], [0.001, 0.001], [0.001, 0.0], [0.0, 0.001], [0.0, 0.0]]]}


def feature(fence_id: Any, geometry: dict[str, Any], **props: Any) -> dict[str, Any]:
    properties = dict(props)
    if fence_id is not None:
        properties["id"] = fence_id
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        # ids in properties, names and buffers carried, file order kept
        (
            collection(feature("b", SQUARE, name="Market St", buffer_m=10), feature("a", MULTI)),
            [("b", "Market St", 10.0, "Polygon"), ("a", None, 0.0, "MultiPolygon")],
        ),
        # id at the Feature's top level; an integer id becomes a string
        (
            collection({"type": "Feature", "id": 7, "properties": {}, "geometry": SQUARE}),
            [("7", None, 0.0, "Polygon")],
        ),
        # a single Feature instead of a collection
        (feature("solo", SQUARE), [("solo", None, 0.0, "Polygon")]),
        # an empty collection: no fences
        (collection(), []),
    ],
)
def test_fences_from_geojson_valid_features_accepted(doc: dict, expected: list) -> None:
    fences = fences_from_geojson(doc)
    assert [(f.id, f.name, f.buffer_m, f.geometry.geom_type) for f in fences] == expected


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        # buffer_m from the file
        (collection(feature("hs-1", SQUARE, buffer_m=-5)), "fence 'hs-1': buffer_m must be a number >= 0"),
        (collection(feature("hs-1", SQUARE, buffer_m="wide")), "fence 'hs-1': buffer_m must be a number >= 0"),
        # no id anywhere (second feature: its position is named)
        (collection(feature("ok", SQUARE), feature(None, SQUARE)), "feature 1: needs a string id"),
        # an empty id
        (collection(feature("", SQUARE)), "feature 0: needs a string id"),
        # the same id twice
        (collection(feature("dup", SQUARE), feature("dup", FAR_SQUARE)), "fence 'dup': id appears more than once"),
        # a bow-tie inside a collection: named by its id
        (
            collection(feature("ok", SQUARE), feature("x-2", BOW_TIE)),
            "fence 'x-2': invalid geometry: Self-intersection",
        ),
        # no geometry
        (collection({"type": "Feature", "properties": {"id": "g"}, "geometry": None}), "fence 'g': has no geometry"),
        # not GeoJSON at all
        ({"type": "Topology"}, "fences must be a GeoJSON FeatureCollection or Feature"),
        # an id or a name breaking the input rules (ingest.rules)
        (collection(feature("a" * 129, SQUARE)), "feature 0: id: must be at most 128 characters, got 129"),
        (collection(feature("hs\x001", SQUARE)), "feature 0: id: holds control character U+0000: 'hs\\x001'"),
        (collection(feature("hs-1", SQUARE, name="n" * 201)), "fence 'hs-1': name: must be at most 200 characters"),
        (collection(feature("hs-1", SQUARE, name="Market\tSt")), "fence 'hs-1': name: holds control character U+0009"),
    ],
)
def test_fences_from_geojson_invalid_refused_with_reason(doc: dict, message: str) -> None:
    with pytest.raises(FenceError) as caught:
        fences_from_geojson(doc)
    assert message in str(caught.value)
