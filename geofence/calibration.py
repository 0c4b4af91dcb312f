"""GPS calibration: how far a device's fixes fall from where the officer really stood.

A verification check puts an officer at a known true position (e.g. a spot a CCTV camera
confirms) for a time window; every fix the device reported in that window is an error sample.
From the samples: the distance quantiles, the mean offset vector (a systematic bias, such as a
radio placing officers 200 m east of where they are) and the fence buffer that would still
have counted the officer inside for 80% or 95% of the fixes.

Offsets are east/north metres in the same local equirectangular projection that
`geofence.fences` grows fence buffers in (centred on each fix's true position), so a
recommended buffer means the same metres as a fence's `buffer_m`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from geofence.fences import EARTH_RADIUS_M
from geofence.pings import FloatArray, IntArray, ObjArray

#: Default rounding step of a recommended buffer: finer than GPS error is meaningful.
BUFFER_STEP_M = 5.0
#: The coverages a buffer is recommended for (fraction of fixes captured).
COVERAGES: tuple[float, float] = (0.80, 0.95)
#: Group key of fixes that carry no `source`.
UNKNOWN_SOURCE = "unknown"

_M_PER_DEG = math.radians(1.0) * EARTH_RADIUS_M


@dataclass(frozen=True, slots=True)
class Fixes:
    """Fixes of verification checks, one array per column: each fix with its check's device
    and true position. accuracy_m is NaN where unknown; source None where not given."""

    check_id: IntArray
    device_id: ObjArray
    true_lat: FloatArray
    true_lon: FloatArray
    ts: FloatArray
    lat: FloatArray
    lon: FloatArray
    accuracy_m: FloatArray
    source: ObjArray

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    """The error of a set of fixes against their true positions, in metres.

    fixes: the fixes the figures are computed from; uncertain: fixes left out because their
    accuracy_m exceeds max_accuracy_m (the engine changes no fence state on them, so they
    must not drive a buffer). median_m is the usual median; p80_m / p95_m are *covering*
    distances: the smallest distance within which at least 80% / 95% of the fixes lie.
    buffer_80_m / buffer_95_m round those up to the buffer step. The mean offset is the
    average (east, north) vector from the true position to the fix; its bearing is in
    degrees clockwise from north (90 = east). Every figure is None when fixes is 0.
    """

    fixes: int
    uncertain: int
    median_m: float | None = None
    p80_m: float | None = None
    p95_m: float | None = None
    mean_east_m: float | None = None
    mean_north_m: float | None = None
    mean_offset_m: float | None = None
    offset_bearing_deg: float | None = None
    buffer_80_m: float | None = None
    buffer_95_m: float | None = None


def offsets_m(
    lat: FloatArray, lon: FloatArray, true_lat: FloatArray, true_lon: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """East and north metres from each true position to its fix (arrays broadcast)."""
    north = (np.asarray(lat, dtype=np.float64) - true_lat) * _M_PER_DEG
    east = (np.asarray(lon, dtype=np.float64) - true_lon) * _M_PER_DEG * np.cos(np.radians(true_lat))
    return np.asarray(east, dtype=np.float64), np.asarray(north, dtype=np.float64)


def covering_distance(distances: FloatArray, coverage: float) -> float:
    """The smallest d with at least `coverage` of the distances <= d (the d[ceil(c n) - 1] of the sorted)."""
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage!r}")
    if not len(distances):
        raise ValueError("no distances")
    return float(np.quantile(distances, coverage, method="inverted_cdf"))


def round_up(distance_m: float, step_m: float = BUFFER_STEP_M) -> float:
    """distance_m rounded up to a multiple of step_m (a buffer that still covers it).

    The distance is first rounded to the millimetre: a fix 20.00001 m off is 20 m off, and
    must not cost a 25 m buffer for float noise far below any GPS precision.
    """
    if not step_m > 0:
        raise ValueError(f"step_m must be > 0, got {step_m!r}")
    return float(math.ceil(round(distance_m, 3) / step_m) * step_m)


def summarise(
    east: FloatArray,
    north: FloatArray,
    accuracy_m: FloatArray,
    *,
    max_accuracy_m: float,
    step_m: float = BUFFER_STEP_M,
) -> ErrorSummary:
    """The ErrorSummary of fixes given as offsets; accuracy_m NaN (unknown) counts as certain."""
    certain = ~(np.asarray(accuracy_m, dtype=np.float64) > max_accuracy_m)
    e, n = np.asarray(east, dtype=np.float64)[certain], np.asarray(north, dtype=np.float64)[certain]
    uncertain = int(len(certain) - np.count_nonzero(certain))
    if not len(e):
        return ErrorSummary(fixes=0, uncertain=uncertain)
    distances = np.hypot(e, n)
    p80, p95 = (covering_distance(distances, c) for c in COVERAGES)
    mean_e, mean_n = float(e.mean()), float(n.mean())
    return ErrorSummary(
        fixes=len(e),
        uncertain=uncertain,
        median_m=float(np.median(distances)),
        p80_m=p80,
        p95_m=p95,
        mean_east_m=mean_e,
        mean_north_m=mean_n,
        mean_offset_m=math.hypot(mean_e, mean_n),
        offset_bearing_deg=math.degrees(math.atan2(mean_e, mean_n)) % 360.0,
        buffer_80_m=round_up(p80, step_m),
        buffer_95_m=round_up(p95, step_m),
    )


def summarise_by(
    keys: ObjArray,
    east: FloatArray,
    north: FloatArray,
    accuracy_m: FloatArray,
    *,
    max_accuracy_m: float,
    step_m: float = BUFFER_STEP_M,
) -> Mapping[str, ErrorSummary]:
    """One ErrorSummary per distinct key (e.g. device or source; None keys as UNKNOWN_SOURCE), sorted by key."""
    out: dict[str, ErrorSummary] = {}
    if not len(keys):
        return out
    labels = [UNKNOWN_SOURCE if k is None else str(k) for k in keys.tolist()]
    uniq, group = np.unique(np.array(labels, dtype=str), return_inverse=True)
    for g, key in enumerate(uniq.tolist()):
        mask = group == g
        out[key] = summarise(east[mask], north[mask], accuracy_m[mask], max_accuracy_m=max_accuracy_m, step_m=step_m)
    return out


@dataclass(frozen=True, slots=True)
class Calibration:
    """The error of a set of fixes overall, per device and per source (radio, handset...)."""

    overall: ErrorSummary
    by_device: Mapping[str, ErrorSummary]
    by_source: Mapping[str, ErrorSummary]


def calibrate(fixes: Fixes, *, max_accuracy_m: float, step_m: float = BUFFER_STEP_M) -> Calibration:
    """Summaries of fixes against their true positions: overall, per device, per source."""
    east, north = offsets_m(fixes.lat, fixes.lon, fixes.true_lat, fixes.true_lon)
    rules = {"max_accuracy_m": max_accuracy_m, "step_m": step_m}
    return Calibration(
        overall=summarise(east, north, fixes.accuracy_m, **rules),
        by_device=summarise_by(fixes.device_id, east, north, fixes.accuracy_m, **rules),
        by_source=summarise_by(fixes.source, east, north, fixes.accuracy_m, **rules),
    )
