"""Dwell figures over a time range (SEMANTICS.md "Dwell totals"): from the visits, or for long
ranges from the daily rollup of closed visits. The interval arithmetic is `geofence.intervals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from geofence.intervals import (
    DAY_S,
    HOUR_S,
    FloatArray,
    IntArray,
    bucket_start,
    codes,
    day_start,
    pieces,
    sum_by,
    union_by,
    whole_days,
)
from services.store.database import Database, columns
from services.store.tables import devices_table, dwell_days, lost_gaps, query_state, visits

GroupBy = Literal["fence", "device", "day", "hour"]
_BUCKET_S: dict[str, float] = {"day": DAY_S, "hour": HOUR_S}
#: The figures of a DwellRow that `_dwell_rows` sums.
FIGURES = ("visits", "dwell_s", "active_s", "inside_s", "lost_s")


@dataclass(slots=True)
class DwellRow:
    """Dwell figures of one group over a time range (see `Store.dwell`).

    The group is given by the fields its dimensions fill: `fence_id`, `device_id`, and
    `bucket` (start of the UTC day or hour, epoch seconds). The per-device totals
    (`active_s`, `inside_s`, `outside_s`, `lost_s`) are filled only for rows grouped by
    device and not by fence, without a fence filter; otherwise they are None.
    """

    fence_id: str | None = None
    device_id: str | None = None
    bucket: float | None = None
    visits: int = 0
    dwell_s: float = 0.0
    active_s: float | None = None
    inside_s: float | None = None
    outside_s: float | None = None
    lost_s: float | None = None


def _dwell_rows(
    lo: float,
    hi: float,
    width: float | None,
    dims: set[str],
    visit_rows: Sequence[tuple[Any, ...]],
    spans: Sequence[tuple[Any, ...]] | None,
    gaps: Sequence[tuple[Any, ...]],
) -> list[DwellRow]:
    """Store.dwell in numpy: visits cut into buckets, and the per-device totals (when spans given).

    Each figure is gathered as items (fence, device, bucket, seconds or count) and summed per row
    at the end, in the order gathered: the same sums as a loop over visits, spans and gaps.
    """
    by_fence, by_device = "fence" in dims, "device" in dims
    v, s, g = (columns(rows) or ([],) * n for rows, n in ((visit_rows, 4), (spans or [], 3), (gaps, 3)))
    devices, device = codes([*v[0], *s[0], *g[0]])
    fences, fence = codes(v[1])
    v_device, s_device, g_device = np.split(device, [len(v[0]), len(v[0]) + len(s[0])])
    enter, end = np.array(v[2], np.float64), np.array(v[3], np.float64)
    items: list[tuple[IntArray, IntArray, FloatArray, FloatArray, int]] = []  # fence, device, bucket, value, figure

    def add(of_fence: IntArray | None, of_device: IntArray, bucket: FloatArray, figure: str, value: Any) -> None:
        none = np.full(len(of_device), -1)
        of_fence = of_fence if by_fence and of_fence is not None else none
        value = np.broadcast_to(np.asarray(value, np.float64), len(of_device))
        items.append((of_fence, of_device if by_device else none, bucket, value, FIGURES.index(figure)))

    def bucket_of(ts: FloatArray) -> FloatArray:
        return np.zeros(len(ts)) if width is None else bucket_start(ts, width)

    def cut(starts: FloatArray, ends: FloatArray) -> tuple[IntArray, FloatArray, FloatArray]:
        i, bucket, secs = pieces(starts, ends, width)
        return i, np.nan_to_num(bucket), secs

    entered = np.flatnonzero((enter >= lo) & (enter < hi))
    add(fence[entered], v_device[entered], bucket_of(enter[entered]), "visits", 1.0)
    a, b = np.maximum(enter, lo), np.minimum(end, hi)
    i, bucket, secs = cut(a, b)
    add(fence[i], v_device[i], bucket, "dwell_s", secs)
    if spans is not None:
        first, last = np.maximum(np.array(s[1], np.float64), lo), np.minimum(np.array(s[2], np.float64), hi)
        add(None, s_device, bucket_of(first), "active_s", 0.0)  # every device active in the range has a row
        i, bucket, secs = cut(first, last)
        add(None, s_device[i], bucket, "active_s", secs)
        i, bucket, secs = cut(np.maximum(np.array(g[1], np.float64), lo), np.minimum(np.array(g[2], np.float64), hi))
        add(None, g_device[i], bucket, "lost_s", secs)
        add(None, g_device[i], bucket, "active_s", -secs)
        covered = b > a
        u_device, u_start, u_end = union_by(v_device[covered], a[covered], b[covered])
        i, bucket, secs = cut(u_start, u_end)
        add(None, u_device[i], bucket, "inside_s", secs)
    f, d, k, value = (np.concatenate([item[j] for item in items]) for j in range(4))
    figure = np.repeat([item[4] for item in items], [len(item[3]) for item in items])
    slot = np.rint(k / (width or 1.0)).astype(np.int64)
    first_of, sums = sum_by([f, d, slot], figure, value, len(FIGURES))
    out = []
    rows = zip(f[first_of].tolist(), d[first_of].tolist(), k[first_of].tolist(), sums.tolist(), strict=True)
    for fi, di, ki, (n, dwell_s, active_s, inside_s, lost_s) in rows:
        row = DwellRow(
            None if fi < 0 else fences[fi],
            None if di < 0 else devices[di],
            None if width is None else ki,
            round(n),
            dwell_s,
        )
        if spans is not None:
            row.active_s, row.inside_s, row.outside_s, row.lost_s = active_s, inside_s, active_s - inside_s, lost_s
        out.append(row)
    return out


class DwellStore(Database):
    """Dwell: `dwell`, and `visits_in` for the measures that clip visits to a range themselves."""

    async def dwell(
        self,
        from_ts: float,
        to_ts: float,
        fence_id: str | None = None,
        device_id: str | None = None,
        group_by: GroupBy | Sequence[GroupBy] = "fence",
    ) -> list[DwellRow]:
        """Dwell figures over [from_ts, to_ts), grouped by fence, device, day or hour, or several
        of them (e.g. ("fence", "device"), ("device", "day")); rows sorted by fence, device, bucket.

        Per SEMANTICS.md "Dwell totals": `visits` counts the ENTERs in the range (in the bucket
        of the ENTER), `dwell_s` sums the overlap of the range (and bucket) with each visit, an
        open visit counting up to its device's last ping, not up to now. Day and hour buckets
        are UTC (bucket = start epoch seconds); a visit crossing a boundary is split.

        Grouped by device (not by fence) and without `fence_id`, each row also has the device's
        totals of docs/semantics.md within the range and bucket: `active_s` = the time between
        its first and last ping minus its signal-loss gaps, `inside_s` = the union of its visits
        (overlapping fences count once), `outside_s` = active - inside, `lost_s` = the gaps
        (a gap still open counts nothing yet). Every device with a ping in the range (or pings
        on both sides of it) gets a row then, even with nothing but zeros.
        Rows with neither a visit nor dwell (nor, for devices, totals) are left out.

        Grouped by fence and/or day without a device, a range holding whole UTC days reads those
        days from the rollup of closed visits and only the partial days at its ends, and the open
        visits, from the visits: the same figures (to float rounding) at a fraction of the cost.
        """
        dims: set[str] = {group_by} if isinstance(group_by, str) else set(group_by)
        if not dims or not dims <= {"fence", "device", "day", "hour"} or {"day", "hour"} <= dims:
            raise ValueError(f"group_by must name fence, device, day or hour (one of day/hour), got {group_by!r}")
        lo, hi = float(from_ts), float(to_ts)
        width = next((_BUCKET_S[b] for b in ("day", "hour") if b in dims), None)
        totals = "device" in dims and "fence" not in dims and fence_id is None
        async with self.read() as conn:
            if self._pg:  # the planner prices the last-ping subquery per visit and would JIT-compile
                await conn.execute(sa.text("SET LOCAL jit = off"))  # the scan: ~150 ms lost per query
            if device_id is None and dims <= {"fence", "day"} and whole_days(lo, hi) is not None:
                return await self._dwell_rolled_up(conn, lo, hi, fence_id, dims)
            if width is None and not totals:
                return await self._dwell_sql(conn, lo, hi, self.visits_in(lo, hi, fence_id, device_id), dims)
            visit_rows = [tuple(r) for r in (await conn.execute(self.visits_in(lo, hi, fence_id, device_id))).all()]
            spans: list[tuple[Any, ...]] = []
            gaps: list[tuple[Any, ...]] = []
            if totals:
                d, g = devices_table.c, lost_gaps.c
                span_q = sa.select(d.device_id, d.first_ts, d.last_ts).where((d.first_ts < hi) & (d.last_ts >= lo))
                gap_q = sa.select(g.device_id, g.start_ts, g.end_ts).where(
                    (g.start_ts < hi) & (g.end_ts > lo) & g.end_ts.is_not(None)
                )
                if device_id is not None:
                    span_q = span_q.where(d.device_id == device_id)
                    gap_q = gap_q.where(g.device_id == device_id)
                spans = [tuple(r) for r in (await conn.execute(span_q)).all()]
                gaps = [tuple(r) for r in (await conn.execute(gap_q)).all()]
        return _dwell_rows(lo, hi, width, dims, visit_rows, spans if totals else None, gaps)

    def visits_in(self, lo: float, hi: float, fence_id: str | None, device_id: str | None) -> sa.Select[Any]:
        """Visits that may overlap [lo, hi): device, fence, enter_ts, end (exit, or the device's last ping).

        The last ping is a correlated subquery inside COALESCE, not a join: both databases look it
        up only for the few open visits, and the scan of the rest reads visits_fence_span alone.
        """
        v, d = visits.c, devices_table.c
        last_ping = sa.select(d.last_ts).where(d.device_id == v.device_id).scalar_subquery()
        end = sa.func.coalesce(v.exit_ts, last_ping, v.enter_ts)
        query = sa.select(v.device_id, v.fence_id, v.enter_ts, end.label("end_ts")).where(
            (v.enter_ts < hi) & ((v.exit_ts >= lo) | v.exit_ts.is_(None))
        )
        if fence_id is not None:
            query = query.where(v.fence_id == fence_id)
        if device_id is not None:
            query = query.where(v.device_id == device_id)
        return query

    async def _dwell_rolled_up(
        self, conn: AsyncConnection, lo: float, hi: float, fence_id: str | None, dims: set[str]
    ) -> list[DwellRow]:
        """Store.dwell by fence and/or day over a range holding whole days [a, b): the closed
        visits of those days from the rollup, those of the partial days [lo, a) and [b, hi) from
        the visits (found by exit_ts: a closed visit ends at most the longest visit after it
        starts), and the open visits, few, from the visits over the whole range."""
        days = whole_days(lo, hi)
        assert days is not None
        a, b = days
        by_fence, by_day = "fence" in dims, "day" in dims
        acc: dict[tuple[str | None, float | None], DwellRow] = {}

        def add(fence: str | None, bucket: float | None, visits_n: int, dwell_s: float) -> None:
            key = (fence if by_fence else None, bucket if by_day else None)
            row = acc.get(key)
            if row is None:
                row = acc[key] = DwellRow(fence_id=key[0], bucket=key[1])
            row.visits += visits_n
            row.dwell_s += dwell_s

        r = dwell_days.c
        keys = [r.fence_id if by_fence else sa.null(), r.day if by_day else sa.null()]
        rolled = sa.select(*keys, sa.func.sum(r.visits), sa.func.sum(r.dwell_s)).where((r.day >= a) & (r.day < b))
        if fence_id is not None:
            rolled = rolled.where(r.fence_id == fence_id)
        rolled = rolled.group_by(*(k for k in keys if not isinstance(k, sa.Null)))
        for summed in (await conn.execute(rolled)).all():
            add(summed[0], summed[1], int(summed[2]), float(summed[3]))
        longest = (await conn.execute(sa.select(query_state.c.longest_visit_s))).scalar_one()
        v = visits.c
        for x, y in ((lo, a), (b, hi)):
            if y <= x:
                continue
            closed = sa.select(sa.null().label("device_id"), v.fence_id, v.enter_ts, v.exit_ts.label("end_ts")).where(
                (v.exit_ts >= x) & (v.exit_ts <= y + longest + 1.0) & (v.enter_ts < y)
            )
            if fence_id is not None:
                closed = closed.where(v.fence_id == fence_id)
            for row in await self._dwell_sql(conn, x, y, closed, dims & {"fence"}):
                add(row.fence_id, day_start(x), row.visits, row.dwell_s)
        open_q = self.visits_in(lo, hi, fence_id, None).where(v.exit_ts.is_(None))
        open_rows = [tuple(row) for row in (await conn.execute(open_q)).all()]
        for row in _dwell_rows(lo, hi, DAY_S if by_day else None, dims, open_rows, None, []):
            add(row.fence_id, row.bucket, row.visits, row.dwell_s)
        return [acc[k] for k in sorted(acc, key=lambda k: (k[0] or "", k[1] or 0.0)) if acc[k].visits or acc[k].dwell_s]

    async def _dwell_sql(
        self, conn: AsyncConnection, lo: float, hi: float, visits_q: sa.Select[Any], dims: set[str]
    ) -> list[DwellRow]:
        """Visits (device, fence, enter_ts, end_ts) over [lo, hi) grouped by fence and/or device
        (or all together), without buckets or totals: summed in the database."""
        inner = visits_q.subquery()
        greatest, least = (sa.func.greatest, sa.func.least) if self._pg else (sa.func.max, sa.func.min)
        lo_p, hi_p = sa.literal(lo, sa.Float), sa.literal(hi, sa.Float)
        overlap = greatest(least(inner.c.end_ts, hi_p) - greatest(inner.c.enter_ts, lo_p), sa.literal(0.0, sa.Float))
        entered = sa.case(((inner.c.enter_ts >= lo_p) & (inner.c.enter_ts < hi_p), 1), else_=0)
        keys = [
            inner.c.fence_id if "fence" in dims else sa.null(),
            inner.c.device_id if "device" in dims else sa.null(),
        ]
        group = [k for k in keys if not isinstance(k, sa.Null)]
        visits_n, dwell_s = sa.func.sum(entered), sa.func.sum(overlap)
        query = (
            sa.select(*(k.label(n) for k, n in zip(keys, ("fence_id", "device_id"), strict=True)), visits_n, dwell_s)
            .group_by(*group)
            .having((visits_n > 0) | (dwell_s > 0))
            .order_by(*group)
        )
        rows = (await conn.execute(query)).all()
        return [DwellRow(fence_id=r[0], device_id=r[1], visits=int(r[2]), dwell_s=float(r[3])) for r in rows]
