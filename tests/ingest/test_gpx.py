"""Tests for the streaming GPX reader (``ingest.gpx``).

Track points from public sources, each cited where it is used:
- GARMIN: a Garmin nüvi trkpt with TrackPointExtension speed and course, from the question "What are the
  units for Garmin's GPX gpxtpx:speed?" (gis.stackexchange.com/questions/74222); the namespace declaration
  is the one Garmin's own exports carry.
- GPSBABEL: a GPX 1.0 track written by GPSBabel, with course, speed and hdop (pastebin.com/UswmgDJL,
  "FILE0101_MP4.gpx", first two points).
- OSMAND: the trkpt example of OsmAnd's "OsmAnd GPX" format page (osmand.net docs, osmandapp/web
  main/docs/technical/osmand-file-formats/osmand-gpx.md), inside a header as OsmAnd writes it.
- HACC: the trkpt with accuracy estimates of the Logiqx/gpx-ideas GPX 1.1.1 proposal
  (docs/gpx/proposal/examples.md), given as an extension.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.fixes import FixChunk, RowError
from ingest.gpx import GpxError, read_gpx

GPX11 = (
    '<gpx version="1.1" creator="{creator}" xmlns="http://www.topografix.com/GPX/1/1" '
    'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v2">'
)
GARMIN = """<trkpt lat="38.900207" lon="-77.008990">
<ele>11.67</ele><time>2013-06-11T04:04:49Z</time>
<extensions>
<gpxtpx:TrackPointExtension><gpxtpx:speed>6.86</gpxtpx:speed>
<gpxtpx:course>271.06</gpxtpx:course>
</gpxtpx:TrackPointExtension>
</extensions></trkpt>"""
GPSBABEL = """<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.0" creator="GPSBabel - http://www.gpsbabel.org" xmlns="http://www.topografix.com/GPX/1/0">
  <time>2017-10-02T07:24:14.783Z</time>
  <bounds minlat="38.635266167" minlon="-90.163869000" maxlat="38.636138833" maxlon="-90.162611667"/>
  <trk>
    <trkseg>
      <trkpt lat="38.636138833" lon="-90.162611667">
        <ele>192.000000</ele>
        <time>2017-06-19T18:41:36Z</time>
        <course>230.050003</course>
        <speed>23.925783</speed>
        <geoidheight>-32.1</geoidheight>
        <fix>3d</fix>
        <sat>4</sat>
        <hdop>2.380000</hdop>
      </trkpt>
      <trkpt lat="38.635696333" lon="-90.163234333">
        <ele>193.100000</ele>
        <time>2017-06-19T18:41:37Z</time>
        <course>229.869995</course>
        <speed>24.126415</speed>
        <geoidheight>-32.1</geoidheight>
        <fix>3d</fix>
        <sat>4</sat>
        <hdop>2.380000</hdop>
      </trkpt>
    </trkseg>
  </trk>
</gpx>
"""
OSMAND = """  <trkpt lat="52.397799" lon="4.575998">
    <ele>203</ele>
    <time>2019-05-08T10:36:43Z</time>
    <hdop>3</hdop>
    <extensions>
      <heading>273</heading>
      <speed>5.02</speed>
    </extensions>
  </trkpt>"""
HACC = """<trkpt lat="50.5710623" lon="-2.4563484">
  <ele>7.90</ele>
  <time>2022-04-11T10:16:01Z</time>
  <hdop>1.2</hdop>
  <extensions><hacc>2.0</hacc><vacc>4.0</vacc></extensions>
</trkpt>"""


def _track(*points: str, creator: str = "test", header: str = GPX11) -> str:
    """A GPX file: declaration, header, <trk><trkseg> on lines 1-3, the points from line 4."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', header.format(creator=creator), "<trk><trkseg>", *points]
    return "\n".join([*lines, "</trkseg></trk></gpx>", ""])


def _read(text: str, **kwargs: int) -> tuple[list[FixChunk], list[RowError]]:
    chunks = list(read_gpx(io.BytesIO(text.encode()), "handheld-3", **kwargs))
    return chunks, [e for c in chunks for e in c.errors]


def _epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_read_gpx_garmin_extension_gives_speed_and_course() -> None:
    (chunk,), errors = _read(_track(GARMIN))
    assert errors == []
    assert chunk.device_id == "handheld-3"
    assert chunk.lines.tolist() == [4]  # the <trkpt> tag's line
    assert (chunk.ts.tolist(), chunk.lat.tolist(), chunk.lon.tolist()) == (
        [_epoch(2013, 6, 11, 4, 4, 49)],
        [38.900207],
        [-77.00899],
    )
    assert (chunk.speed_mps.tolist(), chunk.heading_deg.tolist()) == ([6.86], [271.06])
    assert math.isnan(chunk.accuracy_m[0])  # no hdop, no accuracy: unknown


def test_read_gpx_version_1_0_reads_speed_course_and_hdop() -> None:
    (chunk,), errors = _read(GPSBABEL)
    assert errors == []
    assert chunk.lines.tolist() == [7, 17]
    assert chunk.ts.tolist() == [_epoch(2017, 6, 19, 18, 41, 36), _epoch(2017, 6, 19, 18, 41, 37)]
    assert chunk.speed_mps.tolist() == [23.925783, 24.126415]
    assert chunk.heading_deg.tolist() == [230.050003, 229.869995]
    assert chunk.accuracy_m.tolist() == [pytest.approx(2.38 * 5.0)] * 2  # HDOP x UERE


def test_read_gpx_osmand_hdop_is_metres_and_heading_extension_is_read() -> None:
    (osmand,), _ = _read(_track(OSMAND, creator="OsmAnd~ 4.7.1"))
    (other,), _ = _read(_track(OSMAND, creator="some other app"))
    assert osmand.accuracy_m.tolist() == [3.0]  # OsmAnd writes Android's accuracy into <hdop>
    assert other.accuracy_m.tolist() == [15.0]  # anyone else's <hdop> is a DOP
    assert (osmand.speed_mps.tolist(), osmand.heading_deg.tolist()) == ([5.02], [273.0])


def test_read_gpx_accuracy_extension_wins_over_hdop() -> None:
    (chunk,), _ = _read(_track(HACC))
    assert chunk.accuracy_m.tolist() == [2.0]


def test_read_gpx_without_namespace_is_read_as_gpx() -> None:
    (chunk,), errors = _read(_track(GARMIN, header='<gpx version="1.1" creator="{creator}" xmlns:gpxtpx="x">'))
    assert (len(chunk), errors) == (1, [])


def test_read_gpx_point_without_time_is_reported_and_skipped() -> None:
    untimed = '<trkpt lat="52.0" lon="0.1"><ele>3</ele></trkpt>'
    (chunk,), errors = _read(_track(GARMIN, untimed, OSMAND))
    assert chunk.lines.tolist() == [4, 12]
    assert errors == [RowError(11, "trkpt has no <time>: cannot be placed in time")]


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        ('<trkpt lat="95.0" lon="0.1"><time>2020-01-01T00:00:00Z</time></trkpt>', "lat: must be between -90 and 90"),
        ('<trkpt lon="0.1"><time>2020-01-01T00:00:00Z</time></trkpt>', "lat: is required"),
        ('<trkpt lat="51.5" lon="east"><time>2020-01-01T00:00:00Z</time></trkpt>', "lon: must be a number"),
        ('<trkpt lat="51.5" lon="0.1"><time>yesterday</time></trkpt>', "time: 'yesterday' is not an xsd:dateTime"),
        ('<trkpt lat="51.5" lon="0.1"><time>2020-02-30T00:00:00Z</time></trkpt>', "does not exist"),
        ('<trkpt lat="51.5" lon="0.1"><time>1969-12-31T23:59:59Z</time></trkpt>', "time: must be in the years"),
        ('<trkpt lat="51.5" lon="0.1"><time>2020-01-01T00:00:00Z</time><hdop>-1</hdop></trkpt>', "hdop: must be >="),
        ('<trkpt lat="51.5" lon="0.1"><time>2020-01-01T00:00:00Z</time><course>400</course></trkpt>', "course:"),
    ],
)
def test_read_gpx_impossible_point_is_reported_on_its_line(point: str, reason: str) -> None:
    (chunk,), errors = _read(_track(OSMAND, point))
    assert len(chunk) == 1
    assert [e.line for e in errors] == [13]  # OSMAND takes lines 4-12
    assert reason in errors[0].reason


def test_read_gpx_times_without_offset_are_utc_and_offsets_apply() -> None:
    points = [
        f'<trkpt lat="51.5" lon="0.1"><time>{t}</time></trkpt>'
        for t in ("2020-01-01T12:00:00", "2020-01-01T13:00:00.250+01:00", "2020-01-01T12:00:00.123456789Z")
    ]
    (chunk,), errors = _read(_track(*points))
    assert errors == []
    noon = _epoch(2020, 1, 1, 12)
    assert chunk.ts.tolist() == [noon, noon + 0.25, noon + 0.123456]


def test_read_gpx_course_360_is_north() -> None:
    (chunk,), _ = _read(
        _track('<trkpt lat="51.5" lon="0.1"><time>2020-01-01T00:00:00Z</time><course>360</course></trkpt>')
    )
    assert chunk.heading_deg.tolist() == [0.0]


def test_read_gpx_route_points_and_waypoints_are_not_fixes() -> None:
    text = _track(GARMIN).replace(
        "<trk>",
        '<wpt lat="1" lon="1"><time>2020-01-01T00:00:00Z</time></wpt>'
        '<rte><rtept lat="2" lon="2"><time>2020-01-01T00:00:00Z</time></rtept></rte><trk>',
    )
    (chunk,), errors = _read(text)
    assert (chunk.lat.tolist(), errors) == ([38.900207], [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '<?xml version="1.0"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document/></kml>',
            r"track\.gpx: line 2: not a GPX file: the root element is <kml> in namespace http://www\.opengis",
        ),
        (_track(GARMIN).replace("</trkseg>", ""), r"track\.gpx: line 11, column 3: malformed XML: mismatched tag"),
        ("", r"track\.gpx: line 1, column 1: malformed XML: no element found"),
        (
            '<?xml version="1.0"?>\n<!DOCTYPE gpx [<!ENTITY a "aaaaaaaaaa">]>\n<gpx></gpx>',
            r"track\.gpx: line 2: entity declaration 'a': refused",
        ),
    ],
)
def test_read_gpx_non_gpx_or_malformed_xml_raises_with_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "track.gpx"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GpxError, match=message):
        list(read_gpx(path, "d"))


def test_read_gpx_yields_before_the_input_ends() -> None:
    """An endless recording still yields its first points: the reader streams, it does not slurp."""

    class EndlessTrack:
        name = "endless.gpx"

        def __init__(self) -> None:
            self.served = 0
            self.parts = self._parts()

        def _parts(self) -> Iterator[bytes]:
            yield _track().split("\n</trkseg>")[0].encode()
            second = 0
            while True:
                stamp = datetime.fromtimestamp(1.6e9 + second, UTC).isoformat()
                yield f'\n<trkpt lat="51.5" lon="0.1"><time>{stamp}</time></trkpt>'.encode()
                second += 1

        def read(self, size: int = -1) -> bytes:
            out = b"".join(next(self.parts) for _ in range(20))
            self.served += len(out)
            return out

    track = EndlessTrack()
    first = next(iter(read_gpx(track, "walker", batch_points=100)))  # type: ignore[arg-type]
    assert len(first) >= 100
    assert track.served < 20_000
