"""Validation of pings from Kafka messages and HTTP bodies: the "Inputs" rules of SEMANTICS.md."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from geofence.pings import PingBatch
from ingest.csv_pings import read_ping_csv
from ingest.ping_message import (
    BodyError,
    ParsedPings,
    Ping,
    Reject,
    UnsupportedContentType,
    _PingRow,
    parse_http_body,
    parse_messages,
)

YEARS = "must be in the years 1970-9998 UTC (epoch in seconds, not milliseconds)"
T0 = datetime(2026, 11, 21, 22, 3, tzinfo=UTC).timestamp()
BASE = {"device_id": '"R00012"', "ts": '"2026-11-21T22:03:00Z"', "lat": "51.5", "lon": "-0.12"}


def msg(**raw: str | None) -> bytes:
    """A ping message; each value is raw JSON text (so NaN and bad syntax can be written), None drops it."""
    fields = {**BASE, **raw}
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items() if v is not None) + "}").encode()


def one(value: bytes) -> ParsedPings:
    return parse_messages([value])


def assert_same_batch(a: PingBatch, b: PingBatch) -> None:
    assert a.device_id.tolist() == b.device_id.tolist()
    for name in ("ts", "lat", "lon", "accuracy_m"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), strict=True)
    assert a.extras.tolist() == b.extras.tolist()


# -- accepted ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        {"lat": "-90"},  # range limits are inclusive
        {"lat": "90"},
        {"lon": "-180"},
        {"lon": "180"},
        {"lat": "51"},  # a JSON integer is a number too
        {"accuracy_m": "0"},  # zero accuracy radius
        {"device_id": '"' + "d" * 64 + '"'},  # longest device id
        {"device_id": '"' + "é" * 64 + '"'},  # length counts characters, not UTF-8 bytes
        {"heading_deg": "0"},
        {"heading_deg": "359.999"},
        {"speed_mps": "-1"},  # speed only has to be finite
        {"callsign": '"' + "c" * 64 + '"'},
        {"ts": '"1970-01-01T00:00:00Z"'},  # first instant accepted (ingest.rules)
        {"ts": '"9998-12-31T23:59:59.999999Z"'},  # last instant accepted
        {"ts": "0"},  # the first, as epoch seconds
        {"ts": '"2026-11-21 22:03:00+0100"'},  # space separator, offset without colon
        {"unknown": '{"nested": [1, 2]}'},  # unknown fields are ignored
    ],
)
def test_parse_messages_value_within_rules_accepted(raw: dict[str, str]) -> None:
    parsed = one(msg(**raw))
    assert parsed.rejects == [] and len(parsed.batch) == 1


def test_parse_messages_clean_batch_columns_exact_and_in_order() -> None:
    parsed = parse_messages(
        [
            msg(accuracy_m="8.5", callsign='"CX12"'),
            msg(device_id='"R2"', ts="1795298581.25", lat="-33.9", lon="151.2"),
            msg(device_id='"R3"', ts='"2026-11-21T22:03:02.5+00:00"', lat="90", lon="-180", accuracy_m="null"),
        ]
    )
    b = parsed.batch
    assert parsed.rejects == []
    assert b.device_id.tolist() == ["R00012", "R2", "R3"]
    assert b.ts.tolist() == [T0, T0 + 1.25, T0 + 2.5]
    assert b.lat.tolist() == [51.5, -33.9, 90.0] and b.lon.tolist() == [-0.12, 151.2, -180.0]
    assert b.accuracy_m[0] == 8.5 and math.isnan(b.accuracy_m[1]) and math.isnan(b.accuracy_m[2])
    assert b.extras.tolist() == [{"callsign": "CX12"}, None, None]


def test_parse_messages_offset_timestamp_converted_to_utc() -> None:
    parsed = parse_messages(
        [msg(ts='"2026-11-21T23:33:00+01:30"'), msg(ts='"2026-11-21T17:03:00-05:00"'), msg(ts='"2026-11-21t22:03:00z"')]
    )
    assert parsed.batch.ts.tolist() == [T0, T0, T0]


def test_parse_messages_epoch_seconds_accepted_as_given() -> None:
    parsed = parse_messages([msg(ts="1795298580"), msg(ts="1795298580.123456"), msg(ts="0")])
    assert parsed.batch.ts.tolist() == [T0, 1795298580.123456, 0.0]


def test_parse_messages_fractional_timestamps_equal_datetime_and_csv_reader(tmp_path: Path) -> None:
    stamps = ["2026-11-21T22:03:00.123456+05:30", "2026-11-21T22:03:00.1Z", "1999-01-01T00:00:00.999999-11:00"]
    parsed = parse_messages([msg(ts=f'"{s}"') for s in stamps])
    assert parsed.batch.ts.tolist() == [datetime.fromisoformat(s).timestamp() for s in stamps]
    path = tmp_path / "pings.csv"
    path.write_text("device_id,timestamp,lat,lon\n" + "".join(f"R1,{s},51.5,-0.12\n" for s in stamps))
    (chunk,) = read_ping_csv(path)
    assert parsed.batch.ts.tolist() == chunk.batch.ts.tolist()


def test_parse_messages_sub_microsecond_digits_truncated_like_csv() -> None:
    parsed = one(msg(ts='"2026-11-21T22:03:00.1234569Z"'))
    assert parsed.batch.ts.tolist() == [T0 + 0.123456]


def test_parse_messages_accuracy_missing_or_null_is_nan() -> None:
    parsed = parse_messages([msg(), msg(accuracy_m="null"), msg(accuracy_m="3")])
    acc = parsed.batch.accuracy_m
    assert math.isnan(acc[0]) and math.isnan(acc[1]) and acc[2] == 3.0


def test_parse_messages_extras_hold_present_carried_fields_only() -> None:
    parsed = parse_messages(
        [
            msg(),  # none carried
            msg(callsign='"CX1"', fence_id='"camden-01"', speed_mps="3", unknown='"x"'),
            msg(officer_id="null", status='"on patrol"'),  # null means absent
            msg(officer_id="null"),  # only nulls: no extras
            msg(source='"tetra"', heading_deg="90.5", accuracy_m="4"),
        ]
    )
    assert parsed.batch.extras.tolist() == [
        None,
        {"callsign": "CX1", "fence_id": "camden-01", "speed_mps": 3.0},
        {"status": "on patrol"},
        None,
        {"source": "tetra", "heading_deg": 90.5},
    ]


# -- rejected ------------------------------------------------------------------------------------


#: One case per rule: (raw JSON overrides of a good ping, the field named, how the reason starts).
REFUSED = [
    ({"lat": "90.000001"}, "lat", "must be between -90 and 90, got 90.000001"),
    ({"lat": "-90.5"}, "lat", "must be between -90 and 90, got -90.5"),
    ({"lon": "180.5"}, "lon", "must be between -180 and 180, got 180.5"),
    ({"lon": "-181"}, "lon", "must be between -180 and 180, got -181"),
    ({"lat": "NaN"}, "lat", "must be finite, got nan"),  # non-JSON literal, still refused
    ({"lon": "-Infinity"}, "lon", "must be finite, got -inf"),
    ({"lat": "1e400"}, "lat", "must be finite, got inf"),  # overflows to inf
    ({"lat": '"51.5"'}, "lat", "must be a JSON number, not a string: '51.5'"),  # numbers must be JSON numbers
    ({"lat": "true"}, "lat", "must be a number, got true"),
    ({"lat": None}, "lat", "is required"),
    ({"lon": "null"}, "lon", "is required"),
    ({"accuracy_m": "-0.1"}, "accuracy_m", "must be >= 0, got -0.1"),
    ({"accuracy_m": "Infinity"}, "accuracy_m", "must be finite, got inf"),
    ({"device_id": None}, "device_id", "is required"),
    ({"device_id": '""'}, "device_id", "is required"),
    ({"device_id": '"' + "d" * 65 + '"'}, "device_id", "must be at most 64 characters, got 65"),
    ({"device_id": "12345"}, "device_id", "must be a string, got 12345"),
    ({"device_id": '"R\\u00007"'}, "device_id", "holds control character U+0000: 'R\\x007'"),  # PostgreSQL
    ({"callsign": '"C\\u0085X"'}, "callsign", "holds control character U+0085: 'C\\x85X'"),  # C1 too
    ({"ts": None}, "ts", "is required"),
    ({"ts": '"2026-11-21T22:03:00"'}, "ts", "has no UTC offset: '2026-11-21T22:03:00'"),
    ({"ts": '"2026-11-21T22:03:00.5"'}, "ts", "has no UTC offset: '2026-11-21T22:03:00.5'"),
    ({"ts": '"2026-11-21T22:03:00+01"'}, "ts", "must be ISO 8601 with a UTC offset or epoch seconds, got"),
    ({"ts": "true"}, "ts", "must be ISO 8601 with a UTC offset or epoch seconds, got true"),
    ({"ts": "null"}, "ts", "is required"),
    ({"ts": "NaN"}, "ts", "must be finite, got nan"),
    ({"ts": "1795298580000"}, "ts", f"{YEARS}, got 1795298580000"),  # milliseconds
    ({"ts": "-1"}, "ts", f"{YEARS}, got -1"),
    ({"ts": '"0001-01-01T00:00:00Z"'}, "ts", f"{YEARS}, got '0001-01-01T00:00:00Z'"),  # year 1
    ({"ts": '"9999-01-01T00:00:00Z"'}, "ts", f"{YEARS}, got '9999-01-01T00:00:00Z'"),  # year 9999
    ({"ts": '"1795298580"'}, "ts", "epoch seconds must be a JSON number, not a string: '1795298580'"),
    ({"ts": '"2026-02-30T00:00:00Z"'}, "ts", "is not a valid date and time: '2026-02-30T00:00:00Z'"),
    ({"heading_deg": "360"}, "heading_deg", "must be >= 0 and < 360, got 360"),
    ({"heading_deg": "-1"}, "heading_deg", "must be >= 0 and < 360, got -1"),
    ({"speed_mps": "NaN"}, "speed_mps", "must be finite, got nan"),
    ({"callsign": '"' + "c" * 65 + '"'}, "callsign", "must be at most 64 characters, got 65"),
    ({"officer_id": "7"}, "officer_id", "must be a string, got 7"),
    ({"fence_id": '"' + "f" * 129 + '"'}, "fence_id", "must be at most 128 characters, got 129"),
]


@pytest.mark.parametrize(("raw", "field", "reason"), REFUSED)
def test_parse_messages_value_breaking_rule_rejected_naming_field(
    raw: dict[str, str | None], field: str, reason: str
) -> None:
    parsed = one(msg(**raw))
    assert len(parsed.batch) == 0
    (reject,) = parsed.rejects
    assert reject.index == 0 and reject.field == field
    assert reject.reason.startswith(reason), reject.reason
    assert str(reject).startswith(f"{field}: {reason}")


@pytest.mark.parametrize(("raw", "field", "reason"), REFUSED)
def test_parse_http_body_array_item_breaking_rule_same_reject_as_message(
    raw: dict[str, str | None], field: str, reason: str
) -> None:
    # Array items are explained from parsed values (Python mode), messages from their bytes.
    value = msg(**raw)
    parsed = parse_http_body(b"[" + GOOD[0] + b"," + value + b"]", "application/json")
    expected = [(1, r.field, r.reason) for r in one(value).rejects]
    assert [(r.index, r.field, r.reason) for r in parsed.rejects] == expected
    assert len(parsed.batch) == 1


def test_parse_messages_several_bad_fields_named_in_one_reject() -> None:
    (reject,) = one(msg(lat="91", lon="181", device_id=None)).rejects
    assert reject.field == "device_id"
    assert str(reject) == (
        "device_id: is required; lat: must be between -90 and 90, got 91; lon: must be between -180 and 180, got 181"
    )


def test_parse_messages_mixed_batch_keeps_good_in_order_with_indices() -> None:
    values = [
        msg(device_id='"A"'),
        msg(device_id='"B"', lat="95"),
        msg(device_id='"C"'),
        msg(device_id='"D"', ts='"2026-11-21T22:03:00"'),
        msg(device_id='"E"'),
    ]
    parsed = parse_messages(values)
    assert parsed.batch.device_id.tolist() == ["A", "C", "E"]
    assert [(r.index, r.field) for r in parsed.rejects] == [(1, "lat"), (3, "ts")]


def test_parse_messages_malformed_message_among_good_rejected_alone() -> None:
    values = [msg(device_id='"A"'), b'{"device_id": "B", "lat": ', msg(device_id='"C"'), b"not json"]
    parsed = parse_messages(values)
    assert parsed.batch.device_id.tolist() == ["A", "C"]
    assert [r.index for r in parsed.rejects] == [1, 3]
    assert all(r.field is None and r.reason.startswith("malformed JSON: ") for r in parsed.rejects)
    assert "line 1 column" in parsed.rejects[0].reason


def test_parse_messages_two_objects_in_one_message_rejected_not_misaligned() -> None:
    values = [msg(device_id='"A"'), msg(device_id='"B"') + b"," + msg(device_id='"X"'), msg(device_id='"C"')]
    parsed = parse_messages(values)
    assert parsed.batch.device_id.tolist() == ["A", "C"]
    assert [(r.index, r.reason.split(":")[0]) for r in parsed.rejects] == [(1, "malformed JSON")]


def test_parse_messages_empty_and_none_values_rejected_as_empty() -> None:
    parsed = parse_messages([None, msg(device_id='"A"'), b"", msg(device_id='"B"', lat="91")])
    assert parsed.batch.device_id.tolist() == ["A"]
    assert [(r.index, r.field, r.reason) for r in parsed.rejects] == [
        (0, None, "empty message"),
        (2, None, "empty message"),
        (3, "lat", "must be between -90 and 90, got 91"),
    ]


@pytest.mark.parametrize(
    ("value", "kind"),
    [(b"[1, 2]", "an array"), (b'"ping"', "a string"), (b"42", "a number"), (b"null", "null")],
)
def test_parse_messages_non_object_message_rejected(value: bytes, kind: str) -> None:
    (reject,) = one(value).rejects
    assert (reject.field, reject.reason) == (None, f"a ping must be a JSON object, not {kind}")


def test_parse_messages_no_values_empty_batch() -> None:
    parsed = parse_messages([])
    assert len(parsed.batch) == 0 and parsed.rejects == []


# -- one set of rules, every path ----------------------------------------------------------------

GOOD = [
    msg(device_id='"A"', accuracy_m="8.5", callsign='"CX1"'),
    msg(device_id='"B"', ts="1795298581.5", fence_id='"hs-1"'),
    msg(device_id='"C"', ts='"2026-11-21T23:03:00.25+01:00"', officer_id="null", speed_mps="2"),
    msg(device_id='"D"', lat="-90", lon="180", heading_deg="0"),
]


def test_parse_messages_fast_and_slow_paths_give_identical_batches() -> None:
    fast = parse_messages(GOOD)
    with_bad_ping = parse_messages([GOOD[0], msg(lat="91"), *GOOD[1:]])  # tolerant array, one explained
    with_malformed = parse_messages([*GOOD[:2], b"{", *GOOD[2:]])  # per-message parse, then the array again
    assert fast.rejects == [] and len(fast.batch) == len(GOOD)
    assert_same_batch(fast.batch, with_bad_ping.batch)
    assert_same_batch(fast.batch, with_malformed.batch)
    for i, value in enumerate(GOOD):  # and one by one
        assert_same_batch(fast.batch.take(np.array([i])), one(value).batch)


def test_parse_http_body_array_ndjson_and_messages_give_identical_batches() -> None:
    expected = parse_messages(GOOD).batch
    assert_same_batch(parse_http_body(b"[" + b",".join(GOOD) + b"]", "application/json").batch, expected)
    assert_same_batch(parse_http_body(b"\n".join(GOOD), "application/x-ndjson").batch, expected)


def test_ping_model_errors_match_rejects() -> None:
    # The Ping model (HTTP/OpenAPI) and the fast path phrase every refusal the same way.
    for raw in ({"lat": "91"}, {"ts": '"2026-11-21T22:03:00"'}, {"ts": "true"}, {"device_id": '"R\\u00007"'}):
        (reject,) = one(msg(**raw)).rejects
        with pytest.raises(ValidationError) as info:
            Ping.model_validate_json(msg(**raw))
        (error,) = info.value.errors()
        assert f"{error['loc'][0]}: {error['msg']}" == str(reject)


def test_ping_model_fields_match_fast_path_fields() -> None:
    fast = {name: f["required"] for name, f in TypeAdapter(_PingRow).core_schema["fields"].items()}
    model = {name: f.is_required() for name, f in Ping.model_fields.items()}
    assert fast == model
    assert {name for name, required in model.items() if required} == {"device_id", "ts", "lat", "lon"}


def test_ping_model_valid_json_ts_in_epoch_seconds_unknown_ignored() -> None:
    ping = Ping.model_validate_json(msg(ts='"2026-11-21T23:03:00+01:00"', callsign='"CX"', extra='"x"'))
    assert ping.ts == T0 and ping.callsign == "CX" and ping.accuracy_m is None
    assert "extra" not in ping.model_dump()


def test_ping_model_json_schema_offers_string_or_number_ts() -> None:
    schema: dict[str, Any] = Ping.model_json_schema()
    assert [s["type"] for s in schema["properties"]["ts"]["anyOf"]] == ["string", "number"]
    assert schema["required"] == ["device_id", "ts", "lat", "lon"]


def test_reject_str_without_field_is_reason_alone() -> None:
    assert str(Reject(3, None, "empty message")) == "empty message"
    assert str(Reject(3, "lat", "too big")) == "lat: too big"


# -- HTTP bodies ---------------------------------------------------------------------------------


def test_parse_http_body_array_bad_items_rejected_with_array_index() -> None:
    body = b"[" + b",".join([msg(device_id='"A"'), b'{"device_id": "B"}', b"7", msg(device_id='"C"')]) + b"]"
    parsed = parse_http_body(body, "application/json")
    assert parsed.batch.device_id.tolist() == ["A", "C"]
    assert [(r.index, r.field) for r in parsed.rejects] == [(1, "ts"), (2, None)]
    assert str(parsed.rejects[0]) == "ts: is required; lat: is required; lon: is required"


def test_parse_http_body_single_object_one_ping() -> None:
    parsed = parse_http_body(b"  " + msg(callsign='"CX"') + b"\n", "application/json; charset=utf-8")
    assert parsed.batch.device_id.tolist() == ["R00012"] and parsed.batch.extras.tolist() == [{"callsign": "CX"}]


def test_parse_http_body_single_bad_object_rejected_at_index_zero() -> None:
    parsed = parse_http_body(msg(lat="91"), "application/json")
    assert len(parsed.batch) == 0 and [(r.index, r.field) for r in parsed.rejects] == [(0, "lat")]


def test_parse_http_body_empty_array_nothing_accepted() -> None:
    parsed = parse_http_body(b"[]", "application/json")
    assert len(parsed.batch) == 0 and parsed.rejects == []


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl", "Application/X-NDJSON; a=b"])
def test_parse_http_body_ndjson_blank_lines_skipped_index_is_line_minus_one(content_type: str) -> None:
    body = b"\n".join([b"", msg(device_id='"A"'), b"  ", msg(device_id='"B"', lat="91") + b"\r", b"{oops", b""])
    parsed = parse_http_body(body, content_type)
    assert parsed.batch.device_id.tolist() == ["A"]
    assert [(r.index, r.field) for r in parsed.rejects] == [(3, "lat"), (4, None)]
    assert parsed.rejects[1].reason.startswith("malformed JSON: ")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"device_id": "A"},', "malformed JSON: EOF while parsing a value at line 1 column 20"),
        (b'[\n  {"device_id": "A"}\n  {"device_id": "B"}\n]', "malformed JSON: expected `,` or `]` at line 3 column 3"),
        (b'{"device_id": "A"} {}', "malformed JSON: trailing characters at line 1 column 20"),
        (b"nope", "malformed JSON: expected ident at line 1 column 2"),
        (b'"a ping"', "body must be a JSON array of pings or one ping object, not a string"),
        (b"12", "body must be a JSON array of pings or one ping object, not a number"),
        (b" \n ", "empty body"),
    ],
)
def test_parse_http_body_unusable_body_raises_body_error(body: bytes, message: str) -> None:
    with pytest.raises(BodyError) as info:
        parse_http_body(body, "application/json")
    assert str(info.value).startswith(message), str(info.value)


def test_parse_http_body_unknown_content_type_raises_unsupported() -> None:
    with pytest.raises(UnsupportedContentType, match="text/csv"):
        parse_http_body(b"device_id,ts\n", "text/csv")


@pytest.mark.parametrize("content_type", ["", "application/json", "application/geo+json", "text/json"])
def test_parse_http_body_json_content_types_accepted(content_type: str) -> None:
    assert len(parse_http_body(b"[" + GOOD[0] + b"]", content_type).batch) == 1
