"""Interval arithmetic, worked by hand. M is a UTC midnight; H an hour, D a day."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from geofence.intervals import (
    DAY_S,
    HOUR_S,
    bucket_start,
    codes,
    day_start,
    measure,
    pieces,
    sum_by,
    union,
    union_by,
    whole_days,
)

M = datetime(2026, 11, 22, tzinfo=UTC).timestamp()
H, D = HOUR_S, DAY_S


def arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


@pytest.mark.parametrize(
    ("spans", "merged"),
    [
        ([], []),  # nothing covers nothing
        ([(0, 10), (5, 20)], [(0, 20)]),  # overlapping
        ([(0, 10), (10, 20)], [(0, 20)]),  # touching: one stretch of time
        ([(0, 30), (5, 10), (12, 20)], [(0, 30)]),  # nested in the first
        ([(20, 30), (0, 10)], [(0, 10), (20, 30)]),  # disjoint, given out of order
        ([(0, 10), (2, 4), (8, 15), (40, 50), (45, 46)], [(0, 15), (40, 50)]),  # a later one extends the first
        ([(5, 5), (5, 8)], [(5, 8)]),  # an empty span touching another
    ],
)
def test_union_spans_disjoint_sorted_cover(spans: list[tuple[float, float]], merged: list[tuple[float, float]]) -> None:
    s, e = np.array(spans, dtype=np.float64).reshape(-1, 2).T
    starts, ends = union(s, e)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == merged


def test_union_by_same_times_in_two_groups_never_merge_across() -> None:
    groups = np.array([1, 0, 1, 0, 2], dtype=np.intp)
    starts, ends = arr(M, M + 5, M + 10, M, M + 0.25), arr(M + 10, M + 8, M + 20, M + 6, M + 0.5)
    g, s, e = union_by(groups, starts, ends)
    assert list(zip(g.tolist(), (s - M).tolist(), (e - M).tolist(), strict=True)) == [
        (0, 0.0, 8.0),  # (0, 6) and (5, 8) overlap
        (1, 0.0, 20.0),  # (0, 10) and (10, 20) touch
        (2, 0.25, 0.5),  # fractions of a second kept exactly
    ]


def test_union_by_no_spans_empty() -> None:
    g, s, e = union_by(np.array([], dtype=np.intp), arr(), arr())
    assert (len(g), len(s), len(e)) == (0, 0, 0)


@pytest.mark.parametrize(
    ("ts", "width", "start"),
    [
        (M, D, M),  # a midnight starts its own day
        (M - 0.001, D, M - D),  # a moment before it is the day before
        (M + 23 * H + 59 * 60, D, M),
        (M + 90 * 60, H, M + H),  # 01:30 is in the hour from 01:00
        (-1.0, D, -D),  # before 1970: still the UTC day holding it
    ],
)
def test_bucket_start_time_start_of_its_utc_bucket(ts: float, width: float, start: float) -> None:
    assert bucket_start(arr(ts), width).tolist() == [start]


def test_day_start_scalar_start_of_utc_day() -> None:
    assert day_start(M + 5 * H) == M


@pytest.mark.parametrize(
    ("lo", "hi", "days"),
    [
        (M, M + 2 * D, (M, M + 2 * D)),  # exactly two days
        (M - H, M + 2 * D + H, (M, M + 2 * D)),  # partial days at both ends left out
        (M + H, M + D + H, None),  # 24 hours, but no whole UTC day
        (M + H, M + 2 * H, None),  # within one day
    ],
)
def test_whole_days_range_whole_utc_days_within(lo: float, hi: float, days: tuple[float, float] | None) -> None:
    assert whole_days(lo, hi) == days


def test_pieces_visit_across_midnight_split_at_it() -> None:
    index, bucket, secs = pieces(arr(M - 1800), arr(M + 600), D)
    assert (index.tolist(), (bucket - M).tolist(), secs.tolist()) == ([0, 0], [-D, 0.0], [1800.0, 600.0])


def test_pieces_across_hours_whole_hours_in_between() -> None:
    index, bucket, secs = pieces(arr(M + 1800, M + H), arr(M + 3 * H + 60, M + 2 * H), H)
    assert index.tolist() == [0, 0, 0, 0, 1]
    assert ((bucket - M) / H).tolist() == [0.0, 1.0, 2.0, 3.0, 1.0]
    assert secs.tolist() == [1800.0, H, H, 60.0, H]  # the second interval is exactly one hour


def test_pieces_ending_on_boundary_no_empty_piece_after() -> None:
    index, bucket, secs = pieces(arr(M - H), arr(M), D)
    assert (index.tolist(), (bucket - M).tolist(), secs.tolist()) == ([0], [-D], [H])


def test_pieces_empty_or_reversed_interval_no_pieces() -> None:
    for width in (D, None):
        index, _, secs = pieces(arr(M, M + 10), arr(M, M + 5), width)
        assert (index.tolist(), secs.tolist()) == ([], [])


def test_pieces_without_width_whole_interval_bucket_nan() -> None:
    index, bucket, secs = pieces(arr(M, M + 10, M + 20), arr(M + 2 * D, M + 10, M + 25), None)
    assert (index.tolist(), secs.tolist()) == ([0, 2], [2 * D, 5.0])
    assert np.isnan(bucket).all()


def test_codes_names_sorted_with_index_of_each() -> None:
    distinct, code = codes(["b", "a", "b", "c"])
    assert (distinct, code.tolist()) == (["a", "b", "c"], [1, 0, 1, 2])


def test_sum_by_keys_groups_in_key_order_sums_per_column() -> None:
    fence, day = np.array([2, 1, 2, 1]), np.array([7, 9, 7, 8])
    column, value = np.array([0, 1, 1, 0]), arr(1.0, 10.0, 20.0, 3.0)
    first, sums = sum_by([fence, day], column, value, 2)
    assert [(int(fence[i]), int(day[i])) for i in first] == [(1, 8), (1, 9), (2, 7)]
    assert sums.tolist() == [[3.0, 0.0], [0.0, 10.0], [1.0, 20.0]]


def test_measure_windows_overlap_with_disjoint_intervals() -> None:
    starts, ends = arr(10, 30), arr(20, 40)  # covered: [10, 20) and [30, 40)
    a, b = arr(0, 15, 20, 0, 45), arr(50, 35, 30, 5, 50)
    assert measure(starts, ends, a, b).tolist() == [20.0, 10.0, 0.0, 0.0, 0.0]
