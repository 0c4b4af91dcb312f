"""Tests for the TETRA LIP decoder (ETSI TS 100 392-18-1 short and long location reports).

Frames come from three places: public frames whose decoded values were published (each case
cites its source), frames written field by field with tests/support/lip_frames.py, and random
batches that hold the vectorised decoding to the payload-by-payload one.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import numpy as np
import pytest
from support.lip_frames import (
    LAT_STEP,
    LON_STEP,
    Fields,
    bits,
    lat_raw,
    lon_raw,
    long_report,
    short_report,
    time_of_position,
    to_hex,
)

from ingest.lip import LipReports, decode_lip

T0 = datetime(2026, 11, 21, 22, 3, tzinfo=UTC).timestamp()
KMH = 1 / 3.6
NAN = math.nan
FIELDS = ("ts", "lon", "lat", "accuracy_m", "speed_mps", "heading_deg")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _decode(payload: object, received: float = T0) -> dict[str, float]:
    """The one payload's decoded fields; fails the test when it is refused."""
    out = decode_lip([payload], [received])
    assert out.rejects == [], out.rejects
    return {name: float(getattr(out, name)[0]) for name in FIELDS}


def _refusal(payload: object, received: float = T0) -> str:
    out = decode_lip([payload], [received])
    assert not out.ok[0]
    assert all(math.isnan(getattr(out, name)[0]) for name in FIELDS)
    [(index, reason)] = out.rejects
    assert index == 0
    return reason


def _check(got: dict[str, float], **expected: float) -> None:
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[name]), (name, got[name])
        else:
            assert got[name] == pytest.approx(value, abs=1e-9), name


# -- public frames -----------------------------------------------------------------------------

# The LIP part of the bit strings in vitaly-zubentsov/parser-tetra-lip-messages,
# src/test/java/controller/TestParserLipMessages.java (after its 192-bit capture header, "length
# in bits" long, zero-padded to octets); the test publishes each field's decoded value.
ZUBENTSOV_LON, ZUBENTSOV_LAT = 37.6503288746, 55.7339322567


@pytest.mark.parametrize(
    ("payload", "expected", "tolerance"),
    [
        # forums.radioreference.com/threads/sepura-sds-lip.345360/ : a Sepura radio's short
        # report; the poster's AVL log shows 52.37570 16.23886 (5 decimals published).
        ("0A00B8C31A53EB496D6200", {"lat": 52.37570, "lon": 16.23886}, 5e-6),
        # testParsedShortLipMessage: "less than 2 m", "0 km/h", "0 North (N)".
        (
            "0A01AC608A7A20D8000000",
            {"lon": ZUBENTSOV_LON, "lat": ZUBENTSOV_LAT, "accuracy_m": 2, "speed_mps": 0, "heading_deg": 0},
            1e-10,
        ),
        # testParsedLongLipType1Message: no time, circle with altitude "Less than 1 m",
        # velocity type 5 "0 km/h", "Direction in degrees 0".
        (
            "0A4C51AC608A7A20D80FFF40000000",
            {"lon": ZUBENTSOV_LON, "lat": ZUBENTSOV_LAT, "accuracy_m": 0.98, "speed_mps": 0, "heading_deg": 0},
            0.005,
        ),
        # testParsedLongLipType2Message: time elapsed "less than 5 s", uncertainty "Best effort",
        # "Horizontal speed is not known", "Direction in degrees 358,6".
        (
            "0A4D146B18229E8837FBFFDFFFF000",
            {"ts": T0, "accuracy_m": NAN, "speed_mps": NAN, "heading_deg": 358.6},
            0.05,
        ),
        # testParsedLongLipType3Message: time of position "Day Number 1", hour 0, minute 0, second 0.
        (
            "0A4E08000146B18229E883603FFD00000000",
            {"ts": _epoch("2026-11-01T00:00:00+00:00"), "lon": ZUBENTSOV_LON, "lat": ZUBENTSOV_LAT},
            1e-10,
        ),
    ],
    ids=["sepura-forum", "zubentsov-short", "zubentsov-long-1", "zubentsov-long-2", "zubentsov-long-3"],
)
def test_decode_lip_public_frame_gives_published_values(
    payload: str, expected: dict[str, float], tolerance: float
) -> None:
    got = _decode(payload)
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value, abs=tolerance), name


def test_decode_lip_tetra_kit_coordinate_examples_give_published_degrees() -> None:
    # m4w0lf/tetra-kit decoder/cmce/sds/lip.cc documents latitude 0xCA1959 = -37.899131 and
    # longitude 0x0CE6C98 = 145.142012 (6 decimals published).
    got = _decode(short_report(0x0CE6C98, 0xCA1959 - 2**24))
    assert got["lat"] == pytest.approx(-37.899131, abs=5e-7)
    assert got["lon"] == pytest.approx(145.142012, abs=5e-7)


def test_decode_lip_real_long_report_from_a_mine_site_decodes_every_field() -> None:
    # Fixitdaz/tetra-sds example_hex.txt (commit fc3eac3): a radio's long report stored as 33 hex
    # digits (its DB dropped the final nibble of padding, restored here as "0"). That repo's
    # decode.py reads it at the offsets used here (time 8-30, shape 30-34, longitude 34-59,
    # latitude 59-83, uncertainty 83-89, altitude 89-101, velocity 101-119): time of position
    # day 25 03:50:44, circle with altitude, velocity type 5. The rest decodes to plausible
    # values, which checks the offsets: reason for sending 130 ("maximum reporting distance
    # travelled") and three zero padding bits right where the layout ends.
    got = _decode("4EC8F2B154F2F2BC0EF7A0183D1FC4410" + "0")
    _check(
        got,
        ts=_epoch("2026-10-25T03:50:44+00:00"),
        lon=117.83820748329163,
        lat=-22.17112898826599,
        accuracy_m=2 * 1.2**5 - 4,  # uncertainty 0: "less than 1 m"
        speed_mps=15 * KMH,
        heading_deg=226 * 360 / 256,
    )


# moehrem/tetraconnect tests/test_device_M83AAA1BB2CC.py replays a Motorola radio's PEI lines
# ("+CTSDSR: 12,<issi>,0,9876543,0,88" then the hex). No decoded values are published; the
# positions land around Hamburg, as radios of one fleet should, which checks the layout.
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (  # moving: less than 20 m, 16 * 1.038**25 km/h (40.6), north-west
            "0A0070EDD264D6214DC820",
            {
                "lon": 0x0E1DBA * LON_STEP,
                "lat": 0x4C9AC4 * LAT_STEP,
                "accuracy_m": 20,
                "speed_mps": 16 * 1.038**25 * KMH,
                "heading_deg": 315,
            },
        ),
        (  # standing: 1 km/h, north
            "0A007264F2654E89020810",
            {"lon": 0x0E4C9E * LON_STEP, "lat": 0x4CA9D1 * LAT_STEP, "speed_mps": KMH, "heading_deg": 0},
        ),
        (  # no fix: 0, 0 with time elapsed, error, speed and direction all "not known"
            "0A30000000000007FFE810",
            {"ts": T0, "lon": 0, "lat": 0, "accuracy_m": NAN, "speed_mps": NAN, "heading_deg": NAN},
        ),
    ],
)
def test_decode_lip_motorola_captures_decode_to_one_fleet(payload: str, expected: dict[str, float]) -> None:
    got = _decode(payload)
    _check(got, **expected)
    assert got["lat"] == 0 or (53.8 < got["lat"] < 54 and 9.9 < got["lon"] < 10.1)


# -- coordinates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        (2.3522, 48.8566),  # north-east: Paris
        (-74.0060, 40.7128),  # north-west: New York
        (151.2093, -33.8688),  # south-east: Sydney
        (-58.3816, -34.6037),  # south-west: Buenos Aires
    ],
)
@pytest.mark.parametrize("identifier", [True, False])
def test_decode_lip_each_quadrant_gives_the_encoded_position(lon: float, lat: float, identifier: bool) -> None:
    x, y = lon_raw(lon), lat_raw(lat)
    for payload in (
        short_report(x, y, identifier=identifier),
        long_report(x, y, identifier=identifier),
        long_report(x, y, shape=4, after_point=[(900, 12)], identifier=identifier),
    ):
        got = _decode(payload)
        assert (got["lon"], got["lat"]) == (x * LON_STEP, y * LAT_STEP)
        assert got["lon"] == pytest.approx(lon, abs=LON_STEP / 2)
        assert got["lat"] == pytest.approx(lat, abs=LAT_STEP / 2)


@pytest.mark.parametrize(
    ("lon", "lat", "expected_lon", "expected_lat"),
    [
        (-(2**24), -(2**23), -180.0, -90.0),  # the most negative codes: exactly -180 and -90
        (2**24 - 1, 2**23 - 1, 180 - LON_STEP, 90 - LAT_STEP),  # the largest: one step short of +180, +90
        (lon_raw(180.0), lat_raw(90.0), -180.0, 90 - LAT_STEP),  # +180 wraps to -180; +90 is not representable
        (0, 0, 0.0, 0.0),
        (-1, -1, -LON_STEP, -LAT_STEP),  # all ones: one step west and south of zero
    ],
)
def test_decode_lip_coordinate_edges_give_exact_degrees(
    lon: int, lat: int, expected_lon: float, expected_lat: float
) -> None:
    got = _decode(short_report(lon, lat))
    assert (got["lon"], got["lat"]) == (expected_lon, expected_lat)


# -- accuracy ----------------------------------------------------------------------------------

ERROR_CLASSES = [
    (0, 2.0),  # less than 2 m
    (1, 20.0),  # less than 20 m
    (2, 200.0),  # less than 200 m
    (3, 2000.0),  # less than 2 km
    (4, 20000.0),  # less than 20 km
    (5, 200000.0),  # less than or equal to 200 km
    (6, NAN),  # more than 200 km: no bound
    (7, NAN),  # not known
]


@pytest.mark.parametrize(("code", "accuracy"), ERROR_CLASSES)
def test_decode_lip_position_error_class_gives_its_upper_bound(code: int, accuracy: float) -> None:
    _check(_decode(short_report(1000, 2000, error=code)), accuracy_m=accuracy)
    _check(_decode(long_report(1000, 2000, shape=10, after_point=[(code, 3)])), accuracy_m=accuracy)


def _uncertainty_m(k: int) -> float:
    return 2 * 1.2 ** (k + 5) - 4


# Field widths after the point as read by moehrem/tetraconnect custom_components/tetraconnect/
# motorola.py (its long report parser; angles are 8 bits, altitude 12, altitude uncertainty 3);
# shape 5 is also confirmed by the mine-site frame above. Each case checks that the velocity
# after the shape is found, i.e. that the shape's width is the one the encoder wrote.
@pytest.mark.parametrize(
    ("shape", "rest"),
    [
        (2, []),  # circle: uncertainty
        (3, [(3, 6), (40, 8), (1, 3)]),  # ellipse: half major axis, half minor axis, angle, confidence
        (5, [(1200, 12)]),  # circle with altitude
        (6, [(3, 6), (40, 8), (1200, 12), (1, 3)]),  # ellipse with altitude
        (7, [(1200, 12), (2, 3)]),  # circle with altitude and altitude uncertainty
        (8, [(3, 6), (40, 8), (1200, 12), (2, 3), (1, 3)]),  # ellipse with both
    ],
)
@pytest.mark.parametrize(
    ("k", "accuracy"),
    [
        (0, _uncertainty_m(0)),  # "less than 1 m"
        (2, _uncertainty_m(2)),  # "less than 3,2 m"
        (62, _uncertainty_m(62)),  # "less than 403802,7 m"
        (63, NAN),  # "best effort": no bound
    ],
)
def test_decode_lip_uncertainty_shape_gives_its_radius_and_finds_the_velocity_after_it(
    shape: int, rest: Fields, k: int, accuracy: float
) -> None:
    velocity = [(5, 3), (40, 7), (96, 8)]
    payload = long_report(-5000, 7000, shape=shape, after_point=[(k, 6), *rest], velocity=velocity)
    _check(_decode(payload), accuracy_m=accuracy, speed_mps=16 * 1.038**27 * KMH, heading_deg=135.0)


def test_decode_lip_uncertainty_table_matches_published_rounding() -> None:
    # vitaly-zubentsov/parser-tetra-lip-messages src/main/java/model/LipProtocolUnits.java,
    # "Table 6.49: Horizontal position accuracy": 2 -> "Less than 3,2 m", 33 -> "Less than
    # 2037,3 m", 62 -> "Less than 403802,7 m".
    for k, published in ((2, 3.2), (33, 2037.3), (62, 403802.7)):
        got = _decode(long_report(0, 0, shape=2, after_point=[(k, 6)]))
        assert round(got["accuracy_m"], 1) == published


@pytest.mark.parametrize("shape", [1, 4])
def test_decode_lip_point_shape_gives_no_accuracy(shape: int) -> None:
    fields = [(1200, 12)] if shape == 4 else []
    _check(_decode(long_report(123, 456, shape=shape, after_point=fields)), accuracy_m=NAN)


# -- velocity and direction --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "kmh"),
    [
        (0, 0.0),
        (1, 1.0),
        (28, 28.0),  # the last linear step
        (29, 16 * 1.038**16),  # the first of the formula: 29.06
        (33, 16 * 1.038**20),  # 33.73, published as "34 km/h"
        (125, 16 * 1.038**112),  # 1042.6, published as "1043 km/h"
        (126, NAN),  # "more than 1043 km/h": no speed
        (127, NAN),  # not known
    ],
)
def test_decode_lip_horizontal_velocity_gives_metres_per_second(k: int, kmh: float) -> None:
    _check(_decode(short_report(0, 0, speed=k, direction=1)), speed_mps=kmh * KMH)
    _check(_decode(long_report(0, 0, velocity=[(1, 3), (k, 7)])), speed_mps=kmh * KMH, heading_deg=NAN)


def test_decode_lip_velocity_table_matches_published_rounding() -> None:
    # LipProtocolUnits.java "Table 6.51: Examples of horizontal velocity": 33 -> 34 km/h,
    # 64 -> 107 km/h, 100 -> 410 km/h, 125 -> 1043 km/h.
    for k, published in ((33, 34), (64, 107), (100, 410), (125, 1043)):
        assert round(_decode(short_report(0, 0, speed=k))["speed_mps"] / KMH) == published


@pytest.mark.parametrize("code", range(16))
def test_decode_lip_direction_of_travel_gives_its_point_of_the_compass(code: int) -> None:
    _check(_decode(short_report(0, 0, speed=10, direction=code)), heading_deg=code * 22.5)


@pytest.mark.parametrize(
    ("speed", "direction", "heading"),
    [
        (127, 15, NAN),  # 15 is NNW "or not known": with the speed not known either, not known
        (10, 15, 337.5),  # with a known speed: NNW
        (127, 3, 67.5),  # another direction stays even when the speed is not known
    ],
)
def test_decode_lip_direction_15_is_unknown_only_without_speed(speed: int, direction: int, heading: float) -> None:
    _check(_decode(short_report(0, 0, speed=speed, direction=direction)), heading_deg=heading)


# Velocity widths as in moehrem/tetraconnect (see above); type 5 is confirmed by the mine-site frame.
@pytest.mark.parametrize(
    ("velocity", "speed_kmh", "heading"),
    [
        ([(0, 3)], NAN, NAN),  # no velocity information
        ([(1, 3), (50, 7)], 16 * 1.038**37, NAN),  # horizontal velocity
        ([(2, 3), (50, 7), (5, 3)], 16 * 1.038**37, NAN),  # ... with uncertainty
        ([(3, 3), (50, 7), (1, 1), (9, 7)], 16 * 1.038**37, NAN),  # ... and vertical velocity
        ([(4, 3), (50, 7), (5, 3), (1, 1), (9, 7), (2, 3)], 16 * 1.038**37, NAN),  # ... with uncertainties
        ([(5, 3), (20, 7), (200, 8)], 20, 200 * 360 / 256),  # horizontal with direction extended
        ([(6, 3), (20, 7), (5, 3), (255, 8), (2, 3)], 20, 255 * 360 / 256),  # ... with uncertainties
        ([(7, 3), (127, 7), (5, 3), (0, 1), (9, 7), (2, 3), (1, 8), (2, 3)], NAN, 360 / 256),  # all of it
    ],
)
def test_decode_lip_velocity_type_gives_speed_and_direction(velocity: Fields, speed_kmh: float, heading: float) -> None:
    for time in ([(0, 2)], [(1, 2), (0, 2)], time_of_position(3, 4, 5, 6)):
        got = _decode(
            long_report(lon_raw(-1.5), lat_raw(53.8), time=time, shape=2, after_point=[(10, 6)], velocity=velocity)
        )
        _check(got, speed_mps=speed_kmh * KMH, heading_deg=heading, lon=lon_raw(-1.5) * LON_STEP)


# -- time --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "age_s"),
    [
        (0, 0.0),  # less than 5 s
        (1, 5.0),  # less than 5 min: at least 5 s
        (2, 300.0),  # less than 30 min: at least 5 min
        (3, 0.0),  # not known or not applicable
    ],
)
def test_decode_lip_time_elapsed_takes_its_lower_bound_off_the_received_time(code: int, age_s: float) -> None:
    _check(_decode(short_report(0, 0, elapsed=code)), ts=T0 - age_s)
    _check(_decode(long_report(0, 0, time=[(1, 2), (code, 2)])), ts=T0 - age_s)


def test_decode_lip_long_report_without_time_is_dated_when_received() -> None:
    _check(_decode(long_report(0, 0, time=[(0, 2)]), received=T0 + 0.25), ts=T0 + 0.25)


@pytest.mark.parametrize(
    ("received", "when", "expected"),
    [
        ("2026-11-21T22:03:00.5+00:00", (21, 21, 0, 0), "2026-11-21T21:00:00+00:00"),  # earlier that day
        ("2026-11-21T22:03:00+00:00", (21, 23, 0, 0), "2026-11-21T23:00:00+00:00"),  # clock ahead: kept
        ("2026-11-21T22:03:00+00:00", (22, 12, 0, 0), "2026-11-22T12:00:00+00:00"),  # 13 h 57 min ahead
        ("2026-11-21T22:03:00+00:00", (22, 13, 0, 0), "2026-10-22T13:00:00+00:00"),  # beyond 14 h: last month
        ("2026-03-05T10:00:00+00:00", (31, 8, 0, 0), "2026-01-31T08:00:00+00:00"),  # no 31 February
        ("2027-03-01T00:00:00+00:00", (29, 6, 0, 0), "2027-01-29T06:00:00+00:00"),  # no 29 February in 2027
        ("2028-03-01T00:00:00+00:00", (29, 6, 0, 0), "2028-02-29T06:00:00+00:00"),  # but in 2028
        ("2027-01-01T00:30:00+00:00", (31, 23, 59, 59), "2026-12-31T23:59:59+00:00"),  # across the year
        ("2026-11-30T22:00:00+00:00", (1, 5, 0, 0), "2026-12-01T05:00:00+00:00"),  # ahead into next month
        ("2026-12-31T23:00:00+00:00", (1, 1, 0, 0), "2027-01-01T01:00:00+00:00"),  # ... and next year
    ],
)
def test_decode_lip_time_of_position_resolves_to_the_latest_such_day(
    received: str, when: tuple[int, int, int, int], expected: str
) -> None:
    _check(_decode(long_report(0, 0, time=time_of_position(*when)), received=_epoch(received)), ts=_epoch(expected))


# -- refusals ----------------------------------------------------------------------------------

SHORT_BODY = short_report(lon_raw(-0.1), lat_raw(51.5), identifier=False)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "must be a hex string, got null"),
        (1234, "must be a hex string, got 1234"),
        ("", "is empty"),
        ("  ", "is empty"),
        ("0A0G", "is not hex: 'G' at character 4"),
        (" 0A 00", "is not hex: ' ' at character 4"),
        ("0A\u00c40", "is not hex: '\u00c4' at character 3"),
        ("0A\x0000", "is not hex: '\\x00' at character 3"),
        ("0A00B8C31A53EB496D620", "has an odd number of hex digits (21): LIP PDUs are whole octets"),
        ("0A" + "00" * 300, "is 301 octets long, more than an SDS message holds (256)"),
        ("0A", "holds no LIP PDU after the protocol identifier 0x0A"),
        ("0A" + SHORT_BODY[:18], "is too short: a short location report needs 76 bits, got 72"),
        (SHORT_BODY[:18], "is too short: a short location report needs 76 bits, got 72"),
        # a bare short report starting 0x0A (longitude in [-135, -123.75)) reads as identified
        (
            short_report(lon_raw(-130.0), 0, identifier=False),
            "is too short: a short location report needs 76 bits, got 72",
        ),
        (to_hex(bits([(2, 2), (0, 78)])), "is not a location report: reserved LIP PDU type 2"),
        (to_hex(bits([(3, 2), (0, 78)])), "is not a location report: reserved LIP PDU type 3"),
        (
            to_hex(bits([(1, 2), (1, 4), (0, 1), (0, 2), (0, 4), (0, 24)])),
            "is not a location report: LIP PDU type extension 1 (immediate location report request)",
        ),
        (
            to_hex(bits([(1, 2), (3, 4), (0, 2)])),
            "is too short: this long location report needs at least 12 bits, got 8",
        ),
        (long_report(0, 0, time=[(3, 2)]), "has a reserved time type (3)"),
        (long_report(0, 0, shape=0)[:6], "carries no position (location shape: no shape)"),
        (
            long_report(0, 0, shape=9, after_point=[(1, 16), (2, 16), (0, 8), (9, 8), (1, 3)]),
            "gives a location arc, which is not supported: its point is the arc's centre, not the radio",
        ),
        (long_report(0, 0, shape=12), "has a reserved location shape (12)"),
        (long_report(0, 0, shape=15), "uses the location shape extension (15), which is not supported"),
        # no time, point, no velocity: 8 + 4 + 49 + 3 + 10 = 74 bits; 9 octets hold 72
        (long_report(0, 0)[:20], "is too short: this long location report needs at least 74 bits, got 72"),
        (
            long_report(0, 0, time=time_of_position(3, 4, 5, 6), velocity=[(5, 3), (1, 7), (2, 8)])[:-2],
            "is too short: this long location report needs at least 111 bits, got 104",
        ),
        (
            long_report(0, 0, time=time_of_position(0, 4, 5, 6)),
            "has an impossible time of position: day 0 is not in 1-31",
        ),
        (
            long_report(0, 0, time=time_of_position(1, 24, 60, 61)),
            "has an impossible time of position: hour 24 is not in 0-23, minute 60 is not in 0-59, "
            "second 61 is not in 0-59",
        ),
    ],
)
def test_decode_lip_malformed_payload_is_refused_with_a_reason(payload: object, reason: str) -> None:
    assert _refusal(payload) == reason


def test_decode_lip_undatable_received_time_is_refused_with_a_reason() -> None:
    assert _refusal(SHORT_BODY, received=NAN) == "cannot be dated: received_at must be finite, got nan"


def test_decode_lip_bad_items_leave_the_good_ones_in_place() -> None:
    good = short_report(lon_raw(-0.1), lat_raw(51.5))
    out = decode_lip([good, "zz", good, None, good[:10]], [T0] * 5)
    assert out.ok.tolist() == [True, False, True, False, False]
    assert [i for i, _ in out.rejects] == [1, 3, 4]
    assert out.lat[[0, 2]].tolist() == [lat_raw(51.5) * LAT_STEP] * 2


def test_decode_lip_differing_lengths_raise() -> None:
    with pytest.raises(ValueError, match="2 payloads but 1 received times"):
        decode_lip(["00", "00"], [T0])


# -- forms of one payload ----------------------------------------------------------------------


def test_decode_lip_identifier_case_blanks_and_trailing_elements_do_not_change_the_fix() -> None:
    body = long_report(
        lon_raw(-3.19),
        lat_raw(55.95),
        time=[(1, 2), (1, 2)],
        shape=5,
        after_point=[(7, 6), (300, 12)],
        velocity=[(5, 3), (40, 7), (64, 8)],
        identifier=False,
    )
    forms = ["0A" + body, body, body.lower(), f"  0a{body.lower()}\n", "0A" + body + "8101FF"]
    rows = [_decode(p) for p in forms]
    assert all(row == rows[0] for row in rows)
    _check(rows[0], ts=T0 - 5, accuracy_m=_uncertainty_m(7), heading_deg=90.0)


def _random_payload(rng: random.Random) -> tuple[str, dict[str, float] | None]:
    """A random report and the position it encodes (None: a malformed one)."""
    lon, lat = rng.randrange(-(2**24), 2**24), rng.randrange(-(2**23), 2**23)
    expected = {"lon": lon * LON_STEP, "lat": lat * LAT_STEP}
    pick = rng.random()
    if pick < 0.5:
        payload = short_report(
            lon,
            lat,
            elapsed=rng.randrange(4),
            error=rng.randrange(8),
            speed=rng.randrange(128),
            direction=rng.randrange(16),
            identifier=rng.random() < 0.8,
        )
        return payload, None if payload.startswith("0A") and len(payload) == 20 else expected  # bare, in the 0x0A band
    if pick < 0.9:
        shape, after_point = rng.choice(
            [(1, []), (2, [(rng.randrange(64), 6)]), (4, [(5, 12)]), (10, [(rng.randrange(8), 3)])]
        )
        velocity = rng.choice(
            [[(0, 3)], [(1, 3), (rng.randrange(128), 7)], [(5, 3), (rng.randrange(128), 7), (rng.randrange(256), 8)]]
        )
        time = rng.choice(
            [[(0, 2)], [(1, 2), (rng.randrange(4), 2)], time_of_position(rng.randrange(1, 32), rng.randrange(24), 0, 0)]
        )
        payload = long_report(lon, lat, time=time, shape=shape, after_point=after_point, velocity=velocity)
        return payload, expected
    return rng.choice(["", "0A0G", "0A", "123", short_report(lon, lat)[:12], long_report(0, 0, shape=0)]), None


def test_decode_lip_batch_equals_one_by_one_and_the_slow_path() -> None:
    rng = random.Random(11)
    cases = [_random_payload(rng) for _ in range(3000)]
    payloads = [p for p, _ in cases]
    received = [T0 + rng.uniform(-1e6, 1e6) for _ in cases]
    batch = decode_lip(payloads, received)
    alone = [decode_lip([p], [r]) for p, r in zip(payloads, received, strict=True)]
    blanked = decode_lip([f" {p} " for p in payloads], received)  # every payload through the slow path

    def rows(out: LipReports) -> np.ndarray:
        return np.stack([getattr(out, name) for name in FIELDS])

    joined = np.concatenate([rows(o) for o in alone], axis=1)
    np.testing.assert_array_equal(rows(batch), joined)
    np.testing.assert_array_equal(rows(batch), rows(blanked))
    assert batch.rejects == [(i, r) for i, o in enumerate(alone) for _, r in o.rejects]
    decoded = [i for i, (_, expected) in enumerate(cases) if expected is not None]
    assert batch.ok.tolist() == [expected is not None for _, expected in cases]
    assert batch.lon[decoded].tolist() == [cases[i][1]["lon"] for i in decoded]  # type: ignore[index]
    assert batch.lat[decoded].tolist() == [cases[i][1]["lat"] for i in decoded]  # type: ignore[index]
