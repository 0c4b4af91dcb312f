"""Interval arithmetic for dwell and officer time: unions of spans, UTC buckets, overlaps, sums per group.

Times are epoch seconds and intervals half-open [start, end), given as parallel arrays so a
query's thousands of visits are cut, merged and summed in numpy, not one by one in Python.
Buckets are UTC days or hours: epoch 0 is a UTC midnight, so a bucket starts at a multiple of
its width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

DAY_S = 86_400.0
HOUR_S = 3_600.0


def bucket_start(ts: FloatArray, width: float) -> FloatArray:
    """Start of the bucket of `width` seconds holding each ts."""
    k: FloatArray = np.floor(ts / width) * width
    return np.where(k > ts, k - width, k)  # floor of a quotient rounded up to the next integer


def day_start(ts: float) -> float:
    """Start of the UTC day holding ts."""
    return float(bucket_start(np.array(ts), DAY_S))


def whole_days(lo: float, hi: float) -> tuple[float, float] | None:
    """[a, b): the whole UTC days within [lo, hi), None if there are none."""
    a = day_start(lo)
    a = a if a >= lo else a + DAY_S
    b = day_start(hi)
    return (a, b) if b > a else None


def pieces(starts: FloatArray, ends: FloatArray, width: float | None) -> tuple[IntArray, FloatArray, FloatArray]:
    """The intervals cut at bucket boundaries: (interval index, bucket start, seconds) of each
    non-empty piece, by interval then time. Without a width each non-empty interval is one
    piece and its bucket is NaN."""
    if width is None:
        index = np.flatnonzero(ends > starts)
        return index, np.full(len(index), np.nan), ends[index] - starts[index]
    first = bucket_start(starts, width)
    count = np.where(ends > starts, np.ceil((ends - first) / width), 0).astype(np.intp)
    index = np.repeat(np.arange(len(starts)), count)
    nth = np.arange(len(index)) - np.repeat(np.cumsum(count) - count, count)
    bucket = first[index] + nth * width
    seconds = np.minimum(bucket + width, ends[index]) - np.maximum(bucket, starts[index])
    keep = seconds > 0
    return index[keep], bucket[keep], seconds[keep]


def union(starts: FloatArray, ends: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Disjoint sorted intervals covering the same time as [starts, ends) (touching ones merge)."""
    if len(starts) == 0:
        return starts, ends
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    first = np.flatnonzero(np.concatenate(([True], s[1:] > reach[:-1])))
    return s[first], reach[np.append(first[1:] - 1, len(s) - 1)]


def union_by(groups: IntArray, starts: FloatArray, ends: FloatArray) -> tuple[IntArray, FloatArray, FloatArray]:
    """`union` within each group (e.g. per device): (group, start, end), by group then time.

    Times are replaced by their rank among all the times and each group's ranks shifted past
    the previous group's, so one `union` over all groups cannot merge across them (and the
    shifted ranks, unlike shifted times, lose no precision).
    """
    if len(starts) == 0:
        return groups, starts, ends
    times, rank = np.unique(np.concatenate((starts, ends)), return_inverse=True)
    shift = groups.astype(np.float64) * len(times)
    s, e = union(rank[: len(starts)] + shift, rank[len(starts) :] + shift)
    group = (s // len(times)).astype(np.intp)
    return group, times[(s - group * len(times)).astype(np.intp)], times[(e - group * len(times)).astype(np.intp)]


def measure(starts: FloatArray, ends: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    """Per window [a[i], b[i]] (a <= b), its overlap with the disjoint sorted intervals [starts, ends)."""
    if len(starts) == 0:
        return np.zeros(len(a))
    lengths = ends - starts
    before = np.concatenate(([0.0], np.cumsum(lengths)[:-1]))

    def covered_until(t: FloatArray) -> FloatArray:
        k = np.searchsorted(starts, t, side="right") - 1  # the last interval starting at or before t
        at = np.maximum(k, 0)
        return np.where(k >= 0, before[at] + np.clip(t - starts[at], 0.0, lengths[at]), 0.0)

    return covered_until(b) - covered_until(a)


def codes(names: Sequence[str]) -> tuple[list[str], IntArray]:
    """The distinct names, sorted, and each name's index among them: ids as integers for numpy
    (hashed, not sorted one by one: sorting an array of strings compares them in Python)."""
    distinct = sorted(dict.fromkeys(names))
    index = {name: i for i, name in enumerate(distinct)}
    return distinct, np.fromiter(map(index.__getitem__, names), np.intp, len(names))


def sum_by(keys: Sequence[IntArray], column: IntArray, value: FloatArray, columns: int) -> tuple[IntArray, FloatArray]:
    """Sums of `value` per group of equal keys (int arrays) and per column, each added in the
    order given, as a loop over them would: (index of each group's first item, sums of shape
    (groups, columns)), the groups ordered by their keys, the first key first."""
    key = np.zeros(len(value), np.int64)
    for k in keys:
        low, high = (int(k.min()), int(k.max())) if len(k) else (0, 0)
        key = key * (high - low + 1) + (k - low)
    groups, first, group_of = np.unique(key, return_index=True, return_inverse=True)
    sums = np.asarray(np.bincount(group_of * columns + column, value, len(groups) * columns), np.float64)
    return first.astype(np.intp), sums.reshape(-1, columns)
