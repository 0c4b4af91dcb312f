"""The OsmAnd protocol decoder on the requests the apps and Traccar's own tests send.

Sources of the request strings (read 2026-12, cited per case):
- T: traccar/traccar src/test/java/org/traccar/protocol/OsmAndProtocolDecoderTest.java
  (testDecodeQuery, testDecodeJson), the decoder's reference cases.
- A: traccar/traccar-client-android app/src/test/java/org/traccar/client/ProtocolFormatterTest.kt,
  the URLs the Android Traccar Client builds (ProtocolFormatter.kt).
- S: traccar_client_sdk core/src/commonMain/kotlin/org/traccar/client/HttpUploader.kt, the form
  body Traccar Client 10 posts (the values here are ours, the field set and units theirs).
"""

from __future__ import annotations

import math

import pytest

from ingest.fixes import KNOT_MPS, UERE_M
from ingest.osmand import OsmandFix, parse_request
from ingest.rules import InputError

RECEIVED = 1_765_000_000.0  # when the request arrived: dates a fix sent without a timestamp
FORM = "application/x-www-form-urlencoded; charset=UTF-8"
JSON = "application/json"

#: testDecodeJson's first body (T): Traccar Client 9, flutter_background_geolocation's template.
TRACCAR_JSON = (
    b'{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,'
    b'"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange",'
    b'"battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{},'
    b'"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}'
)
#: testDecodeJson's third body (T): iOS, mock location, speed, heading and battery level -1 (unknown).
TRACCAR_JSON_IOS = (
    b'{"location":{"extras":{},"mock":true,"coords":{"speed_accuracy":-1,"speed":-1,"longitude":-122.406417,'
    b'"ellipsoidal_altitude":0,"floor":null,"heading_accuracy":-1,"latitude":37.785834000000001,"accuracy":5,'
    b'"altitude_accuracy":-1,"altitude":0,"heading":-1},"is_moving":false,"age":188,"odometer":0,'
    b'"uuid":"2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8","event":"motionchange","battery":{"level":-1,'
    b'"is_charging":false},"activity":{"type":"unknown","confidence":100},"timestamp":"2025-05-09T04:11:30.579Z"},'
    b'"device_id":"658765"}'
)
#: testDecodeJson's fourth body (T): moving at 18.67 m/s, heading 63.
TRACCAR_JSON_MOVING = (
    b'{"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75",'
    b'"timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":-6.1148096,"longitude":106.6837015,'
    b'"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,"heading":63,"heading_accuracy":0.28,"altitude":35.7,'
    b'"altitude_accuracy":3.8},"activity":{"type":"still","confidence":100},"battery":{"is_charging":false,'
    b'"level":0.79},"extras":{}},"device_id":"8737767034"}'
)


@pytest.mark.parametrize(
    ("query", "body", "content_type", "fix"),
    [
        # T: ISO 8601 timestamp, hdop but no accuracy: accuracy_m = HDOP x UERE_M
        (
            b"id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0",
            b"", "", OsmandFix("902064", 1453920947.0, 42.06288, -88.23412, 6.0 * UERE_M, 0.0),
        ),
        # T: epoch milliseconds (OsmAnd's), as Traccar reads any whole number from 2^31 - 1 up
        (
            b"id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0&speed=0.0",
            b"", "", OsmandFix("902064", 1442068686.579, 42.06288, -88.23412, 6.0 * UERE_M, 0.0),
        ),
        # T: epoch seconds, bearing 0, hdop 0 (unknown: no accuracy)
        (
            b"id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0&hdop=0.0",
            b"", "", OsmandFix("123456", 1377177267.0, 60.0, 30.0, None, 0.0, 0.0),
        ),
        # T: the minimal request
        (b"id=123456&timestamp=1377177267&lat=60.0&lon=30.0", b"", "", OsmandFix("123456", 1377177267.0, 60.0, 30.0)),
        # T: deviceid and heading spellings, no timestamp: dated when received
        (
            b"lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456",
            b"", "", OsmandFix("123456", RECEIVED, 60.0, 30.0, None, 0.0, 0.0),
        ),
        # T: batt, no timestamp
        (
            b"id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87",
            b"", "", OsmandFix("861001000719969", RECEIVED, 41.666667, -0.883333, None, 0.0),
        ),
        # T: location=lat,lon instead of lat and lon
        (b"id=123456&timestamp=1377177267&location=60.0,30.0", b"", "", OsmandFix("123456", 1377177267.0, 60.0, 30.0)),
        # T: speed 40 knots, unknown parameters (ignition, rpm, fuel) ignored
        (
            b"id=123456789012345&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571&bearing=7.19889788244"
            b"&speed=40&ignition=true&rpm=933&fuel=24",
            b"", "",
            OsmandFix(
                "123456789012345", 1504763810.0, 40.7232948571, -74.0061408571, None, 40 * KNOT_MPS, 7.19889788244
            ),
        ),
        # A: the Android client's URL (POSTed, empty body): accuracy 0.0 is its "GPS fix", read as unknown
        (
            b"id=123456789012345&timestamp=619315200&lat=0.0&lon=0.0&speed=0.0&bearing=0.0&altitude=0.0&accuracy=0.0"
            b"&batt=0.0&alarm=alert%20message",
            b"", "", OsmandFix("123456789012345", 619315200.0, 0.0, 0.0, None, 0.0, 0.0),
        ),
        # S: Traccar Client 10's form body, the URL carrying nothing (its key already taken out)
        (
            b"",
            b"id=PHONE1&lat=51.5&lon=-0.12&timestamp=1765000000&accuracy=12.5&altitude=30.0&speed=2.5&bearing=90.0"
            b"&batt=87&charge=true",
            FORM, OsmandFix("PHONE1", 1765000000.0, 51.5, -0.12, 12.5, 2.5 * KNOT_MPS, 90.0),
        ),
        # S: a fix without accuracy, speed or bearing (the SDK leaves out what it does not know)
        (
            b"", b"id=PHONE1&lat=51.5&lon=-0.12&timestamp=1765000000", FORM,
            OsmandFix("PHONE1", 1765000000.0, 51.5, -0.12),
        ),
        # T: Traccar Client 9's JSON; heading -1 is unknown, speed already m/s
        (b"", TRACCAR_JSON, JSON, OsmandFix("48241179", 1749995112.862, 37.4219983, -122.084, 5.0, 0.0)),
        # T: the iOS body: speed, heading and battery level -1, all unknown
        (b"", TRACCAR_JSON_IOS, JSON, OsmandFix("658765", 1746763890.579, 37.785834, -122.406417, 5.0)),
        # T: a moving fix
        (
            b"", TRACCAR_JSON_MOVING, JSON,
            OsmandFix("8737767034", 1626854794.444, -6.1148096, 106.6837015, 3.8, 18.67, 63.0),
        ),
    ],
)  # fmt: skip
def test_osmand_app_and_traccar_requests_decoded_to_one_fix(
    query: bytes, body: bytes, content_type: str, fix: OsmandFix
) -> None:
    got = parse_request(query, body, content_type, RECEIVED)
    assert got.device_id == fix.device_id
    assert got.ts == pytest.approx(fix.ts, abs=1e-6)
    assert (got.lat, got.lon) == pytest.approx((fix.lat, fix.lon))
    for name in ("accuracy_m", "speed_mps", "heading_deg"):
        want = getattr(fix, name)
        assert getattr(got, name) == (None if want is None else pytest.approx(want)), name


def test_osmand_fix_to_batch_carries_speed_and_heading_as_extras() -> None:
    batch = OsmandFix("PHONE1", 1765000000.0, 51.5, -0.12, None, 1.5, 90.0).to_batch()
    assert batch.device_id.tolist() == ["PHONE1"]
    assert math.isnan(batch.accuracy_m[0])  # unknown accuracy: NaN, as every reader gives it
    assert batch.extras.tolist() == [{"speed_mps": 1.5, "heading_deg": 90.0}]
    assert OsmandFix("PHONE1", 1765000000.0, 51.5, -0.12).to_batch().extras.tolist() == [None]


@pytest.mark.parametrize(
    ("query", "body", "content_type", "words"),
    [
        # T (verifyNull): no device id
        (b"timestamp=1377177267&lat=60.0&lon=30.0", b"", "", "id: is required"),
        # T: cell and Wi-Fi only, no position (Traccar falls back to the last one; we have no fix to place)
        (
            b"id=123456&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90"
            b"&wifi=00-14-22-01-23-45,-80&wifi=00-1C-B3-09-85-15,-70",
            b"", "", "lat: is required",
        ),
        # T: a local time without offset (Traccar reads it in its server's zone): refused, not guessed
        (
            b"lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0&id=353861053849681",
            b"", "", "timestamp: has no UTC offset: '2014-06-04 09:10:11'",
        ),
        (b"id=P&lat=95&lon=0", b"", "", "lat: must be between -90 and 90, got 95"),
        (b"id=P&lat=1&lon=abc", b"", "", "lon: must be a number, got 'abc'"),
        (b"id=P&lat=1&lon=2&bearing=360", b"", "", "bearing: must be >= 0 and < 360, got 360"),
        (b"id=P&lat=1&lon=2&speed=nan", b"", "", "speed: must be finite, got nan"),
        (b"id=P&lat=1&lon=2&hdop=-1", b"", "", "hdop: must be >= 0, got -1"),
        (b"id=P&lat=1&lon=2&accuracy=-5", b"", "", "accuracy: must be >= 0, got -5"),
        (b"id=P&lat=1&lon=2&altitude=high", b"", "", "altitude: must be a number, got 'high'"),
        (b"id=P&lat=1&lon=2&batt=full", b"", "", "batt: must be a number, got 'full'"),
        (b"id=P&lat=1&lon=2&timestamp=yesterday", b"", "", "timestamp: must be ISO 8601 with a UTC offset"),
        (b"id=P&location=60.0", b"", "", "location: must be 'lat,lon', got '60.0'"),
        (b"id=P&location=60.0,190", b"", "", "location: must be between -180 and 180, got 190"),
        (b"id=P%01&lat=1&lon=2", b"", "", "id: holds control character U+0001"),
        (b"id=P&lat=1&lon=%FF", b"", "", "query string: is not valid UTF-8"),
        (b"", b"id=P&lat=1", FORM, "lon: is required"),  # the form body's fields are named as in the URL
        (b"", b"{", JSON, "body: malformed JSON"),
        (b"", b"[]", JSON, "body: must be a JSON object, not an array"),
        (b"", b'{"device_id": "P"}', JSON, "location: is required"),
        (b"", b'{"device_id": "P", "location": {"coords": {}}}', JSON, "location.coords.latitude: is required"),
        (
            b"", b'{"device_id": "P", "location": {"coords": {"latitude": "51.5", "longitude": 0}}}', JSON,
            "location.coords.latitude: must be a JSON number, not a string: '51.5'",
        ),
        (
            b"", b'{"device_id": 7, "location": {"coords": {"latitude": 1, "longitude": 0}}}', JSON,
            "device_id: must be a string, got 7",
        ),
        (
            b"", b'{"device_id": "P", "location": {"timestamp": "2025-06-15 13:45", "coords": {"latitude": 1,'
            b' "longitude": 0}}}', JSON, "location.timestamp: has no UTC offset",
        ),
    ],
)  # fmt: skip
def test_osmand_bad_request_refused_naming_the_field(query: bytes, body: bytes, content_type: str, words: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_request(query, body, content_type, RECEIVED)
    assert str(refused.value).startswith(words)


def test_osmand_url_parameters_win_over_body_as_in_traccar() -> None:
    fix = parse_request(b"id=URL&lat=1&lon=2", b"id=BODY&lat=3&lon=4", FORM, RECEIVED)
    assert (fix.device_id, fix.lat) == ("URL", 1.0)
