"""Plan compliance from visits: merging, clipping to window occurrences, qualifying, grouping.

The rules (docs/semantics.md, "Compliance"):

- Visits are an officer's (the devices one officer carries count once; a device without an
  officer stands for itself). An officer's visits to one fence separated by an exit -> re-entry
  gap of at most `merge_s` (or overlapping) are one visit, from the first ENTER to the last EXIT
  (the short gap counts as part of it: an officer on the boundary, not a second visit). Raw
  events and dwell are untouched.
- A merged visit counts in a window occurrence only for its part inside the occurrence
  (and before `as_of`): a visit from 19:50 to 20:12 gives a 20:00 window 12 minutes.
- It *qualifies* when that clipped part lasts at least the plan's `min_visit_min`.
- Delivered visits and delivered minutes count qualifying visits only; visits that do not
  qualify appear in `short_visits` and nowhere else.
- Length classes of the clipped part: short (< min), guideline (min..target inclusive), long.
- compliance_pct = delivered / planned visits x 100, not capped (more visits than planned > 100).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from geofence.plans import Occurrence

GroupBy = Literal["window", "fence", "team", "officer"]
FloatArray = npt.NDArray[np.float64]

#: Length classes of a clipped visit.
SHORT, GUIDELINE, LONG = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ComplianceRow:
    """Planned vs delivered dosage of one group (one window occurrence, fence, team or officer).

    For an officer, the planned figures are those of every occurrence reported, so
    compliance_pct is the share of the plan that officer delivered.
    """

    plan_id: str | None
    fence_id: str | None
    team: str | None
    officer_id: str | None
    window_start: float | None
    window_end: float | None
    planned_visits: int
    delivered_visits: int
    planned_minutes: float
    delivered_minutes: float
    target_pct: float
    compliance_pct: float | None
    short_visits: int
    guideline_visits: int
    long_visits: int
    gap_breaches: int  # gaps without a qualifying visit longer than max_gap_min, edges of the window included


@dataclass(frozen=True, slots=True)
class DueRow:
    """A window open now whose hot spot is behind the pro-rata plan (shortfall_minutes > 0)."""

    plan_id: str
    fence_id: str
    fence_name: str | None
    team: str | None
    window_start: float
    window_end: float
    planned_visits: int
    delivered_visits: int
    planned_minutes: float
    delivered_minutes: float
    compliance_pct: float | None
    shortfall_minutes: float


@dataclass(frozen=True, slots=True)
class Visits:
    """Visits as columns: who (officer, else device), fence, start and end (epoch seconds)."""

    who: npt.NDArray[np.object_]
    fence: npt.NDArray[np.object_]
    start: FloatArray
    end: FloatArray

    @classmethod
    def of(cls, rows: Sequence[tuple[str, str, float, float]]) -> Visits:
        """From (who, fence, start, end) rows."""
        who = np.empty(len(rows), dtype=object)
        fence = np.empty(len(rows), dtype=object)
        who[:] = [r[0] for r in rows]
        fence[:] = [r[1] for r in rows]
        return cls(
            who, fence, np.array([r[2] for r in rows], dtype=np.float64), np.array([r[3] for r in rows], np.float64)
        )


def _codes(names: npt.NDArray[np.object_]) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.intp]]:
    """Distinct strings (sorted) and each element's index among them: ids as integers for numpy."""
    distinct, inverse = np.unique(names.astype(str), return_inverse=True)
    return distinct, inverse.astype(np.intp)


def _running_max(group: npt.NDArray[np.intp], values: FloatArray) -> FloatArray:
    """The running maximum of `values` restarting at each group (rows sorted by group), in one pass:
    a running max over group * n + rank(value) cannot reach back into an earlier group."""
    n = len(values)
    ranked = np.sort(values)
    top = np.maximum.accumulate(group * n + np.searchsorted(ranked, values))
    result: FloatArray = ranked[top - group * n]
    return result


def merge_visits(visits: Visits, merge_s: float) -> Visits:
    """One visit per run of someone's visits to a fence whose gaps (from the latest exit so far,
    so overlapping visits of two devices of one officer join) are <= merge_s."""
    n = len(visits.start)
    if n == 0:
        return visits
    who, fence = _codes(visits.who)[1], _codes(visits.fence)[1]
    order = np.lexsort((visits.start, fence, who))
    who, fence, start, end = who[order], fence[order], visits.start[order], visits.end[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (who[1:] != who[:-1]) | (fence[1:] != fence[:-1])
    reach = _running_max(np.cumsum(new) - 1, end)
    new[1:] |= start[1:] - reach[:-1] > merge_s
    firsts = np.flatnonzero(new)
    kept = order[firsts]
    return Visits(visits.who[kept], visits.fence[kept], start[firsts], np.maximum.reduceat(end, firsts))


@dataclass(frozen=True, slots=True)
class Credits:
    """Each (occurrence, merged visit) pair that overlaps: what the visit gives the occurrence."""

    occ: npt.NDArray[np.intp]  # index into the occurrences
    visit: npt.NDArray[np.intp]  # index into the merged visits
    who: npt.NDArray[np.object_]
    start: FloatArray  # clipped to the occurrence
    end: FloatArray
    qualifying: npt.NDArray[np.bool_]
    length_class: npt.NDArray[np.intp]

    @property
    def seconds(self) -> FloatArray:
        return self.end - self.start


def credit(occs: Sequence[Occurrence], merged: Visits, as_of: float) -> Credits:
    """Clip every merged visit to every occurrence of its fence (up to `as_of`) and classify it."""
    names, code = _codes(merged.fence)
    by_fence = np.argsort(code, kind="stable")
    bounds = np.searchsorted(code[by_fence], np.arange(len(names) + 1))
    slot = {str(name): i for i, name in enumerate(names)}
    ks_of: dict[int, list[int]] = {}
    for k, o in enumerate(occs):
        if o.plan.fence_id in slot:
            ks_of.setdefault(slot[o.plan.fence_id], []).append(k)
    parts: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray, FloatArray]] = []
    for f, ks in ks_of.items():
        vi = by_fence[bounds[f] : bounds[f + 1]]
        k_arr = np.array(sorted(ks, key=lambda k: occs[k].start), dtype=np.intp)
        o_start = np.array([occs[k].start for k in k_arr])
        o_end = np.minimum(np.array([occs[k].end for k in k_arr]), as_of)
        longest = float((o_end - o_start).max())
        # An interval join: the occurrences that can overlap a visit start in (its start - longest, its end).
        first = np.searchsorted(o_start, merged.start[vi] - longest, side="right")
        count = np.searchsorted(o_start, merged.end[vi], side="left") - first
        count = np.maximum(count, 0)
        v_rep = np.repeat(vi, count)
        o_rep = np.repeat(first - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
        lo = np.maximum(merged.start[v_rep], o_start[o_rep])
        hi = np.minimum(merged.end[v_rep], o_end[o_rep])
        keep = hi > lo
        parts.append((k_arr[o_rep[keep]], v_rep[keep], lo[keep], hi[keep]))
    occ = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.intp)
    vis = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.intp)
    start = np.concatenate([p[2] for p in parts]) if parts else np.empty(0)
    end = np.concatenate([p[3] for p in parts]) if parts else np.empty(0)
    min_s = np.array([o.plan.min_visit_min * 60.0 for o in occs])[occ]
    target_s = np.array([o.plan.target_visit_min * 60.0 for o in occs])[occ]
    seconds = end - start
    qualifying = seconds >= min_s
    length_class = np.where(qualifying, np.where(seconds > target_s, LONG, GUIDELINE), SHORT).astype(np.intp)
    return Credits(occ, vis, merged.who[vis], start, end, qualifying, length_class)


def gap_breaches(occs: Sequence[Occurrence], credits: Credits, as_of: float) -> npt.NDArray[np.int64]:
    """Per occurrence: gaps longer than the plan's max_gap_min without a qualifying visit present,
    from the window's start to its end (or `as_of`, if earlier); 0 for plans without max_gap_min."""
    n = len(occs)
    max_gap = np.array([o.plan.max_gap_min * 60.0 if o.plan.max_gap_min else np.inf for o in occs])
    o_start = np.array([o.start for o in occs])
    o_end = np.minimum(np.array([o.end for o in occs]), as_of)
    q = np.flatnonzero(credits.qualifying)
    order = q[np.lexsort((credits.start[q], credits.occ[q]))]
    occ, start = credits.occ[order], credits.start[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = occ[1:] != occ[:-1]
    covered = _running_max(np.cumsum(first) - 1, credits.end[order])  # latest end so far in the window
    before = np.where(first, o_start[occ], np.roll(covered, 1))  # where the gap before each visit starts
    inner = np.bincount(occ, weights=start - before > max_gap[occ], minlength=n)
    trailing_from = o_start.copy()  # where the gap before the window's end starts
    if len(order):
        last = np.flatnonzero(np.append(first[1:], True))  # the last visit of each window that has one
        trailing_from[occ[last]] = covered[last]
    trailing = o_end - trailing_from > max_gap
    return np.where(o_start < as_of, inner + trailing, 0).astype(np.int64)


def compliance_rows(
    occs: Sequence[Occurrence],
    merged: Visits,
    as_of: float,
    group_by: GroupBy,
) -> list[ComplianceRow]:
    """Planned vs delivered per window occurrence, fence, team or officer, sorted by that key."""
    credits = credit(occs, merged, as_of)
    planned = np.array([o.planned_visits for o in occs], dtype=np.float64)
    planned_min = np.array([o.planned_minutes for o in occs])
    target = np.array([o.plan.target_pct for o in occs])
    q = credits.qualifying
    if group_by == "officer":  # each officer against every occurrence: planned figures are the totals
        labels, of_credit = _codes(credits.who)
        g = len(labels)
        visits_planned, minutes_planned = np.full(g, planned.sum()), np.full(g, planned_min.sum())
        weighted_target = np.full(g, (planned * target).sum())
        breaches: npt.NDArray[Any] = np.zeros(g)
        firsts: list[Occurrence | None] = [None] * g
    else:
        keys = [_KEYS[group_by](o) for o in occs]
        distinct = sorted(set(keys), key=_sortable)
        index = {key: i for i, key in enumerate(distinct)}
        of_occ = np.array([index[key] for key in keys], dtype=np.intp)
        g, of_credit = len(distinct), of_occ[credits.occ]
        visits_planned = np.bincount(of_occ, weights=planned, minlength=g)
        minutes_planned = np.bincount(of_occ, weights=planned_min, minlength=g)
        weighted_target = np.bincount(of_occ, weights=planned * target, minlength=g)
        breaches = np.bincount(of_occ, weights=gap_breaches(occs, credits, as_of), minlength=g)
        first_of = np.zeros(g, dtype=np.intp)
        first_of[of_occ[::-1]] = np.arange(len(occs))[::-1]  # occurrences come sorted by start
        firsts = [occs[k] for k in first_of.tolist()]
    delivered = np.bincount(of_credit, weights=q, minlength=g)
    minutes = np.bincount(of_credit, weights=np.where(q, credits.seconds, 0.0), minlength=g) / 60.0
    classes = np.bincount(of_credit * 3 + credits.length_class, minlength=3 * g).reshape(g, 3)
    rows = []
    for i, o in enumerate(firsts):
        window = o is not None and group_by == "window"
        rows.append(
            ComplianceRow(
                plan_id=o.plan.plan_id if o and window else None,
                fence_id=o.plan.fence_id if o and group_by in ("window", "fence") else None,
                team=o.plan.team if o and group_by in ("window", "team") else None,
                officer_id=str(labels[i]) if o is None else None,
                window_start=o.start if o and window else None,
                window_end=o.end if o and window else None,
                planned_visits=int(visits_planned[i]), delivered_visits=int(delivered[i]),
                planned_minutes=float(minutes_planned[i]), delivered_minutes=float(minutes[i]),
                # several plans with different targets: the target of the average planned visit
                target_pct=float(weighted_target[i] / visits_planned[i]),
                compliance_pct=float(delivered[i] * 100.0 / visits_planned[i]),
                short_visits=int(classes[i, SHORT]), guideline_visits=int(classes[i, GUIDELINE]),
                long_visits=int(classes[i, LONG]), gap_breaches=int(breaches[i]),
            )
        )  # fmt: skip
    return rows


_KEYS: dict[str, Callable[[Occurrence], Hashable]] = {
    "window": lambda o: (o.start, o.plan.plan_id, o.window),
    "fence": lambda o: o.plan.fence_id,
    "team": lambda o: o.plan.team,
}


def _sortable(key: Any) -> tuple[bool, Any]:
    """None (no team) sorts last."""
    return (key is None, "" if key is None else key)


def due_rows(
    occs: Sequence[Occurrence], merged: Visits, now: float, fence_names: Mapping[str, str | None]
) -> list[DueRow]:
    """Occurrences open at `now` whose delivered minutes are behind the pro-rata plan, most behind first.

    Pro rata: by now, planned_minutes x (now - start) / (end - start) should have been delivered.
    """
    open_now = [o for o in occs if o.start <= now < o.end]
    credits = credit(open_now, merged, now)
    q = credits.qualifying
    delivered = np.bincount(credits.occ[q], minlength=len(open_now))
    minutes = np.bincount(credits.occ[q], weights=credits.seconds[q], minlength=len(open_now)) / 60.0
    out = []
    for k, o in enumerate(open_now):
        shortfall = o.planned_minutes * (now - o.start) / (o.end - o.start) - float(minutes[k])
        if shortfall <= 0:
            continue
        out.append(
            DueRow(
                plan_id=o.plan.plan_id, fence_id=o.plan.fence_id, fence_name=fence_names.get(o.plan.fence_id),
                team=o.plan.team, window_start=o.start, window_end=o.end, planned_visits=o.planned_visits,
                delivered_visits=int(delivered[k]), planned_minutes=o.planned_minutes,
                delivered_minutes=float(minutes[k]), compliance_pct=int(delivered[k]) * 100.0 / o.planned_visits,
                shortfall_minutes=shortfall,
            )
        )  # fmt: skip
    out.sort(key=lambda r: (-r.shortfall_minutes, r.plan_id))
    return out
