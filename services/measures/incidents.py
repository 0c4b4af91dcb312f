"""Incidents in the store: idempotent import, outcome counts per hot spot, before/during a programme.

An incident lies in a hot spot when its point is inside the fence's effective (buffered) area,
by the same vectorised matching as pings (`geofence.index.FenceIndex`). It lies in a time
range [start, end) when `start <= ts` and `ts_end <= end` (with `ts < end`): an exact time
inside the range, or, for a month-only incident, its whole month inside the range. A month-only
incident whose month straddles a range edge is left out of that range and counted apart as
`partial` where the answer has room for it: a weekly figure from monthly data would be invented.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from geofence.fences import Fence
from geofence.index import FenceIndex
from geofence.pings import FloatArray, ObjArray
from geofence.ranking import RankBy, Ranking, rank_cells
from ingest.incidents_csv import Incident, ParsedIncidents, read_incident_csv
from ingest.rules import TIMESTAMP
from services.errors import NotFound
from services.store import DwellRow, Store
from services.store.tables import incidents_table

#: Rows per INSERT statement and per lookup of already-stored ids.
CHUNK = 1000
WEEK_S = 7 * 86_400.0

_COLS = "source, incident_id, ts, ts_end, lat, lon, category, harm_weight, imported_at"
_CONFLICT = "ON CONFLICT (source, incident_id) DO UPDATE SET " + ", ".join(
    f"{col} = excluded.{col}" for col in _COLS.split(", ")[2:]
)
_PG_UPSERT = f"""INSERT INTO incidents ({_COLS})
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::text[],
                     $8::float8[], $9::float8[]) {_CONFLICT}
RETURNING (xmax = 0)"""
_SQLITE_UPSERT = f"INSERT INTO incidents ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) {_CONFLICT}"


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Incidents written: `new` ones, and `replaced` ones whose (source, id) was already stored."""

    new: int
    replaced: int


@dataclass(frozen=True, slots=True)
class IncidentColumns:
    """Stored incidents as arrays (harm NaN where the category's weight applies)."""

    lon: FloatArray
    lat: FloatArray
    category: ObjArray
    harm: FloatArray
    ts: FloatArray
    ts_end: FloatArray


@dataclass(frozen=True, slots=True)
class Period:
    """Incidents of one hot spot in [start, end), and per week (a week is 7 x 24 h)."""

    start: float
    end: float
    count: int
    categories: dict[str, int]
    partial: int  # month-only incidents whose month crosses an edge of the period: not counted

    @property
    def weeks(self) -> float:
        return (self.end - self.start) / WEEK_S

    @property
    def per_week(self) -> float:
        return self.count / self.weeks


@dataclass(frozen=True, slots=True)
class OutcomeChange:
    """Before vs during a programme for one hot spot."""

    fence_id: str
    name: str | None
    before: Period
    during: Period

    @property
    def change_per_week(self) -> float:
        return self.during.per_week - self.before.per_week

    @property
    def change_pct(self) -> float | None:
        """Change of the weekly rate in percent of the rate before; None when there was none before."""
        if self.before.count == 0:
            return None
        return 100.0 * self.change_per_week / self.before.per_week


async def store_incidents(store: Store, incidents: Sequence[Incident]) -> ImportResult:
    """Insert incidents, replacing those already stored under the same (source, id), in one transaction.

    Each (source, id) may appear once in `incidents`, as the readers in ingest.incidents_csv ensure.
    """
    c = incidents_table.c
    now = time.time()
    new = 0
    async with store.write() as conn:
        pg = conn.dialect.name == "postgresql"
        for i in range(0, len(incidents), CHUNK):
            chunk = incidents[i : i + CHUNK]
            rows = [(x.source, x.incident_id, x.ts, x.ts_end, x.lat, x.lon, x.category, x.harm_weight, now)
                    for x in chunk]  # fmt: skip
            if pg:  # one statement over column arrays; xmax = 0 marks the rows it inserted (not updated)
                result = await conn.exec_driver_sql(_PG_UPSERT, tuple(list(col) for col in zip(*rows, strict=True)))
                new += sum(1 for (inserted,) in result.all() if inserted)
                continue
            by_source: dict[str, list[str]] = {}
            for x in chunk:
                by_source.setdefault(x.source, []).append(x.incident_id)
            existing = 0
            for source, ids in by_source.items():  # a plain IN per source uses the primary key
                query = sa.select(sa.func.count()).where((c.source == source) & c.incident_id.in_(ids))
                existing += int((await conn.execute(query)).scalar_one())
            new += len(chunk) - existing
            await conn.exec_driver_sql(_SQLITE_UPSERT, rows)
    replaced = len(incidents) - new
    return ImportResult(new, replaced)


async def incident_columns(
    store: Store,
    start: float | None = None,
    end: float | None = None,
    *,
    sources: Iterable[str] | None = None,
    categories: Iterable[str] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    overlapping: bool = False,
) -> IncidentColumns:
    """Stored incidents in [start, end) (the module's rule), optionally by source, category and box.

    With `overlapping`, every incident whose time overlaps the range is returned, so the
    caller can tell the partial month-only ones apart.
    """
    c = incidents_table.c
    query = sa.select(c.lon, c.lat, c.category, c.harm_weight, c.ts, c.ts_end)
    if start is not None:
        query = query.where((c.ts_end >= start) if overlapping else (c.ts >= start))
    if end is not None:
        query = query.where(c.ts < end) if overlapping else query.where((c.ts < end) & (c.ts_end <= end))
    if sources is not None:
        query = query.where(c.source.in_(list(sources)))
    if categories is not None:
        query = query.where(c.category.in_(list(categories)))
    if bbox is not None:
        west, south, east, north = bbox
        query = query.where(c.lat.between(south, north) & c.lon.between(west, east))
    async with store.read() as conn:
        rows = (await conn.execute(query)).all()
    lon, lat, names, harm, ts, ts_end = zip(*rows, strict=True) if rows else [()] * 6
    category = np.empty(len(rows), dtype=object)
    category[:] = names

    def floats(col: Sequence[Any]) -> FloatArray:
        return np.array(col, dtype=np.float64)  # harm None -> NaN

    return IncidentColumns(floats(lon), floats(lat), category, floats(harm), floats(ts), floats(ts_end))


async def rank_incidents(
    store: Store,
    start: float | None,
    end: float | None,
    *,
    sources: Iterable[str] | None,
    cell_m: float,
    top: int,
    by: RankBy,
    weights: Mapping[str, float] | None,
) -> Ranking:
    """The stored incidents in [start, end) ranked into cells (`geofence.ranking.rank_cells`)."""
    cols = await incident_columns(store, start, end, sources=sources)
    return rank_cells(cols.lon, cols.lat, cols.category, cell_m=cell_m, top=top, by=by, weights=weights,
                      harm=cols.harm)  # fmt: skip


async def _selected_fences(store: Store, fence_ids: Iterable[str] | None) -> list[Fence]:
    fences, _ = await store.load_fences()
    if fence_ids is None:
        return fences
    wanted = set(fence_ids)
    return [f for f in fences if f.id in wanted]


async def _periods(store: Store, fences: Sequence[Fence], start: float, end: float) -> dict[str, Period]:
    """Per fence: the incidents in [start, end) by category, and the partial month-only ones."""
    out = {f.id: Period(start, end, 0, {}, 0) for f in fences}
    if not fences:
        return out
    index = FenceIndex(fences)
    bounds = np.array([f.area.bounds for f in fences])
    bbox = (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())
    cols = await incident_columns(store, start, end, bbox=bbox, overlapping=True)
    pi, fi = index.match(cols.lon, cols.lat)
    counted = (cols.ts[pi] >= start) & (cols.ts_end[pi] <= end)
    names, cat_of = np.unique(cols.category.astype(str), return_inverse=True)
    pair = fi[counted] * max(len(names), 1) + cat_of.ravel()[pi[counted]]
    per_cat = np.bincount(pair, minlength=len(fences) * len(names)).reshape(len(fences), len(names))
    partial = np.bincount(fi[~counted & (cols.ts_end[pi] > start)], minlength=len(fences))
    for k, fence in enumerate(fences):
        row = per_cat[k]
        cats = {str(names[j]): int(row[j]) for j in np.argsort(-row, kind="stable").tolist() if row[j]}
        out[fence.id] = Period(start, end, int(row.sum()), cats, int(partial[k]))
    return out


async def outcome_counts(
    store: Store, start: float, end: float, fence_ids: Iterable[str] | None = None
) -> dict[str, dict[str, int]]:
    """Fence id -> category -> incidents in [start, end) inside the fence's effective area.

    Every selected fence that exists is a key, with an empty mapping when nothing happened there.
    """
    fences = await _selected_fences(store, fence_ids)
    return {fid: p.categories for fid, p in (await _periods(store, fences, start, end)).items()}


async def before_during(
    store: Store,
    programme_start: float,
    end: float,
    *,
    start: float | None = None,
    fence_ids: Iterable[str] | None = None,
) -> list[OutcomeChange]:
    """Per hot spot, incidents per week in [start, programme_start) vs [programme_start, end).

    `start` defaults to as long before the programme as `end` is after it.
    """
    if not end > programme_start:
        raise ValueError("end must be after programme_start")
    lo = programme_start - (end - programme_start) if start is None else start
    if not programme_start > lo:
        raise ValueError("start must be before programme_start")
    fences = await _selected_fences(store, fence_ids)
    before = await _periods(store, fences, lo, programme_start)
    during = await _periods(store, fences, programme_start, end)
    return [OutcomeChange(f.id, f.name, before[f.id], during[f.id]) for f in fences]


# ---------------------------------------------------------------------- the `hotspots incidents` command


async def import_file(url: str, path: str, source: str) -> tuple[ParsedIncidents, ImportResult]:
    """Read an incident CSV and store its good rows; CsvError when the file cannot be read at all."""
    parsed = read_incident_csv(path, source)
    store = await Store.open(url)
    try:
        return parsed, await store_incidents(store, parsed.incidents)
    finally:
        await store.close()


async def rank_stored(
    url: str,
    *,
    cell_m: float,
    top: int,
    by: RankBy,
    weights: Path | None,
    start: str | None,
    end: str | None,
    sources: Sequence[str] | None,
    buffer_m: float,
) -> tuple[list[str], dict[str, Any]]:
    """`hotspots incidents rank`: a printable table of the top cells and the proposed fences.

    ValueError (or OSError for the weights file) names what is wrong with an option.
    """
    table = None if weights is None else weights_from(_json_file(weights))
    if not (math.isfinite(buffer_m) and buffer_m >= 0):
        raise ValueError(f"--buffer-m must be a number >= 0, got {buffer_m!r}")
    lo, hi = _cli_time("--from", start), _cli_time("--to", end)
    store = await Store.open(url)
    try:
        ranking = await rank_incidents(store, lo, hi, sources=sources, cell_m=cell_m, top=top, by=by, weights=table)
    finally:
        await store.close()
    lines = [
        f"{ranking.incidents} incidents in {ranking.cells_with_incidents} cells of {cell_m:g} m; "
        f"the top {len(ranking.cells)} hold {100 * ranking.top_share:.1f}% of them (ranked by {by})",
        f"{'rank':>4} {'fence id':<22} {'count':>6} {'score':>8}  centre (lat, lon)  top categories",
    ]
    for c in ranking.cells:
        cats = ", ".join(f"{k} {v}" for k, v in list(c.categories.items())[:3])
        lines.append(f"{c.rank:>4} {c.fence_id(cell_m):<22} {c.count:>6} {c.score:>8g}  "
                     f"{(c.south + c.north) / 2:.5f}, {(c.west + c.east) / 2:.5f}  {cats}")  # fmt: skip
    return lines, ranking.feature_collection(buffer_m)


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def _cli_time(flag: str, text: str | None) -> float | None:
    return None if text is None else TIMESTAMP.check(flag, text, text=True)


def weights_from(doc: Any) -> Mapping[str, float]:
    """A harm-weight table from JSON: an object of category -> number >= 0."""
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for k, v in doc.items()
    ):
        raise ValueError("harm weights must be a JSON object of category -> number >= 0")
    return {k: float(v) for k, v in doc.items()}


# ---------------------------------------------------------------------- outcomes beside dosage


@dataclass(frozen=True, slots=True)
class Dosed:
    """A hot spot's incidents in a period beside the dosage it got then: visits entered and dwell."""

    period: Period
    visits: int
    dwell_s: float


@dataclass(frozen=True, slots=True)
class FenceOutcome:
    """A hot spot's incidents and dosage over the whole range and, around a programme start, the
    periods before and during it with the change in the weekly rate (`change`)."""

    fence_id: str
    name: str | None
    whole: Dosed
    before: Dosed | None = None
    during: Dosed | None = None
    change: OutcomeChange | None = None


async def _dosed(store: Store, periods: Mapping[str, Period]) -> dict[str, Dosed]:
    """Each fence's period beside its dosage over the same period (one period for every fence)."""
    some = next(iter(periods.values()), None)
    dosage: dict[str | None, DwellRow] = {}
    if some is not None:
        dosage = {r.fence_id: r for r in await store.dwell(some.start, some.end, group_by="fence")}
    out = {}
    for fid, p in periods.items():
        d = dosage.get(fid)
        out[fid] = Dosed(p, d.visits if d else 0, d.dwell_s if d else 0.0)
    return out


async def outcomes(
    store: Store,
    start: float,
    end: float,
    *,
    programme_start: float | None = None,
    fence_ids: Iterable[str] | None = None,
) -> list[FenceOutcome]:
    """Incidents per hot spot (all, or `fence_ids`: NotFound names those unknown) in [start, end)
    beside dosage; with `programme_start`, also [start, programme_start) vs [programme_start, end)."""
    fences = await _selected_fences(store, fence_ids)
    if fence_ids is not None:
        unknown = sorted(set(fence_ids) - {f.id for f in fences})
        if unknown:
            raise NotFound(f"no fence {', '.join(map(repr, unknown))}")
    whole = await _dosed(store, await _periods(store, fences, start, end))
    if programme_start is None:
        return [FenceOutcome(f.id, f.name, whole[f.id]) for f in fences]
    changes = await before_during(store, programme_start, end, start=start, fence_ids=[f.id for f in fences])
    before = await _dosed(store, {c.fence_id: c.before for c in changes})
    during = await _dosed(store, {c.fence_id: c.during for c in changes})
    return [
        FenceOutcome(c.fence_id, c.name, whole[c.fence_id], before[c.fence_id], during[c.fence_id], c) for c in changes
    ]
