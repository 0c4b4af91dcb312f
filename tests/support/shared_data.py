"""Where the team's real open data lives: `shared/data/` beside the checkout (../shared/data).

A CI clone may sit deeper than the working copy, so the nearest ancestor holding
`shared/data` is used; HOTSPOTS_SHARED_DATA names the folder outright.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_data(name: str) -> Path:
    """The path of a file in shared/data; fails naming every place looked at."""
    override = os.environ.get("HOTSPOTS_SHARED_DATA")
    here = Path(__file__).resolve().parent
    places = [Path(override)] if override else [p / "shared" / "data" for p in here.parents]
    for folder in places:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{name} not found in any of: {', '.join(map(str, places))}")


CAMDEN_CRIMES = shared_data("london_camden_street_crime_2019-06.csv")
