"""Regenerate samples/: six hot spots and four officers' pings over two hours.

The hot spots sit on the six Camden street points with the most recorded crime in June 2019
(police.uk open data in ../shared/data; Open Government Licence v3.0), so the demo runs on
real places. Run with `make sample`; the output is committed, so a new user needs nothing.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from ingest.csv_pings import write_ping_csv
from services.workload import fences_around, make_pings

ROOT = Path(__file__).resolve().parent.parent
CRIMES = ROOT.parent / "shared" / "data" / "london_camden_street_crime_2019-06.csv"
OUT = ROOT / "samples"
N_HOT_SPOTS = 6
N_OFFICERS = 4
HOURS = 2


def top_places(path: Path, n: int) -> list[tuple[float, float, str]]:
    """The n 'on or near' points with the most crimes: (lon, lat, location)."""
    counts: Counter[tuple[float, float, str]] = Counter()
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["lat"] and row["lon"]:
                counts[(float(row["lon"]), float(row["lat"]), row["location"])] += 1
    return [place for place, _ in counts.most_common(n)]


def main() -> int:
    places = top_places(CRIMES, N_HOT_SPOTS)
    rng = np.random.default_rng(2019)
    fences = fences_around(np.array([p[0] for p in places]), np.array([p[1] for p in places]), rng)
    for feature, (_, _, location) in zip(fences["features"], places, strict=True):
        feature["properties"]["name"] = location
    pings = make_pings(fences, N_OFFICERS, HOURS * 3600, rng, interval_s=15.0, start_ts=1_795_600_800.0)
    OUT.mkdir(exist_ok=True)
    (OUT / "fences.geojson").write_text(json.dumps(fences, indent=1) + "\n", encoding="utf-8")
    write_ping_csv(OUT / "pings.csv", pings)
    print(f"wrote {len(fences['features'])} fences and {len(pings)} pings to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
