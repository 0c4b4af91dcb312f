"""LIP records ({issi, received_at, payload}) made pings: the envelope of the LIP topic, POST /v1/pings/lip, PEI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from support.lip_frames import LAT_STEP, LON_STEP, lat_raw, lon_raw, long_report, short_report, time_of_position

from ingest.lip_records import UNBOUNDED_ACCURACY_M, parse_lip_body, parse_lip_messages
from ingest.ping_message import BodyError, UnsupportedContentType
from ingest.rules import TIMESTAMP

T0 = datetime(2026, 11, 21, 22, 3, tzinfo=UTC).timestamp()
X, Y = lon_raw(-0.1), lat_raw(51.5)
GOOD = short_report(X, Y, error=1, speed=10, direction=4)  # < 20 m, 10 km/h, east


def record(**fields: Any) -> dict[str, Any]:
    return {"issi": "1001", "received_at": "2026-11-21T22:03:00Z", "payload": GOOD, **fields}


def messages(*records: Any) -> list[bytes | None]:
    return [orjson.dumps(r) for r in records]


def test_parse_lip_messages_good_record_gives_the_decoded_ping() -> None:
    parsed = parse_lip_messages(messages(record()))
    assert parsed.rejects == []
    b = parsed.batch
    assert (b.device_id[0], b.ts[0], b.lat[0], b.lon[0], b.accuracy_m[0]) == (
        "1001",
        T0,
        Y * LAT_STEP,
        X * LON_STEP,
        20,
    )
    assert b.extras[0] == {"speed_mps": 10 / 3.6, "heading_deg": 90.0}


@pytest.mark.parametrize(
    ("fields", "device", "ts"),
    [
        ({"issi": 1001}, "1001", T0),  # an ISSI as a JSON integer: its decimal text
        ({"issi": 16777215}, "16777215", T0),  # the largest 24-bit ISSI
        ({"received_at": T0}, "1001", T0),  # epoch seconds
        ({"received_at": "2026-11-21T23:03:00+01:00"}, "1001", T0),  # any offset
        ({"payload": GOOD[2:]}, "1001", T0),  # without the protocol identifier 0x0A
        ({"payload": GOOD.lower()}, "1001", T0),  # lower-case hex
        ({"payload": short_report(X, Y, elapsed=1)}, "1001", T0 - 5),  # time elapsed "< 5 min": at least 5 s old
        (  # a long report's time of position wins over the received time
            {"payload": long_report(X, Y, time=time_of_position(21, 22, 2, 30))},
            "1001",
            T0 - 30,
        ),
    ],
)
def test_parse_lip_messages_accepted_forms(fields: dict[str, Any], device: str, ts: float) -> None:
    parsed = parse_lip_messages(messages(record(**fields)))
    assert parsed.rejects == []
    assert (parsed.batch.device_id[0], parsed.batch.ts[0]) == (device, ts)


@pytest.mark.parametrize(
    "payload",
    [
        short_report(X, Y, error=7),  # position error "not known"
        short_report(X, Y, error=6),  # "more than 200 km"
        long_report(X, Y, shape=1),  # a point: no uncertainty at all
        long_report(X, Y, shape=2, after_point=[(63, 6)]),  # circle of "best effort" uncertainty
    ],
)
def test_parse_lip_messages_report_without_error_bound_gets_unbounded_accuracy(payload: str) -> None:
    parsed = parse_lip_messages(messages(record(payload=payload)))
    assert parsed.batch.accuracy_m.tolist() == [UNBOUNDED_ACCURACY_M]  # beyond any max_accuracy_m: uncertain


@pytest.mark.parametrize(
    ("value", "field", "reason"),
    [
        (b"", None, "empty message"),
        (b"{", None, "malformed JSON: EOF while parsing an object at line 1 column 1"),
        (b"[1]", None, "a LIP record must be a JSON object, not an array"),
        (orjson.dumps(record(issi=None)), "issi", "is required"),
        (orjson.dumps(record(issi="")), "issi", "is required"),
        (orjson.dumps(record(issi="R\x00")), "issi", "holds control character U+0000: 'R\\x00'"),
        (orjson.dumps(record(issi=2**24)), "issi", "an ISSI is a 24-bit number (0-16777215), got 16777216"),
        (orjson.dumps(record(issi=1.5)), "issi", "must be a string, got 1.5"),
        (orjson.dumps(record(received_at=None)), "received_at", "is required"),
        (
            orjson.dumps(record(received_at="2026-11-21T22:03:00")),
            "received_at",
            "has no UTC offset: '2026-11-21T22:03:00'",
        ),
        (
            orjson.dumps(record(received_at=1795298580000)),  # milliseconds
            "received_at",
            "must be in the years 1970-9998 UTC (epoch in seconds, not milliseconds), got 1795298580000",
        ),
        (
            b'{"issi": "1001", "received_at": 1' + b"0" * 400 + b', "payload": "0A"}',
            "received_at",
            "must be finite, got a number too large",
        ),
        (
            orjson.dumps(record(received_at=True)),
            "received_at",
            "must be ISO 8601 with a UTC offset or epoch seconds, got true",
        ),
        (orjson.dumps(record(payload=None)), "payload", "is required"),
        (orjson.dumps(record(payload=12)), "payload", "must be a hex string, got 12"),
        (orjson.dumps(record(payload="0A0G")), "payload", "is not hex: 'G' at character 4"),
        (
            orjson.dumps(record(payload="0A123")),
            "payload",
            "has an odd number of hex digits (5): LIP PDUs are whole octets",
        ),
        (
            orjson.dumps(record(payload=GOOD[:-4])),
            "payload",
            "is too short: a short location report needs 76 bits, got 64",
        ),
        (
            orjson.dumps(record(payload="0AC0" + "00" * 9)),
            "payload",
            "is not a location report: reserved LIP PDU type 3",
        ),
        (  # two bad fields: the first is the field, the others follow
            orjson.dumps({"issi": "", "received_at": "x"}),
            "issi",
            "is required; received_at: must be ISO 8601 with a UTC offset or epoch seconds, got 'x'; "
            "payload: is required",
        ),
    ],
)
def test_parse_lip_messages_bad_record_is_one_reject_at_its_index(value: bytes, field: str | None, reason: str) -> None:
    parsed = parse_lip_messages([orjson.dumps(record()), value, orjson.dumps(record(issi="1002"))])
    assert [(r.index, r.field, r.reason) for r in parsed.rejects] == [(1, field, reason)]
    assert parsed.batch.device_id.tolist() == ["1001", "1002"]  # the good records around it are kept


def test_parse_lip_messages_decoded_value_breaking_a_ping_rule_is_refused() -> None:
    # Received in the first second of 1970 and 5 s old: the decoded ts is before the epoch.
    parsed = parse_lip_messages(messages(record(received_at=1.0, payload=short_report(X, Y, elapsed=1))))
    [reject] = parsed.rejects
    assert (reject.field, reject.reason) == (
        "payload",
        "decodes to ts that must be in the years 1970-9998 UTC (epoch in seconds, not milliseconds), got -4",
    )


@pytest.mark.parametrize(
    ("content_type", "body", "indexes"),
    [
        ("application/json", orjson.dumps([record(), record(issi=""), record()]), [1]),
        ("application/json", orjson.dumps(record(issi="")), [0]),  # one object
        ("application/x-ndjson", b"\n".join(messages(record(), record(issi=""))), [1]),  # type: ignore[arg-type]
        ("application/x-ndjson", orjson.dumps(record()) + b"\n\n{\n", [2]),  # index = line - 1, blanks counted
    ],
)
def test_parse_lip_body_reports_items_by_index(content_type: str, body: bytes, indexes: list[int]) -> None:
    assert [r.index for r in parse_lip_body(body, content_type).rejects] == indexes


@pytest.mark.parametrize(
    ("content_type", "body", "error", "words"),
    [
        ("text/plain", orjson.dumps(record()), UnsupportedContentType, "unsupported content type 'text/plain'"),
        ("application/json", b" ", BodyError, "empty body"),
        ("application/json", b"[1,", BodyError, "malformed JSON"),
        (
            "application/json",
            b"5",
            BodyError,
            "body must be a JSON array of LIP records or one record object, not a number",
        ),
    ],
)
def test_parse_lip_body_unusable_body_raises(
    content_type: str, body: bytes, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        parse_lip_body(body, content_type)


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-21T22:03:00Z",
        "2026-11-21t22:03:00z",  # RFC 3339 allows lower case
        "2026-11-21 22:03:00+0100",
        "2026-11-21T22:03:00.123456789+01:00",  # truncated to the microsecond
        "2026-11-21T22:03Z",
        "9000-01-01T00:00:00Z",  # past arrow's nanosecond range: read by the rule
    ],
)
def test_parse_lip_messages_received_at_in_bulk_equals_the_timestamp_rule(stamp: str) -> None:
    batch = parse_lip_messages(messages(record(received_at=stamp), record(received_at=stamp))).batch
    assert batch.ts.tolist() == [TIMESTAMP.parse(stamp)] * 2
