"""Tests for the streaming NMEA 0183 reader (``ingest.nmea``).

Real sentences, each cited where it is used:
- DEPRIEST: the GGA/RMC pair of Dale DePriest's "NMEA data" reference (gpsinformation.org/dale/nmea.htm),
  reproduced in most NMEA guides (Munich, 23 March 1994, 12:35:19 UTC).
- GNUVARIO: a GN (multi-constellation) RMC/GGA pair logged by a u-blox receiver, quoted at the end of the
  GNUVario-E variometer firmware's main sketch (Clermont-Ferrand, 23 June 2019).
- TESEO_VOID: the "no fix" RMC of an ST Teseo receiver (NMEA 4.1: mode N, navigational status V), quoted in
  PX4's Teseo GNSS driver.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from ingest.fixes import KNOT_MPS, FixChunk, RowError
from ingest.nmea import NmeaError, _read_sentence, checksum, read_nmea
from ingest.rules import InputError

DEPRIEST_GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
DEPRIEST_RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
GNUVARIO_GGA = "$GNGGA,064607.000,4546.2282,N,00311.6590,E,1,05,2.6,412.0,M,0.0,M,,*77"
GNUVARIO_RMC = "$GNRMC,064607.000,A,4546.2282,N,00311.6590,E,0.76,0.00,230619,,,A*7D"
TESEO_VOID = "$GNRMC,,V,,,,,,,,,,N,V*37"


def _s(body: str) -> str:
    """A sentence with its correct checksum."""
    return f"${body}*{checksum(body.encode()):02X}"


def _read(text: str, block_bytes: int = 1 << 22) -> tuple[FixChunk, list[RowError]]:
    """All fixes of a log as one chunk, and all its errors."""
    chunks = list(read_nmea(io.BytesIO(text.encode()), "radio-7", block_bytes=block_bytes))

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(c, name) for c in chunks] or [np.empty(0)])

    merged = FixChunk(
        device_id="radio-7",
        ts=cat("ts"),
        lat=cat("lat"),
        lon=cat("lon"),
        accuracy_m=cat("accuracy_m"),
        speed_mps=cat("speed_mps"),
        heading_deg=cat("heading_deg"),
        lines=cat("lines"),
    )
    return merged, [e for c in chunks for e in c.errors]


def _epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_read_nmea_depriest_pair_gives_one_fix_with_every_field() -> None:
    fixes, errors = _read(f"{DEPRIEST_GGA}\r\n{DEPRIEST_RMC}\r\n")
    assert errors == []
    assert fixes.lines.tolist() == [2]  # the RMC's line
    assert fixes.ts.tolist() == [_epoch(1994, 3, 23, 12, 35, 19)]
    assert fixes.lat[0] == pytest.approx(48 + 7.038 / 60)
    assert fixes.lon[0] == pytest.approx(11 + 31.0 / 60)
    assert fixes.speed_mps[0] == pytest.approx(22.4 * 1852 / 3600)
    assert fixes.heading_deg[0] == pytest.approx(84.4)
    assert fixes.accuracy_m[0] == pytest.approx(0.9 * 5.0)  # HDOP x UERE


def test_read_nmea_gga_after_rmc_pairs_and_southwest_is_negative() -> None:
    west = _s("GNRMC,064607.000,A,4546.2282,S,00311.6590,W,0.76,0.00,230619,,,A")
    fixes, errors = _read(f"{GNUVARIO_RMC}\n{GNUVARIO_GGA}\n{west}\n")
    assert errors == []
    assert fixes.ts.tolist() == [_epoch(2019, 6, 23, 6, 46, 7)] * 2
    assert fixes.accuracy_m.tolist() == [pytest.approx(13.0)] * 2  # HDOP 2.6, from the GGA after, then before
    assert fixes.lat.tolist() == [pytest.approx(45 + 46.2282 / 60), pytest.approx(-(45 + 46.2282 / 60))]
    assert fixes.lon[1] == pytest.approx(-(3 + 11.659 / 60))


def test_read_nmea_rmc_without_gga_of_its_time_has_unknown_accuracy() -> None:
    other_second = _s("GPGGA,123520,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
    fixes, errors = _read(f"{other_second}\n{DEPRIEST_RMC}\n")
    assert errors == []
    assert math.isnan(fixes.accuracy_m[0])


@pytest.mark.parametrize(
    "talker",
    [
        "GP",  # GPS
        "GN",  # several constellations combined
        "GL",  # GLONASS
        "GA",  # Galileo
        "BD",  # BeiDou (before NMEA 4.11)
        "GB",  # BeiDou (NMEA 4.11)
    ],
)
def test_read_nmea_any_gnss_talker_is_read(talker: str) -> None:
    rmc = _s(f"{talker}RMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W")
    fixes, errors = _read(rmc + "\n")
    assert (len(fixes), errors) == (1, [])


def test_read_nmea_other_sentences_comments_and_blank_lines_are_ignored_silently() -> None:
    log = "\n".join(
        [
            "# gpsd-style comment line",
            "",
            "$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39",
            "$BDGSA,A,2,,,,,,,,,,,,,4.49,4.38,1.00,4*0D",  # BeiDou GSA (Teseo log, as TESEO_VOID)
            "$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48",  # DePriest's VTG
            "$GPGSV,2,1,08,01,40,083,46,02,17,308,41,12,07,344,39,14,22,228,45*75",  # DePriest's GSV
            _s("PGRMC,A,218.8,100,6378137.000,298.257223563,0.0,0.0,0.0,A,3,1,1,4,30"),  # Garmin, not RMC
            "!AIVDM,1,1,,B,15M67FC000G?ufbE`FepT@3n00Sa,0*5C",  # AIS, not a position of ours
            DEPRIEST_RMC,
        ]
    )
    fixes, errors = _read(log + "\n")
    assert errors == []
    assert fixes.lines.tolist() == [9]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (TESEO_VOID, "void fix: RMC status V"),  # a real receiver with no fix
        (_s("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,,,N"), "void fix: RMC mode N"),
        (_s("GPGGA,123519,4807.038,N,01131.000,E,0,00,99.99,,M,,M,,"), "void fix: GGA quality 0"),
        # DEPRIEST_RMC with one digit changed (4807 -> 4808) and the checksum left alone
        (DEPRIEST_RMC.replace("4807", "4808"), "checksum mismatch: sentence says 6A, its bytes give 65"),
        (DEPRIEST_RMC.removesuffix("*6A"), "no checksum"),
        (DEPRIEST_RMC.replace("*6A", "*6G"), "malformed checksum '6G'"),
        (_s("GPRMC,256000,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"), "RMC time '256000' does not exist"),
        (_s("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,300294,003.1,W"), "RMC date '300294' does not exist"),
        (_s("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,2303,003.1,W"), "RMC date '2303' is not ddmmyy"),
        (_s("GPRMC,123519,A,9107.038,N,01131.000,E,022.4,084.4,230394,003.1,W"), "RMC latitude '9107.038,N' is beyond"),
        (_s("GPRMC,123519,A,4807.038,N,01160.500,E,022.4,084.4,230394,003.1,W"), "has 60+ minutes"),
        (_s("GPRMC,123519,A,4807.038,X,01131.000,E,022.4,084.4,230394,003.1,W"), "hemisphere 'X' is not N or S"),
        (_s("GPRMC,123519,A,4807.038,N,01131.000,E,fast,084.4,230394,003.1,W"), "RMC speed 'fast' is not a number"),
        (_s("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,400.0,230394,003.1,W"), "more than 360 degrees"),
        (_s("GPRMC,123519,A,4807.038,N,01131.000,E"), "RMC has 6 fields, expected 11 to 13"),
        (_s("GPRMC,123519,X,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"), "status 'X' is neither A"),
        (_s("GPGGA,123519,4807.038,N,01131.000,E,1,08,high,545.4,M,46.9,M,,"), "GGA HDOP 'high' is not a number"),
        ("$GPR", "malformed sentence, too short"),
        ("GPRMC,123519,A,4807.038,N", "not an NMEA sentence (no leading '$')"),
    ],
)
def test_read_nmea_bad_line_is_reported_with_its_number_and_good_lines_kept(line: str, reason: str) -> None:
    fixes, errors = _read(f"{DEPRIEST_RMC}\n{line}\n{GNUVARIO_RMC}\n")
    assert fixes.lines.tolist() == [1, 3]
    assert [e.line for e in errors] == [2]
    assert reason in errors[0].reason


def test_read_nmea_date_rolls_over_at_midnight() -> None:
    log = [
        _s("GPGGA,235959.50,4807.038,N,01131.000,E,1,08,1.0,545.4,M,46.9,M,,"),
        _s("GPRMC,235959.50,A,4807.038,N,01131.000,E,0.0,,311226,,"),  # last second of 2026
        _s("GPGGA,000000.50,4807.038,N,01131.000,E,1,08,2.0,545.4,M,46.9,M,,"),
        _s("GPRMC,000000.50,A,4807.038,N,01131.000,E,0.0,,010127,,"),  # first of 2027
    ]
    fixes, errors = _read("\n".join(log) + "\n")
    assert errors == []
    assert fixes.ts.tolist() == [_epoch(2026, 12, 31, 23, 59, 59) + 0.5, _epoch(2027, 1, 1) + 0.5]
    assert fixes.accuracy_m.tolist() == [5.0, 10.0]  # each paired with the GGA of its own second
    assert np.isnan(fixes.heading_deg).all()  # an empty course is unknown, not 0


def test_read_nmea_two_digit_years_are_1980_to_2079() -> None:
    log = [_s(f"GPRMC,000000,A,4807.038,N,01131.000,E,0.0,0.0,0101{yy},,") for yy in ("80", "79")]
    fixes, _ = _read("\n".join(log) + "\n")
    assert fixes.ts.tolist() == [_epoch(1980, 1, 1), _epoch(2079, 1, 1)]


def test_read_nmea_course_360_is_north() -> None:
    fixes, _ = _read(_s("GPRMC,123519,A,4807.038,N,01131.000,E,1.0,360.0,230394,,") + "\n")
    assert fixes.heading_deg.tolist() == [0.0]


def test_read_nmea_block_boundaries_change_nothing() -> None:
    """A GGA after its RMC in the next block still pairs; lines keep counting across blocks."""
    epochs = [(f"{10 + i // 60:02d}{i % 60:02d}00", f"{1 + i % 9}.0") for i in range(40)]
    log = "".join(
        _s(f"GPRMC,{t},A,4807.038,N,01131.000,E,1.0,10.0,230394,,")
        + "\r\n"
        + _s(f"GPGSA,A,3,04,05,,,,,,,,,,,2.5,{h},2.1")
        + "\r\n"
        + _s(f"GPGGA,{t},4807.038,N,01131.000,E,1,08,{h},545.4,M,46.9,M,,")
        + "\r\n"
        for t, h in epochs
    )
    whole, _ = _read(log)
    for block_bytes in (64, 100, 333):
        split, errors = _read(log, block_bytes=block_bytes)
        assert errors == []
        assert split.lines.tolist() == whole.lines.tolist() == list(range(1, 120, 3))
        assert split.accuracy_m.tolist() == whole.accuracy_m.tolist() == [float(h) * 5 for _, h in epochs]


def test_read_nmea_fast_path_and_exact_reader_give_identical_numbers() -> None:
    """Fixes read in bulk equal, bit for bit, what the one-line reader makes of the same sentences."""
    rng = np.random.default_rng(3)
    lines = []
    for _ in range(200):
        clock = f"{rng.integers(24):02d}{rng.integers(60):02d}{rng.integers(60):02d}.{rng.integers(100):02d}"
        lat_text, lon_text = (
            f"{rng.integers(90):02d}{rng.random() * 60:07.4f}",
            f"{rng.integers(180):03d}{rng.random() * 60:07.4f}",
        )
        day = f"{rng.integers(1, 29):02d}{rng.integers(1, 13):02d}{rng.integers(100):02d}"
        ns, ew = rng.choice(["N", "S"]), rng.choice(["E", "W"])
        motion = f"{rng.random() * 90:.2f},{rng.random() * 360:.2f}"
        lines.append(_s(f"GNRMC,{clock},A,{lat_text},{ns},{lon_text},{ew},{motion},{day},,,A"))
    fixes, errors = _read("\n".join(lines) + "\n")
    assert errors == [] and len(fixes) == 200
    for i, line in enumerate(lines):
        exact = _read_sentence(line.encode())
        assert isinstance(exact, tuple) and len(exact) == 6
        _, ts, lat, lon, speed, heading = exact
        assert (fixes.ts[i], fixes.lat[i], fixes.lon[i], fixes.speed_mps[i], fixes.heading_deg[i]) == (
            ts,
            lat,
            lon,
            speed,
            heading,
        )


def test_read_nmea_lowercase_checksum_and_missing_final_newline_are_read() -> None:
    fixes, errors = _read(DEPRIEST_RMC.replace("*6A", "*6a"))
    assert (fixes.lines.tolist(), errors) == ([1], [])


@pytest.mark.parametrize("text", ["", "\n", "\r\n\r\n", "  \n", "# comment only"])
def test_read_nmea_empty_or_blank_input_gives_nothing(text: str) -> None:
    fixes, errors = _read(text)
    assert (len(fixes), errors) == (0, [])


def test_read_nmea_yields_before_the_input_ends() -> None:
    """An endless log (a live AVL feed) still yields: the reader streams, it does not slurp."""

    class EndlessLog:
        name = "endless.nmea"

        def __init__(self) -> None:
            self.served = 0
            self.sentences = self._sentences()

        def _sentences(self) -> Iterator[bytes]:
            second = 0
            while True:
                clock = f"{second // 3600 % 24:02d}{second // 60 % 60:02d}{second % 60:02d}"
                yield (_s(f"GPRMC,{clock},A,4807.038,N,01131.000,E,1.0,1.0,230394,,") + "\r\n").encode()
                second += 1

        def read(self, size: int = -1) -> bytes:
            out = b"".join(next(self.sentences) for _ in range(max(size, 1) // 60 + 1))
            self.served += len(out)
            return out

    log = EndlessLog()
    first = next(iter(read_nmea(log, "avl-1", block_bytes=4096)))  # type: ignore[arg-type]
    assert len(first) > 50
    assert log.served < 3 * 4096


def test_read_nmea_unreadable_inputs_raise_nmea_error(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(NmeaError, match="no line break"):
        list(read_nmea(io.BytesIO(b"x" * (2 << 20)), "d"))
    with pytest.raises(NmeaError, match=r"cannot read .*missing\.nmea"):
        next(iter(read_nmea(f"{tmp_path}/missing.nmea", "d")))


def test_read_nmea_bad_device_id_is_refused_at_once() -> None:
    with pytest.raises(InputError, match="device_id"):
        read_nmea(io.BytesIO(b""), "")


def test_fix_chunk_to_ping_batch_carries_speed_and_heading() -> None:
    fixes, _ = _read(
        f"{DEPRIEST_GGA}\n{DEPRIEST_RMC}\n" + _s("GPRMC,123520,A,4807.038,N,01131.000,E,,,230394,,") + "\n"
    )
    batch = fixes.to_ping_batch()
    assert batch.device_id.tolist() == ["radio-7", "radio-7"]
    assert batch.ts.tolist() == fixes.ts.tolist()
    assert batch.extras.tolist() == [
        {"speed_mps": pytest.approx(22.4 * KNOT_MPS), "heading_deg": pytest.approx(84.4)},
        {"speed_mps": None, "heading_deg": None},
    ]
