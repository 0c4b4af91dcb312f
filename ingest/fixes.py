"""What the GPS export readers (``ingest.nmea``, ``ingest.gpx``) yield: fixes in columns.

Both readers stream a file and yield ``FixChunk``s: the good fixes of a stretch of the file as
parallel arrays (NaN where a device did not say), with the 1-based line each came from, and a
``RowError`` (the CSV reader's type: line and reason) for every refused line or point. Columns
rather than one object per fix, because an NMEA log runs to millions of sentences and the
pipeline works on columns anyway (``to_ping_batch``).

Accuracy from a dilution of precision: a receiver's horizontal error is about HDOP times the
user equivalent range error (UERE), the error of one satellite range. ``UERE_M`` = 5 m, a
usual 1-sigma figure for a standalone single-frequency receiver since Selective Availability
ended, so accuracy_m = HDOP x 5 is a ~68 % radius, the confidence phones report (Android's
``Location.getAccuracy``), and the two kinds of source compare. gpsd's error model
(libgpsd_core.c, ``H_UERE_NO_DGPS``) assumes 15 m at 95 %, about 7.7 m 1-sigma: older and more
cautious. A good fix (HDOP 1) is 5 m; the "no fix" HDOP 99.99 some receivers print is ~500 m
and counts as uncertain (SEMANTICS.md). RTK and DGPS fixes are overstated, which errs toward
"uncertain", never toward "certainly inside".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar

import numpy as np
import numpy.typing as npt

from geofence.pings import FloatArray, ObjArray, PingBatch
from ingest.csv_pings import RowError

__all__ = ["KNOT_MPS", "UERE_M", "FixChunk", "RowError", "Source", "motion_extras", "stream_source"]

#: A file path, or a binary file object (an HTTP body wrapped in io.BytesIO, a pipe...).
Source = str | os.PathLike[str] | BinaryIO

T = TypeVar("T")

#: User equivalent range error, metres: accuracy_m = HDOP * UERE_M (module docstring).
UERE_M = 5.0
#: One knot (international nautical mile per hour) in metres per second.
KNOT_MPS = 1852.0 / 3600.0


@dataclass(frozen=True, slots=True)
class FixChunk:
    """Fixes of one device from a stretch of a file, in file order, and the lines refused there.

    ts: epoch seconds UTC; lat/lon: WGS84 degrees; accuracy_m: horizontal radius, metres;
    speed_mps: metres per second; heading_deg: degrees from true north in [0, 360). NaN: unknown.
    """

    device_id: str
    ts: FloatArray
    lat: FloatArray
    lon: FloatArray
    accuracy_m: FloatArray
    speed_mps: FloatArray
    heading_deg: FloatArray
    lines: npt.NDArray[np.int64]
    errors: list[RowError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)

    def to_ping_batch(self) -> PingBatch:
        """The fixes as pings: speed and heading carried as extras (None where unknown), as the CSV reader does."""
        device = np.empty(len(self), dtype=object)
        device[:] = self.device_id
        extras = motion_extras(self.speed_mps, self.heading_deg)
        return PingBatch(
            device_id=device, ts=self.ts, lat=self.lat, lon=self.lon, accuracy_m=self.accuracy_m, extras=extras
        )


def motion_extras(speed_mps: FloatArray, heading_deg: FloatArray) -> ObjArray:
    """Per-ping extras {speed_mps, heading_deg}, None where unknown (NaN)."""
    speeds, headings = speed_mps.astype(object), heading_deg.astype(object)
    speeds[np.isnan(speed_mps)] = None
    headings[np.isnan(heading_deg)] = None
    extras = np.empty(len(speeds), dtype=object)
    extras[:] = [{"speed_mps": s, "heading_deg": h} for s, h in zip(speeds, headings, strict=True)]
    return extras


def stream_source(source: Source, read: Callable[[BinaryIO, str], Iterator[T]], error: type[ValueError]) -> Iterator[T]:
    """Run read over source and the name to report it by; a path is opened (and closed) here.

    A path that cannot be opened raises ``error`` on the first ``next()``, as any later read error would.
    """
    if not isinstance(source, str | os.PathLike):
        yield from read(source, str(getattr(source, "name", "<stream>")))
        return
    path = os.fspath(source)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below, inside the generator
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror or e}") from None
    with f:
        yield from read(f, path)
