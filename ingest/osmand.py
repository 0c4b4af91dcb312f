"""The OsmAnd protocol: one position from a handset app (Traccar Client, OsmAnd), as one ping.

The shapes accepted, from the apps' and Traccar's own code (Apache-2.0 sources read, not copied):

- **Query parameters**, by GET or POST: ``id`` (or ``deviceid``), ``lat`` and ``lon`` (or
  ``location=lat,lon``), ``timestamp``, ``speed`` in knots, ``bearing`` (or ``heading``),
  ``altitude``, ``accuracy`` in metres, ``hdop``, ``batt``. Traccar's decoder:
  traccar/traccar ``src/main/java/org/traccar/protocol/OsmAndProtocolDecoder.java``
  (``decodeQuery``). The Android Traccar Client up to version 9 builds this URL and POSTs it
  with an empty body (traccar/traccar-client-android
  ``app/src/main/java/org/traccar/client/ProtocolFormatter.kt``); OsmAnd's online tracking
  sends a GET to a URL template of the same parameters.
- **The same parameters as a form body** (``application/x-www-form-urlencoded``): Traccar Client
  10 (traccar/traccar-client ``pubspec.yaml``: ``traccar_client_sdk``, whose
  ``core/src/commonMain/kotlin/org/traccar/client/HttpUploader.kt`` calls ``submitForm`` since
  SDK 0.0.12). As in Traccar, the body is read when the URL carries no parameters.
- **JSON** (``Content-Type: application/json``): Traccar Client 9 (flutter_background_geolocation;
  the location template in traccar/traccar-client ``lib/preferences.dart`` before commit
  65d5242): ``{"device_id", "location": {"timestamp", "coords": {"latitude", "longitude",
  "accuracy", "speed", "heading", "altitude"}, "battery": {"level", ...}, ...}}`` with speed in
  m/s and -1 for an unknown speed or heading (Traccar's ``decodeJson``).

Values are checked by ``ingest.rules`` and refused as ``<field>: <reason>`` naming the parameter
(or JSON path) as sent. Conversions and choices:

- ``timestamp``: ISO 8601 with a UTC offset, epoch seconds, or epoch milliseconds: a whole
  number from 2^31 - 1 up is milliseconds, Traccar's rule (OsmAnd sends milliseconds, the
  Traccar apps seconds). Absent: the time received, as Traccar does. Traccar also reads a bare
  ``yyyy-MM-dd HH:mm:ss`` in its server's zone; that is refused (no UTC offset), not guessed.
- ``speed`` knots x ``KNOT_MPS`` = ``speed_mps``; ``bearing`` = ``heading_deg``.
- ``accuracy`` = ``accuracy_m``; 0 means unknown (the old Android client sends 0 for every GPS
  fix: ``Position.kt``), and then ``hdop`` x ``UERE_M`` stands in, as for NMEA (ingest/fixes.py).
- ``altitude``, ``batt`` (and JSON's ``battery.level``) are checked, not kept: a ping has no
  field for them. Every other parameter (``charge``, ``alarm``, ``mock``...) is ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl

from pydantic_core import from_json

from geofence.pings import PingBatch
from ingest.fixes import KNOT_MPS, UERE_M
from ingest.rules import (
    ACCURACY,
    DEVICE_ID,
    DOP,
    FINITE,
    HEADING,
    LAT,
    LON,
    REQUIRED,
    SPEED,
    TIMESTAMP,
    InputError,
    NumberRule,
    json_kind,
    not_utf8,
    show,
)

__all__ = ["EPOCH_MS_FROM", "OsmandFix", "parse_json", "parse_params", "parse_request"]

#: A whole-number timestamp from here up is epoch milliseconds (Traccar: Integer.MAX_VALUE).
EPOCH_MS_FROM = 2**31 - 1
_WHOLE = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class OsmandFix:
    """One decoded position (None: the app did not say)."""

    device_id: str
    ts: float
    lat: float
    lon: float
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None

    def to_batch(self) -> PingBatch:
        """The fix as a one-ping batch, speed and heading carried as the other readers carry them."""
        motion = {"speed_mps": self.speed_mps, "heading_deg": self.heading_deg}
        extras = {k: v for k, v in motion.items() if v is not None} or None
        accuracy = math.nan if self.accuracy_m is None else self.accuracy_m
        return PingBatch.from_columns([self.device_id], [self.ts], [self.lat], [self.lon], [accuracy], [extras])


def parse_request(query: bytes, body: bytes, content_type: str, received_at: float) -> OsmandFix:
    """The fix of one request: JSON by its content type, else the URL's parameters, else the body's.

    received_at (epoch seconds) dates a fix sent without a timestamp. InputError names the field.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return parse_json(body, received_at)
    params = _pairs(query, "query string")
    if not params and body.strip():
        params = _pairs(body, "body")
    return parse_params(params, received_at)


def parse_params(params: Mapping[str, str], received_at: float) -> OsmandFix:
    """A fix from query or form parameters (values as text; a blank value counts as absent)."""
    id_field = "deviceid" if "deviceid" in params and "id" not in params else "id"
    device_id = cast(str, DEVICE_ID.check(id_field, params.get(id_field)))  # required: never None
    if "location" in params and "lat" not in params:
        lat, lon = _location(params["location"])
    else:
        lat = _coordinate(LAT, "lat", params.get("lat"), text=True)
        lon = _coordinate(LON, "lon", params.get("lon"), text=True)
    speed = SPEED.check("speed", params.get("speed"), text=True)
    heading_field = "bearing" if "bearing" in params else "heading"
    heading = HEADING.check(heading_field, params.get(heading_field), text=True)
    FINITE.check("altitude", params.get("altitude"), text=True)
    FINITE.check("batt", params.get("batt"), text=True)
    return OsmandFix(
        device_id=device_id,
        ts=_timestamp(params.get("timestamp"), received_at),
        lat=lat,
        lon=lon,
        accuracy_m=_accuracy(
            ACCURACY.check("accuracy", params.get("accuracy"), text=True),
            DOP.check("hdop", params.get("hdop"), text=True),
        ),
        speed_mps=None if speed is None else speed * KNOT_MPS,
        heading_deg=heading,
    )


def parse_json(body: bytes, received_at: float) -> OsmandFix:
    """A fix from Traccar Client 9's JSON body (module docstring); fields named by their JSON path."""
    try:
        root = from_json(body)
    except ValueError as e:
        raise InputError("body", f"malformed JSON: {e}") from None
    _object("body", root)
    device_id = cast(str, DEVICE_ID.check("device_id", root.get("device_id")))  # required: never None
    location = _object("location", root.get("location"))
    coords = _object("location.coords", location.get("coords"))
    stamp = location.get("timestamp")
    speed = SPEED.check("location.coords.speed", coords.get("speed"))
    heading = coords.get("heading")
    if isinstance(heading, int | float) and not isinstance(heading, bool) and heading < 0:
        heading = None  # -1: unknown
    FINITE.check("location.coords.altitude", coords.get("altitude"))
    battery = location.get("battery")
    if battery is not None:
        FINITE.check("location.battery.level", _object("location.battery", battery).get("level"))
    return OsmandFix(
        device_id=device_id,
        ts=received_at if stamp is None else TIMESTAMP.check("location.timestamp", stamp),
        lat=_coordinate(LAT, "location.coords.latitude", coords.get("latitude")),
        lon=_coordinate(LON, "location.coords.longitude", coords.get("longitude")),
        accuracy_m=_accuracy(ACCURACY.check("location.coords.accuracy", coords.get("accuracy")), None),
        speed_mps=None if speed is None or speed < 0 else speed,  # m/s already; -1: unknown
        heading_deg=HEADING.check("location.coords.heading", heading),
    )


def _pairs(raw: bytes, where: str) -> dict[str, str]:
    """Name -> value of a URL-encoded string (the last of a repeated name, as Traccar reads it)."""
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict"))
    except UnicodeDecodeError:
        raise InputError(where, not_utf8(raw)) from None


def _location(value: str) -> tuple[float, float]:
    """``location=lat,lon``, Traccar's alternative to lat and lon."""
    parts = value.split(",")
    if len(parts) != 2:
        raise InputError("location", f"must be 'lat,lon', got {show(value)}")
    return _coordinate(LAT, "location", parts[0], text=True), _coordinate(LON, "location", parts[1], text=True)


def _coordinate(rule: NumberRule, field: str, value: Any, *, text: bool = False) -> float:
    """A required coordinate (the rules refuse an absent one as "is required")."""
    out = rule.parse(value, text=text)
    if not isinstance(out, float):
        raise InputError(field, out or REQUIRED)
    return out


def _timestamp(value: str | None, received_at: float) -> float:
    if value is None or not value.strip():
        return received_at
    text = value.strip()
    if _WHOLE.fullmatch(text) and int(text) >= EPOCH_MS_FROM:
        return TIMESTAMP.check("timestamp", int(text) / 1000)
    return TIMESTAMP.check("timestamp", text, text=True)


def _accuracy(accuracy: float | None, hdop: float | None) -> float | None:
    """Metres: the app's accuracy, else HDOP x UERE_M; 0 from either means unknown."""
    if accuracy:
        return accuracy
    return hdop * UERE_M if hdop else None


def _object(field: str, value: Any) -> dict[str, Any]:
    if value is None:
        raise InputError(field, REQUIRED)
    if not isinstance(value, dict):
        raise InputError(field, f"must be a JSON object, not {json_kind(value)}")
    return value
