"""The signal-loss report and the local ISO weeks it counts in, on SQLite and PostgreSQL.

Tracks ping every 60 s (seconds after T0 = Saturday 2026-11-21 22:00 UTC, 22:00 in London);
a device silent for more than 330 s is lost at its last ping and restored by its next one.
"""

from __future__ import annotations

from datetime import date

import pytest
from support.helpers import PLACES, T0, P
from support.observations import engine_run, record_all, track

from services.measures.local_weeks import local_text, parse_week, week_of
from services.measures.signal_loss import LossGap, signal_loss
from services.store import Store

HOUR = 3600.0
BREAK_S = 1800.0
LONDON = "Europe/London"


def losses_track() -> list[P]:
    """Three losses in one shift, each after pings at a different place, then a break.

    a 0-600 | lost 600-1500 | b 1500-1800 | lost 1800-2400 | far 2400-3000 | lost 3000-3600 |
    out 3600-4200 | break 4200-9000 | out 9000-9600
    """
    segments = [(0, 600, "a"), (1500, 1800, "b"), (2400, 3000, "far"), (3600, 4200, "out"), (9000, 9600, "out")]
    return [p for t0, t1, where in segments for p in track(t0, t1, (0, 100_000), where)]


async def test_signal_loss_lists_gaps_with_last_position_and_counts_per_shift(store: Store) -> None:
    await record_all(store, engine_run(losses_track()))
    [dev] = await signal_loss(store, T0, T0 + 3 * HOUR, shift_break_s=BREAK_S, min_losses=3, tz=LONDON)

    def gap(start: float, end: float, kind: str, where: str) -> LossGap:
        lat, lon = PLACES[where]
        return LossGap(T0 + start, T0 + end, end - start, kind, lat, lon)  # type: ignore[arg-type]

    assert dev.gaps == (
        gap(600, 1500, "loss", "a"),
        gap(1800, 2400, "loss", "b"),
        gap(3000, 3600, "loss", "far"),
        gap(4200, 9000, "break", "out"),
    )
    # 900 + 600 + 600 s lost in the first shift; the 4800 s break is not lost time.
    assert (dev.losses, dev.lost_s, dev.longest_s, dev.repeated) == (3, 2100.0, 900.0, True)
    assert [(s.start - T0, s.end - T0, s.losses, s.lost_s) for s in dev.shifts] == [
        (0.0, 4200.0, 3, 2100.0),
        (9000.0, 9600.0, 0, 0.0),
    ]
    assert [(w.week, w.losses, w.lost_s) for w in dev.weeks] == [("2026-W47", 3, 2100.0)]
    [fewer] = await signal_loss(store, T0, T0 + 3 * HOUR, shift_break_s=BREAK_S, min_losses=4, tz=LONDON)
    assert not fewer.repeated
    # With a longer shift break the 4800 s gap is a fourth loss of one long shift.
    [one] = await signal_loss(store, T0, T0 + 3 * HOUR, shift_break_s=5000.0, min_losses=4, tz=LONDON)
    assert (len(one.shifts), one.losses, one.lost_s, one.repeated) == (1, 4, 6900.0, True)


async def test_signal_loss_range_clips_seconds_and_counts_losses_by_start(store: Store) -> None:
    await record_all(store, engine_run(losses_track()))
    # [1200, 2100): the first loss started before the range (300 s of it inside, not counted),
    # the second starts in it (300 s of it inside, counted).
    [dev] = await signal_loss(store, T0 + 1200, T0 + 2100, shift_break_s=BREAK_S, min_losses=2, tz=LONDON)
    assert [g.start - T0 for g in dev.gaps] == [600.0, 1800.0]
    assert (dev.losses, dev.lost_s, dev.longest_s, dev.repeated) == (1, 600.0, 600.0, False)


async def test_signal_loss_week_boundary_splits_minutes_counts_loss_in_week_it_starts(store: Store) -> None:
    # Monday 2026-11-23 00:00 London is T0 + 26 h; lost from 25:50 to 26:10 (1200 s).
    monday = T0 + 26 * HOUR
    await record_all(store, engine_run(track(92_400, 93_000, (0, 0)) + track(94_200, 94_800, (0, 0))))
    assert monday == T0 + 93_600
    [dev] = await signal_loss(store, T0, T0 + 2 * 86_400, shift_break_s=BREAK_S, min_losses=3, tz=LONDON)
    assert [(w.week, w.start, w.losses, w.lost_s) for w in dev.weeks] == [
        ("2026-W47", monday - 7 * 86_400, 1, 600.0),
        ("2026-W48", monday, 0, 600.0),
    ]


async def test_signal_loss_open_gap_listed_without_end_and_not_counted(store: Store) -> None:
    # d1 stops at 600 while d2 carries on: d1 is lost at 600 and never heard again.
    pings = track(0, 600, (0, 0), device="d1") + track(0, 1800, (0, 0), device="d2")
    await record_all(store, engine_run(sorted(pings, key=lambda p: p.t)))
    found = await signal_loss(store, T0, T0 + HOUR, shift_break_s=BREAK_S, min_losses=1, tz=LONDON)
    assert [d.device_id for d in found] == ["d1", "d2"]
    d1, d2 = found
    lat, lon = PLACES["out"]
    assert d1.gaps == (LossGap(T0 + 600, None, None, "open", lat, lon),)
    assert (d1.losses, d1.lost_s, d1.repeated) == (0, 0.0, False)
    assert (d2.gaps, d2.losses) == ((), 0)
    assert [d.device_id for d in await signal_loss(store, T0, T0 + HOUR, shift_break_s=BREAK_S, min_losses=1,
                                                   tz=LONDON, device_id="d1")] == ["d1"]  # fmt: skip


# ---------------------------------------------------------------------- local ISO weeks


@pytest.mark.parametrize(
    ("week", "monday", "hours"),
    [
        ("2026-W47", date(2026, 11, 16), 168),  # GMT all week
        ("2026-W13", date(2026, 3, 23), 167),  # clocks go forward on Sunday 29 March
        ("2026-W43", date(2026, 10, 19), 169),  # clocks go back on Sunday 25 October
        ("2026-W53", date(2026, 12, 28), 168),  # 2026 has 53 ISO weeks; this one ends in 2027
    ],
)
def test_parse_week_spans_local_monday_to_monday(week: str, monday: date, hours: int) -> None:
    w = parse_week(week, LONDON)
    assert (w.label, w.days[0].day, len(w.days)) == (week, monday, 7)
    assert w.end - w.start == hours * HOUR
    assert local_text(w.start, LONDON) == f"{monday.isoformat()} 00:00"
    assert all(a.end == b.start for a, b in zip(w.days, w.days[1:], strict=False))
    assert week_of(w.start, LONDON) == w and week_of(w.end - 1, LONDON) == w


def test_parse_week_in_summer_starts_at_local_not_utc_midnight() -> None:
    w = parse_week("2026-W30", LONDON)  # BST: local midnight is 23:00 UTC the day before
    assert local_text(w.start, "UTC") == "2026-07-19 23:00"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-47", "not an ISO week like 2026-W47"),
        ("W47", "not an ISO week"),
        ("2025-W53", "does not exist"),  # 2025 has 52 ISO weeks
        ("2026-W00", "does not exist"),
        ("9999-W52", "does not exist"),  # would end in the year 10000
    ],
)
def test_parse_week_bad_text_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_week(text, LONDON)
