"""Incident fixtures shared by the measures and API tests: a CSV with bad rows, hand-placed incidents."""

from __future__ import annotations

from datetime import UTC, datetime

from geofence.fences import Fence
from ingest.incidents_csv import Incident
from support.helpers import PLACES, T0, m_per_deg_lon, square_fence
from support.shared_data import CAMDEN_CRIMES

CAMDEN = CAMDEN_CRIMES
DAY = 86_400.0

BAD_CSV = (
    "id,ts,lat,lon,category,harm_weight\n"  # line 1
    "g1,2026-11-21T22:00:00Z,51.5,-0.12,Robbery,\n"
    "b1,2026-11-21T22:00:00,51.5,-0.12,Robbery,\n"
    "b2,2026-11-21T22:00:00Z,91.5,-0.12,Robbery,\n"
    '"g2","1763762400","51.5","-0.12","Theft, from ""person""",2.5\n'  # line 5
    "\n"
    "b3,,51.5,-0.12,Robbery,\n"
    '"b4\nmulti",2026-11-21T22:00:00Z,abc,-0.12,,x\n'  # lines 8-9
    "b5,2026-11-21T22:00:00Z,51.5,-0.12\n"  # line 10
    "g3,2026-11-21T22:30:00+01:00,51.5,-0.12,Robbery,-0\n"
)
BAD_CSV_ERRORS = [
    (3, "ts", "ts: has no UTC offset: '2026-11-21T22:00:00'"),
    (4, "lat", "lat: must be between -90 and 90, got 91.5"),
    (7, "ts", "ts: is required (or a month)"),
    (8, "id", "id: holds control character U+000A: 'b4\\nmulti'"),  # a line break is a control character
    (8, "lat", "lat: must be a number, got 'abc'"),
    (8, "category", "category: is required"),
    (8, "harm_weight", "harm_weight: must be a number, got 'x'"),
    (10, None, "row has 4 fields, header has 6"),
]


NEAR_C = (0.0005, 0.005 - 10 / m_per_deg_lon(0.0))  # 10 m west of C's square, inside its 20 m buffer


def hand_fences() -> list[Fence]:
    return [square_fence("A"), square_fence("B", 0.0005), square_fence("C", 0.005, buffer_m=20)]


def incident(iid: str, t: float, where: tuple[float, float], category: str, month: bool = False) -> Incident:
    if month:
        nov, dec = datetime(2026, 11, 1, tzinfo=UTC).timestamp(), datetime(2026, 12, 1, tzinfo=UTC).timestamp()
        return Incident(iid, "crime", nov, dec, where[0], where[1], category)
    return Incident(iid, "crime", T0 + t, T0 + t, where[0], where[1], category)


HAND_INCIDENTS = [
    incident("i1", 0, PLACES["a"], "Robbery"),
    incident("i2", 60, PLACES["ab"], "Robbery"),
    incident("i3", 120, PLACES["ab"], "Drugs"),
    incident("i4", DAY, PLACES["b"], "Drugs"),
    incident("i5", 10, NEAR_C, "Robbery"),
    incident("i6", 30, PLACES["far"], "Robbery"),
    incident("i7", -1, PLACES["a"], "Robbery"),
    incident("i8", -3 * DAY, PLACES["a"], "Burglary"),
    incident("m1", 0, PLACES["a"], "Burglary", month=True),  # November 2026, month only
]
