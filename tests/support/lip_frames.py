"""A tiny LIP encoder for tests: frames written field by field from ETSI TS 100 392-18-1.

Fields are raw integers (negative ones in two's complement), so a test states exactly which
bits it sends and computes the degrees, metres and km/h it expects on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

Fields = Sequence[tuple[int, int]]  # (value, width in bits)

LON_STEP = 360 / 2**25
LAT_STEP = 180 / 2**24


def lon_raw(degrees: float) -> int:
    """The 25-bit longitude nearest to degrees (+180 wraps to -180: it is not representable)."""
    return (round(degrees / LON_STEP) + 2**24) % 2**25 - 2**24


def lat_raw(degrees: float) -> int:
    """The 24-bit latitude nearest to degrees (clamped below +90, which is not representable)."""
    return min(round(degrees / LAT_STEP), 2**23 - 1)


def bits(fields: Fields) -> str:
    """The fields as a bit string, each in its width (two's complement for negative values)."""
    out = []
    for value, width in fields:
        assert -(2 ** (width - 1)) <= value < 2**width, (value, width)
        out.append(format(value % 2**width, f"0{width}b"))
    return "".join(out)


def to_hex(bit_string: str, *, identifier: bool = True) -> str:
    """Octets of the bits, zero-padded to a whole octet, optionally behind the 0x0A identifier."""
    padded = bit_string + "0" * (-len(bit_string) % 8)
    body = format(int(padded, 2), f"0{len(padded) // 4}X") if padded else ""
    return ("0A" if identifier else "") + body


def short_report(
    lon: int,
    lat: int,
    *,
    elapsed: int = 0,
    error: int = 0,
    speed: int = 0,
    direction: int = 0,
    extra: tuple[int, int] = (0, 0),
    identifier: bool = True,
) -> str:
    """A short location report (PDU type 0): raw longitude and latitude, the other fields' codes."""
    fields = [(0, 2), (elapsed, 2), (lon, 25), (lat, 24), (error, 3), (speed, 7), (direction, 4)]
    return to_hex(bits([*fields, (extra[0], 1), (extra[1], 8)]), identifier=identifier)


def long_report(
    lon: int,
    lat: int,
    *,
    time: Fields = ((0, 2),),
    shape: int = 1,
    after_point: Fields = (),
    velocity: Fields = ((0, 3),),
    trailer: Fields = ((0, 1), (0, 1), (0, 8)),
    identifier: bool = True,
) -> str:
    """A long location report (PDU type 1, extension 3); time and velocity start with their type."""
    fields = [(1, 2), (3, 4), *time, (shape, 4), (lon, 25), (lat, 24), *after_point, *velocity, *trailer]
    return to_hex(bits(fields), identifier=identifier)


def time_of_position(day: int, hour: int, minute: int, second: int) -> Fields:
    """Time data of type 2: UTC day of month, hour, minute, second."""
    return ((2, 2), (day, 5), (hour, 5), (minute, 6), (second, 6))
