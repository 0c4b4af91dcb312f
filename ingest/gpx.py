"""Streaming reader of GPX 1.0 and 1.1 track logs: every ``trkpt`` with a time becomes a fix.

Parsed with the standard library's expat parser, fed a block at a time: it builds no tree (so
nothing to clear), and unlike ``ElementTree.iterparse`` it tells the line of each element, which
every refusal names. lxml would too, but is not a dependency. Entity declarations are refused
outright (a "billion laughs" file is an attack, not a track), and external entities are never
fetched (expat does not without a handler).

What is read, per ``trkpt`` of the GPX namespace (1.0, 1.1, or none at all, which some loggers
write):
- ``lat``/``lon`` attributes and ``<time>`` (xsd:dateTime; without an offset it is UTC, as the
  GPX schema says). A point without time cannot be placed in the stream: reported and skipped.
- accuracy: an extension's ``<hacc>`` in metres (trails.io's ``trailsio:hacc``, the
  Logiqx/gpx-ideas GPX 1.1.1 proposal) wins; else ``<hdop>`` x ``UERE_M`` (``ingest.fixes``).
  OsmAnd (``creator="OsmAnd..."``) writes Android's accuracy in metres into ``<hdop>``
  (NavigationService passes ``location.getAccuracy()`` as SavingTrackHelper's hdop), so there
  ``<hdop>`` is taken as metres.
- speed (m/s) and course (degrees): GPX 1.0's ``<speed>``/``<course>``; in extensions, Garmin's
  TrackPointExtension v2 ``gpxtpx:speed``/``gpxtpx:course`` and OsmAnd's ``speed``/``heading``.
  Extension elements are matched by local name, whatever their prefix.
- ``<ele>`` is not read: pings and fences are 2D.

Not read: ``rtept`` (a planned route, not where anyone was; route points rarely have a time) and
``wpt`` (marked places). Values are checked by the ping rules (``ingest.rules``); a point that
breaks one is a ``RowError`` on the line of its ``<trkpt>`` tag. A file that is not GPX, or stops
being well-formed XML, raises ``GpxError`` naming the file and line; points already yielded stay
yielded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO
from xml.parsers import expat

import numpy as np

from ingest.csv_pings import RowError
from ingest.fixes import UERE_M, FixChunk, Source, stream_source
from ingest.rules import ACCURACY, DEVICE_ID, LAT, LON, SPEED, TIMESTAMP, NumberRule, show

__all__ = ["GpxError", "read_gpx"]

GPX_NAMESPACES = ("http://www.topografix.com/GPX/1/0", "http://www.topografix.com/GPX/1/1", "")
READ_BYTES = 1 << 16
BATCH_POINTS = 8192
# xsd:dateTime as GPX writes it (fromisoformat alone would also take a bare date).
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
# Children of trkpt in the GPX namespace, and extension elements by local name: field they fill.
_STANDARD = {"time": "time", "hdop": "hdop", "speed": "speed", "course": "course"}
_EXTENSION = {"speed": "ext_speed", "course": "ext_course", "heading": "ext_course", "hacc": "hacc"}
_HDOP = NumberRule(0.0)
_COURSE = NumberRule(0.0, 360.0)  # 360 is north, as 0 is; the ping rule (HEADING) wants [0, 360)


class GpxError(ValueError):
    """The input is not a GPX file, or not well-formed XML: nothing after that point can be read."""


def read_gpx(source: Source, device_id: str, *, batch_points: int = BATCH_POINTS) -> Iterator[FixChunk]:
    """Stream the track points of a GPX file (a path or a binary file object) as chunks of fixes of device_id.

    Raises ``InputError`` for a bad device id now, ``GpxError`` while reading (module docstring).
    """
    DEVICE_ID.check("device_id", device_id)
    if batch_points < 1:
        raise ValueError(f"batch_points must be >= 1, got {batch_points}")
    return stream_source(source, lambda f, name: _read(f, name, device_id, batch_points), GpxError)


def _read(f: BinaryIO, name: str, device_id: str, batch_points: int) -> Iterator[FixChunk]:
    parser = expat.ParserCreate(namespace_separator=" ")
    points = _Points(parser, name)
    parser.buffer_text = True  # one text callback per run of text, not per buffer boundary
    parser.StartElementHandler = points.start
    parser.EndElementHandler = points.end
    parser.CharacterDataHandler = points.text
    parser.EntityDeclHandler = points.refuse_entity
    while True:
        data = f.read(READ_BYTES)
        try:
            parser.Parse(data, not data)
        except expat.ExpatError as e:
            where = f"line {e.lineno}, column {e.offset + 1}"
            raise GpxError(f"{name}: {where}: malformed XML: {expat.ErrorString(e.code)}") from None
        if not data or len(points.lines) >= batch_points:
            yield points.chunk(device_id)
        if not data:
            return


class _Points:
    """The expat callbacks: collect each trkpt's fields, check them, keep fixes and refusals."""

    def __init__(self, parser: expat.XMLParserType, name: str) -> None:
        self.parser = parser
        self.name = name
        self.namespace: str | None = None  # the GPX namespace, once the root is seen
        self.hdop_in_metres = False
        self.depth = 0
        self.point: dict[str, str] | None = None  # the open trkpt's attributes and fields
        self.point_depth = 0
        self.point_line = 0
        self.field: str | None = None  # the field whose text is being collected
        self.field_depth = 0
        self.parts: list[str] = []
        self.lines: list[int] = []
        self.values: list[tuple[float, float, float, float, float, float]] = []
        self.errors: list[RowError] = []

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        uri, _, local = tag.rpartition(" ")
        self.depth += 1
        if self.namespace is None:
            if local != "gpx" or uri not in GPX_NAMESPACES:
                shown = f"<{local}>" + (f" in namespace {uri}" if uri else "")
                raise GpxError(
                    f"{self.name}: line {self.parser.CurrentLineNumber}: not a GPX file: "
                    f"the root element is {shown}, expected <gpx> of GPX 1.0 or 1.1"
                )
            self.namespace = uri
            self.hdop_in_metres = attrs.get("creator", "").startswith("OsmAnd")
        elif self.point is None:
            if local == "trkpt" and uri == self.namespace:
                self.point = {key: value for key, value in attrs.items() if key in ("lat", "lon")}
                self.point_depth, self.point_line = self.depth, self.parser.CurrentLineNumber
        elif self.field is None:
            standard = uri == self.namespace and self.depth == self.point_depth + 1
            field = _STANDARD.get(local) if standard else _EXTENSION.get(local)
            if field is not None and field not in self.point:
                self.field, self.field_depth, self.parts = field, self.depth, []

    def text(self, data: str) -> None:
        if self.field is not None:
            self.parts.append(data)

    def end(self, tag: str) -> None:
        if self.field is not None and self.depth == self.field_depth:
            assert self.point is not None  # a field is only collected inside a point
            self.point[self.field] = "".join(self.parts).strip()
            self.field = None
        elif self.point is not None and self.depth == self.point_depth:
            self._finish(self.point)
            self.point = None
        self.depth -= 1

    def refuse_entity(self, name: str, *_: object) -> None:
        raise GpxError(
            f"{self.name}: line {self.parser.CurrentLineNumber}: entity declaration {name!r}: "
            "refused (GPX has no use for entities; they are how XML bombs work)"
        )

    def _finish(self, point: dict[str, str]) -> None:
        reasons: list[str] = []

        def number(field: str, value: str | None, rule: NumberRule) -> float:
            out = rule.parse(value, text=True)
            if isinstance(out, str):
                reasons.append(f"{field}: {out}")
            return float("nan") if not isinstance(out, float) else out

        lat = number("lat", point.get("lat"), LAT)
        lon = number("lon", point.get("lon"), LON)
        ts = _time(point.get("time"), reasons)
        hacc = number("hacc", point.get("hacc"), ACCURACY)
        hdop = number("hdop", point.get("hdop"), _HDOP)
        speed = number("speed", point.get("speed", point.get("ext_speed")), SPEED)
        course = number("course", point.get("course", point.get("ext_course")), _COURSE)
        if reasons:
            self.errors.append(RowError(self.point_line, "trkpt " + "; ".join(reasons)))
            return
        accuracy = hdop if self.hdop_in_metres else hdop * UERE_M
        self.lines.append(self.point_line)
        self.values.append((ts, lat, lon, accuracy if math.isnan(hacc) else hacc, speed, course % 360.0))

    def chunk(self, device_id: str) -> FixChunk:
        """The fixes and refusals collected since the last chunk, as a chunk; starts a new one."""
        values = np.array(self.values, dtype=np.float64).reshape(len(self.values), 6).T.copy()
        ts, lat, lon, accuracy, speed, heading = values
        out = FixChunk(
            device_id=device_id,
            ts=ts,
            lat=lat,
            lon=lon,
            accuracy_m=accuracy,
            speed_mps=speed,
            heading_deg=heading,
            lines=np.array(self.lines, dtype=np.int64),
            errors=self.errors,
        )
        self.lines, self.values, self.errors = [], [], []
        return out


def _time(text: str | None, reasons: list[str]) -> float:
    """Epoch seconds of a GPX time (UTC when it has no offset); NaN and a reason when it cannot be used."""
    if text is None:
        reasons.append("has no <time>: cannot be placed in time")
        return float("nan")
    if _DATETIME.fullmatch(text) is None:
        reasons.append(f"time: {show(text)} is not an xsd:dateTime (YYYY-MM-DDThh:mm:ss[.s][Z|+hh:mm])")
        return float("nan")
    try:
        stamp = datetime.fromisoformat(text)
        seconds = (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        reasons.append(f"time: {show(text)} does not exist")
        return float("nan")
    if not TIMESTAMP.lo <= seconds < TIMESTAMP.hi:
        reasons.append(f"time: {TIMESTAMP.words}, got {show(text)}")
    return seconds
