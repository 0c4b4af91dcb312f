"""Synthetic but realistic patrol traffic: hot spot fences and officers visiting them.

Used by the sample data, the benchmarks, the simulator and the tests. Officers walk (or
drive) between nearby hot spots and stay 10-15 minutes in each, as the guidance asks;
fixes carry GPS noise, some are low-accuracy and radios drop out for minutes at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from geofence.pings import PingBatch

#: Inner London: a force area a few hundred square kilometres across.
AREA = (-0.35, 51.40, 0.10, 51.62)
METRES_PER_DEG_LAT = 111_195.0
WALK_MPS = 1.4
DRIVE_MPS = 8.0


@dataclass(frozen=True, slots=True)
class Workload:
    fences: dict[str, Any]  # GeoJSON FeatureCollection
    pings: PingBatch  # in ts order


def _deg_per_m(lat: float) -> tuple[float, float]:
    return 1.0 / (METRES_PER_DEG_LAT * math.cos(math.radians(lat))), 1.0 / METRES_PER_DEG_LAT


def make_fences(n: int, rng: np.random.Generator, area: tuple[float, float, float, float] = AREA) -> dict[str, Any]:
    """n small hot spot polygons at random places in area."""
    lon0, lat0, lon1, lat1 = area
    return fences_around(rng.uniform(lon0, lon1, n), rng.uniform(lat0, lat1, n), rng)


def fences_around(cx: np.ndarray, cy: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """A hot spot polygon (60-150 m across, hexagon or rotated rectangle) around each centre."""
    dx, dy = _deg_per_m(float(np.mean(cy)))
    features = []
    for i in range(len(cx)):
        size = rng.uniform(60.0, 150.0)
        if rng.random() < 0.5:
            angles = np.linspace(0, 2 * math.pi, 7)[:-1] + rng.uniform(0, math.pi)
            r = np.full(6, size / 2)
        else:
            a = rng.uniform(0, math.pi)
            angles = np.array([a, a + 2.0, a + math.pi, a + math.pi + 2.0])
            r = np.full(4, size / 2)
        ring = [
            [float(cx[i] + r[k] * math.cos(angles[k]) * dx), float(cy[i] + r[k] * math.sin(angles[k]) * dy)]
            for k in range(len(angles))
        ]
        ring.append(ring[0])
        features.append(
            {
                "type": "Feature",
                "id": f"HS{i + 1:05d}",
                "properties": {"name": f"Hot spot {i + 1}", "buffer_m": float(rng.choice([0.0, 0.0, 10.0, 25.0]))},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def make_workload(
    n_fences: int,
    n_devices: int,
    duration_s: float,
    *,
    seed: int = 7,
    area: tuple[float, float, float, float] = AREA,
    **track_options: Any,
) -> Workload:
    """n_fences random hot spots in area and n_devices officers patrolling them."""
    rng = np.random.default_rng(seed)
    fences = make_fences(n_fences, rng, area)
    return Workload(fences, make_pings(fences, n_devices, duration_s, rng, **track_options))


@dataclass(frozen=True, slots=True)
class Patrol:
    """One officer's movements: waypoints in seconds from the start, and radio gaps."""

    t: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    gaps: np.ndarray  # (n, 2) start, end of radio silences

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True positions (lon, lat) at times t."""
        return np.interp(t, self.t, self.lon), np.interp(t, self.t, self.lat)

    def heard(self, t: np.ndarray) -> np.ndarray:
        """Which of the times t fall outside every radio gap."""
        ok = np.ones(len(t), dtype=bool)
        for g0, g1 in self.gaps:
            ok &= ~((t > g0) & (t < g1))
        return ok


def fence_centres(fences: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The ids of `make_fences` fences and their centres' longitudes and latitudes (mean of the ring)."""
    features = fences["features"]
    centres = np.array([np.mean(f["geometry"]["coordinates"][0][:-1], axis=0) for f in features])
    return [str(f["id"]) for f in features], centres[:, 0], centres[:, 1]


def plan_patrols(
    fences: dict[str, Any], n_devices: int, duration_s: float, rng: np.random.Generator, gaps_per_hour: float = 0.3
) -> list[Patrol]:
    """Officers on foot (70%) or in cars, each visiting near hot spots for 10-15 minutes."""
    _, lon, lat = fence_centres(fences)
    centres = np.column_stack((lon, lat))
    dx, dy = _deg_per_m(float(centres[:, 1].mean()))
    patrols = []
    for _ in range(n_devices):
        speed = DRIVE_MPS if rng.random() < 0.3 else WALK_MPS
        t, x, y = _route(rng, centres, duration_s, speed, dx, dy)
        starts = rng.uniform(0, duration_s, rng.poisson(gaps_per_hour * duration_s / 3600))
        gaps = np.column_stack((starts, starts + rng.uniform(120.0, 900.0, len(starts))))
        patrols.append(Patrol(t, x, y, gaps))
    return patrols


def noisy_fixes(
    lon: np.ndarray, lat: np.ndarray, rng: np.random.Generator, low_accuracy_rate: float = 0.03
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GPS fixes of true positions: 4-15 m accuracy, and some 150-500 m fixes that are as bad."""
    n = len(lon)
    dx, dy = _deg_per_m(float(np.mean(lat)) if n else 51.5)
    acc = rng.uniform(4.0, 15.0, n)
    bad = rng.random(n) < low_accuracy_rate
    acc[bad] = rng.uniform(150.0, 500.0, int(bad.sum()))
    err = np.where(bad, acc, acc / 2)
    return lon + rng.normal(0, 1, n) * err * dx, lat + rng.normal(0, 1, n) * err * dy, acc


def make_pings(
    fences: dict[str, Any],
    n_devices: int,
    duration_s: float,
    rng: np.random.Generator,
    *,
    interval_s: float = 20.0,
    start_ts: float = 1_795_000_000.0,
    low_accuracy_rate: float = 0.03,
    gaps_per_hour: float = 0.3,
) -> PingBatch:
    """Every device's pings over duration_s, merged into one ts-ordered stream."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("dev", "ts", "lat", "lon", "acc")}
    for d, patrol in enumerate(plan_patrols(fences, n_devices, duration_s, rng, gaps_per_hour)):
        n = int(duration_s / interval_s)
        ts = np.sort(rng.uniform(0, duration_s, n))
        x, y, acc = noisy_fixes(*patrol.at(ts), rng, low_accuracy_rate)
        keep = patrol.heard(ts)
        cols["dev"].append(np.full(int(keep.sum()), d))
        for key, arr in (("ts", ts), ("lat", y), ("lon", x), ("acc", acc)):
            cols[key].append(arr[keep])
    merged = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.argsort(merged["ts"], kind="stable")
    names = np.array([device_name(d) for d in range(n_devices)], dtype=object)
    return PingBatch(
        device_id=names[merged["dev"][order]],
        ts=np.round(merged["ts"][order] + start_ts, 3),
        lat=np.round(merged["lat"][order], 7),
        lon=np.round(merged["lon"][order], 7),
        accuracy_m=np.round(merged["acc"][order], 1),
    )


def device_name(d: int) -> str:
    """Radio ids of simulated officers."""
    return f"R{d:05d}"


def _route(
    rng: np.random.Generator, centres: np.ndarray, duration_s: float, speed: float, dx: float, dy: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Waypoints (t, lon, lat): dwell 10-15 min at a hot spot, travel to a near one, repeat."""
    k = int(rng.integers(len(centres)))
    t = -rng.uniform(0, 900.0)
    ts, xs, ys = [t], [centres[k, 0]], [centres[k, 1]]
    while t < duration_s:
        stay = rng.uniform(600.0, 900.0)
        for _ in range(3):  # amble about inside the hot spot
            t += stay / 3
            ts.append(t)
            xs.append(centres[k, 0] + rng.normal(0, 8) * dx)
            ys.append(centres[k, 1] + rng.normal(0, 8) * dy)
        dist = np.hypot((centres[:, 0] - centres[k, 0]) / dx, (centres[:, 1] - centres[k, 1]) / dy)
        near = np.argsort(dist)[1 : min(6, len(centres))] if len(centres) > 1 else np.array([k])
        k = int(rng.choice(near))
        t += max(float(dist[k]) / speed, 60.0)
        ts.append(t)
        xs.append(centres[k, 0])
        ys.append(centres[k, 1])
    return np.array(ts), np.array(xs), np.array(ys)
