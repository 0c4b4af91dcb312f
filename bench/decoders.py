"""Decoding speed of the input formats of issue 11, in records per second (target: 200,000).

`.venv/bin/python -m bench.decoders`. One function per decoder; each decodes in polls of
POLL records, as a Kafka poll or an HTTP body hands them over, and prints the best of 3 runs.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import orjson

from geofence.events import format_ts
from ingest.lip import decode_lip
from ingest.lip_records import parse_lip_messages
from ingest.nmea import checksum, read_nmea

RECORDS = 200_000
POLL = 10_000
#: Issue 11: LIP and NMEA decoded at this many records per second or more.
TARGET = 200_000

# Long location reports from public sources (tests/ingest/test_lip.py cites them): no time,
# time elapsed and time of position, circle with altitude, velocity with direction.
LONG_REPORTS = (
    "0A4C51AC608A7A20D80FFF40000000",
    "0A4D146B18229E8837FBFFDFFFF000",
    "0A4E08000146B18229E883603FFD00000000",
    "0A4EC8F2B154F2F2BC0EF7A0183D1FC44100",
)


def _best_rate(decode: Callable[[int, int], None], repeats: int = 3) -> float:
    """Records per second of the fastest of a few runs over all polls."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, RECORDS, POLL):
            decode(start, min(start + POLL, RECORDS))
        best = min(best, time.perf_counter() - started)
    return RECORDS / best


def _lip_payloads(rng: np.random.Generator) -> Sequence[str]:
    """80% random short reports behind the identifier, 20% long reports, shuffled."""
    octets = rng.integers(0, 256, size=(RECORDS, 10), dtype=np.uint8)
    octets[:, 0] &= 0x3F  # PDU type 0
    text = octets.tobytes().hex().upper()
    payloads = np.array(["0A" + text[i : i + 20] for i in range(0, len(text), 20)], dtype=object)
    longs = rng.random(RECORDS) < 0.2
    payloads[longs] = rng.choice(np.array(LONG_REPORTS, dtype=object), size=int(longs.sum()))
    out: list[str] = payloads.tolist()
    return out


def bench_lip() -> None:
    payloads = _lip_payloads(np.random.default_rng(7))
    received = np.full(RECORDS, 1_795_298_580.0)
    refused = len(decode_lip(payloads, received).rejects)

    def decode(start: int, stop: int) -> None:
        decode_lip(payloads[start:stop], received[start:stop])

    rate = _best_rate(decode)
    print(f"  LIP (80% short, 20% long reports, {refused} refused): {rate:>12,.0f} records/s  {_verdict(rate)}")
    stamp = format_ts(float(received[0]))
    records = [
        orjson.dumps({"issi": str(2_000_000 + i % 500), "received_at": stamp, "payload": p})
        for i, p in enumerate(payloads)
    ]

    def parse(start: int, stop: int) -> None:
        parse_lip_messages(records[start:stop])

    rate = _best_rate(parse)
    print(f"  LIP records as the LIP topic and POST /v1/pings/lip take them (JSON, ISO time): {rate:>12,.0f} records/s")


def _nmea_log(epochs: int) -> bytes:
    """A receiver's 1 Hz log: GGA, GSA, RMC and VTG each second, as u-blox and SiRF chips print them."""
    rng = np.random.default_rng(7)
    lat = 5130.0 + np.cumsum(rng.normal(0, 0.001, epochs))
    lon = 7.0 + np.cumsum(rng.normal(0, 0.001, epochs))
    out: list[str] = []
    for i in range(epochs):
        t = i % 86400
        clock = f"{t // 3600:02d}{t // 60 % 60:02d}{t % 60:02d}.00"
        day = f"{1 + i // 86400 % 28:02d}1126"
        bodies = (
            f"GPGGA,{clock},{lat[i]:09.4f},N,{lon[i]:010.4f},W,1,09,1.1,45.4,M,47.0,M,,",
            "GPGSA,A,3,04,05,09,12,16,18,25,29,31,,,,1.8,1.1,1.4",
            f"GPRMC,{clock},A,{lat[i]:09.4f},N,{lon[i]:010.4f},W,3.2,{i % 360}.0,{day},,,A",
            f"GPVTG,{i % 360}.0,T,,M,3.2,N,5.9,K,A",
        )
        out.extend(f"${body}*{checksum(body.encode()):02X}\r\n" for body in bodies)
    return "".join(out).encode()


def bench_nmea() -> None:
    """A whole log streamed from memory (read_nmea cuts its own blocks); records are sentences."""
    data = _nmea_log(RECORDS // 4)
    fixes = sum(len(chunk) for chunk in read_nmea(io.BytesIO(data), "bench"))
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _chunk in read_nmea(io.BytesIO(data), "bench"):
            pass
        best = min(best, time.perf_counter() - started)
    print(
        f"  NMEA 0183 (GGA, GSA, RMC, VTG each second; {fixes:,} RMC fixes): {RECORDS / best:>12,.0f} records/s"
        f"  ({fixes / best:,.0f} fixes/s)  {_verdict(RECORDS / best)}"
    )


def _verdict(rate: float) -> str:
    return f"target >= {TARGET:,}/s: {'met' if rate >= TARGET else 'MISSED'}"


def main() -> int:
    print(f"decoders, {RECORDS:,} records in polls of {POLL:,} (best of 3)")
    bench_lip()
    bench_nmea()
    return 0


if __name__ == "__main__":
    sys.exit(main())
