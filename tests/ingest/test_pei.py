"""PEI logs: +CTSDSR result codes of a TETRA radio, the LIP ones made pings, every other line judged by line."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from support.lip_frames import LAT_STEP, LON_STEP, lat_raw, lon_raw, short_report

from ingest.csv_pings import RowError
from ingest.lip_records import UNBOUNDED_ACCURACY_M
from ingest.pei import read_pei

T0 = datetime(2026, 11, 21, 22, 3, tzinfo=UTC).timestamp()
STAMP = "2026-11-21T22:03:00Z"
X, Y = lon_raw(-0.1), lat_raw(51.5)
FRAME = short_report(X, Y, error=1)


def read(
    text: str, received_at: float | None = None
) -> tuple[list[tuple[str, float, float, float]], list[RowError], list[int]]:
    """(device, ts, lat, lon) of each ping, the refused lines, and the line of each ping."""
    chunks = list(read_pei(io.BytesIO(text.encode()), received_at=None if received_at is None else lambda: received_at))
    pings = [
        (d, t, la, lo)
        for c in chunks
        for d, t, la, lo in zip(c.batch.device_id, c.batch.ts, c.batch.lat, c.batch.lon, strict=True)
    ]
    return pings, [e for c in chunks for e in c.errors], [int(x) for c in chunks for x in c.lines]


def test_read_pei_public_motorola_lines_give_the_radio_and_its_position() -> None:
    # Wodie/tetra_4_pttlink TetraLogic.pm quotes these lines of a Motorola MTP6650 (YO9ION): the
    # header says 84 bits, the radio prints 88 (whole octets), which is read, not refused.
    # moehrem/tetraconnect tests/test_device_M83AAA1BB2CC.py: a header of 88 bits and its frame.
    pings, errors, lines = read(
        f"AT+CTSP=1,3,130\r\nOK\r\n{STAMP} +CTSDSR: 12,2269001,0,9999,0,84\r\n0A112853A9FF4D4FFFE810\r\n"
        f"[{STAMP}] +CTSDSR: 12,2269002,0,9876543,0,88\r\n0A0070EDD264D6214DC820\r\n"
    )
    assert errors == []
    assert [p[0] for p in pings] == ["2269001", "2269002"]
    assert lines == [3, 5]
    assert 44 < pings[0][2] < 46 and 25 < pings[0][3] < 27  # Bucharest, where YO9 calls are
    assert (pings[1][2], pings[1][3]) == (0x4C9AC4 * LAT_STEP, 0x0E1DBA * LON_STEP)


def test_read_pei_timestamp_forms_and_live_received_time() -> None:
    text = (
        f"{STAMP} +CTSDSR: 12,1001,0,9999,0,76\n{FRAME}\n"
        f"{T0 + 1} +CTSDSR: 12,1001,0,9999,0,76\n{FRAME}\n"  # epoch seconds
        f"+CTSDSR: 12,1001,0,9999,0,76\n{FRAME}\n"  # no time: when it was read
    )
    pings, errors, _ = read(text, received_at=T0 + 2)
    assert errors == []
    assert [p[1] for p in pings] == [T0, T0 + 1, T0 + 2]


def test_read_pei_user_data_after_the_header_is_read_too() -> None:
    pings, errors, _ = read(f"{STAMP} +CTSDSR: 12,1001,0,9999,0,76,{FRAME}\n")
    assert (errors, [p[0] for p in pings]) == ([], ["1001"])


def test_read_pei_other_sds_and_other_lines_are_not_pings_nor_errors() -> None:
    text = f"{STAMP} +CTSDSR: 12,23404,0,23401,0,112\n82040801476A61746A616A676A61\n+CTXG: 1,3,0,0,0\nOK\n"
    assert read(text)[:2] == ([], [])  # a text SDS (protocol 0x82) and a call setup


@pytest.mark.parametrize(
    ("lines", "line", "reason"),
    [
        ([f"{STAMP} +CTSDSR: 12,1001,0,9999"], 1, "+CTSDSR header has 4 fields, expected at least 6"),
        (
            [f"{STAMP} +CTSDSR: 12,,0,9999,0,76", FRAME],
            1,
            "+CTSDSR without a calling party identity: which radio reported is unknown",
        ),
        ([f"{STAMP} +CTSDSR: 12,1001,0,9999,0,x", FRAME], 1, "+CTSDSR length 'x' is not a number of bits"),
        (
            ["+CTSDSR: 12,1001,0,9999,0,76", FRAME],
            1,
            "no time: put the time the SDS was received before +CTSDSR (e.g. 2026-11-21T22:03:00Z)",
        ),
        (
            ["yesterday +CTSDSR: 12,1001,0,9999,0,76", FRAME],
            1,
            "timestamp before +CTSDSR: must be ISO 8601 with a UTC offset or epoch seconds, got 'yesterday'",
        ),
        ([f"{STAMP} +CTSDSR: 12,1001,0,9999,0,76"], 1, "+CTSDSR without user data on the next line"),  # a header next
        ([f"{STAMP} +CTSDSR: 12,1001,0,9999,0,76", "0A12Z4"], 1, "user data is not whole octets of hex: '0A12Z4'"),
        ([f"{STAMP} +CTSDSR: 12,1001,0,9999,0,76", "0A123"], 1, "user data is not whole octets of hex: '0A123'"),
        ([f"{STAMP} +CTSDSR: 12,1001,0,9999,0,96", FRAME], 1, "user data holds 88 bits, the header says 96"),
        (
            [f"{STAMP} +CTSDSR: 12,1001,0,9999,0,16", "0A00"],
            1,
            "payload: is too short: a short location report needs 76 bits, got 8",
        ),
    ],
)
def test_read_pei_bad_report_is_refused_on_its_header_line(lines: list[str], line: int, reason: str) -> None:
    good = [f"{STAMP} +CTSDSR: 12,1002,0,9999,0,76", FRAME]
    pings, errors, ping_lines = read("\n".join(["OK", *lines, *good]) + "\n")
    assert [(e.line, e.reason) for e in errors] == [(line + 1, reason)]
    assert [p[0] for p in pings] == ["1002"]  # the good report after it is kept
    assert ping_lines == [len(lines) + 2]


def test_read_pei_report_without_error_bound_is_uncertain() -> None:
    chunks = list(
        read_pei(io.BytesIO(f"{STAMP} +CTSDSR: 12,1001,0,9999,0,76\n{short_report(X, Y, error=7)}\n".encode()))
    )
    assert chunks[0].batch.accuracy_m.tolist() == [UNBOUNDED_ACCURACY_M]


def test_read_pei_header_at_the_end_of_the_log_is_refused() -> None:
    errors = read(f"{STAMP} +CTSDSR: 12,1001,0,9999,0,76\n\n")[1]
    assert [(e.line, e.reason) for e in errors] == [(1, "+CTSDSR without user data on the next line")]
