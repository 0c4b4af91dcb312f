"""Resolving (device, time) to the assignment valid then, cutting spans at handovers, and the precedence rule."""

from __future__ import annotations

import numpy as np
import pytest

from geofence.assignments import Assignment, AssignmentTable, Who, attribute

A = Assignment("a", "r1", "PC A", "Alpha 1", "North", 0.0, 100.0)
B = Assignment("b", "r1", "PC B", None, "South", 100.0, None)  # open-ended, back to back with A
C = Assignment("c", "r2", "PC C", None, None, 50.0, 60.0)
TABLE = AssignmentTable([C, B, A])  # any order in


@pytest.mark.parametrize(
    ("device", "ts", "want"),
    [
        ("r1", -1.0, None),  # before the first assignment
        ("r1", 0.0, "a"),  # valid_from is included
        ("r1", 99.999, "a"),
        ("r1", 100.0, "b"),  # valid_to is excluded: the next one's
        ("r1", 1e12, "b"),  # open-ended
        ("r2", 55.0, "c"),
        ("r2", 60.0, None),  # after c, nothing: not r1's b
        ("r2", 49.0, None),  # before c: not r1's a
        ("r3", 55.0, None),  # a device without assignments
    ],
)
def test_resolve_finds_the_assignment_valid_then(device: str, ts: float, want: str | None) -> None:
    [k] = TABLE.resolve([device], [ts])
    assert (None if k < 0 else TABLE.rows[k].assignment_id) == want
    assert TABLE.at(device, ts) == (None if k < 0 else TABLE.rows[k])


def test_resolve_many_at_once_equals_one_by_one() -> None:
    rng = np.random.default_rng(3)
    devices = rng.choice(["r1", "r2", "r3"], 500).tolist()
    ts = rng.uniform(-10, 200, 500)
    got = TABLE.resolve(devices, ts)
    want = [next((i for i, a in enumerate(TABLE.rows) if a.device_id == d and a.valid_from <= t < a.end), -1)
            for d, t in zip(devices, ts, strict=True)]  # fmt: skip
    assert got.tolist() == want
    assert AssignmentTable([]).resolve(["r1"], [1.0]).tolist() == [-1]


def test_split_cuts_spans_at_their_devices_handovers_once() -> None:
    index, start, end = TABLE.split(
        ["r1", "r2", "r3", "r1"], np.array([50.0, 40, 0, 120]), np.array([150.0, 70, 10, 130])
    )
    assert list(zip(index.tolist(), start.tolist(), end.tolist(), strict=True)) == [
        (0, 50.0, 100.0), (0, 100.0, 150.0),  # A's end and B's start are one cut
        (1, 40.0, 50.0), (1, 50.0, 60.0), (1, 60.0, 70.0),
        (2, 0.0, 10.0),  # no assignments: whole
        (3, 120.0, 130.0),  # no handover inside
    ]  # fmt: skip
    assert TABLE.handovers("r1") == [0.0, 100.0] and TABLE.handovers("r9") == []


def test_officer_spans_keep_named_spans_whole_and_give_pieces_to_the_holder() -> None:
    index, start, end, who = TABLE.officer_spans(["r1", "r1", "r3"], [None, "PC X", None], np.array([50.0, 50, 0]),
                                                 np.array([150.0, 150, 10]))  # fmt: skip
    assert list(zip(index.tolist(), start.tolist(), end.tolist(), who.tolist(), strict=True)) == [
        (0, 50.0, 100.0, "PC A"), (0, 100.0, 150.0, "PC B"), (1, 50.0, 150.0, "PC X"), (2, 0.0, 10.0, None),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("officer", "callsign", "assigned", "want"),
    [
        (None, None, A, Who("PC A", "Alpha 1", "North")),  # nothing of its own: the assignment's
        ("PC X", None, A, Who("PC X", None, None)),  # its own officer wins, with its own (no) callsign
        (None, "X-ray", A, Who(None, "X-ray", None)),  # a callsign alone is its own too
        ("PC A", None, A, Who("PC A", None, "North")),  # the same officer: the assignment's team
        (None, None, None, Who(None, None, None)),
    ],
)
def test_attribute_precedence(
    officer: str | None, callsign: str | None, assigned: Assignment | None, want: Who
) -> None:
    assert attribute(officer, callsign, assigned) == want


def test_overlaps_is_half_open_and_per_device() -> None:
    assert not A.overlaps(B)  # back to back
    assert B.overlaps(Assignment("x", "r1", "PC X", None, None, 1e9, 1e9 + 1))  # open-ended reaches it
    assert not A.overlaps(Assignment("y", "r2", "PC Y", None, None, 0.0, 100.0))  # another device
