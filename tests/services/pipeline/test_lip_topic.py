"""The LIP topic (`--topic-lip`): raw TETRA records through the live matcher, bad ones to the DLQ.

`hotspots run` is a real process on the session's broker (support/pipeline.py); records are
produced keyed by ISSI, as a location server must key them (one radio, one partition).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest
from support.helpers import square_geometry
from support.lip_frames import lat_raw, lon_raw, short_report
from support.pipeline import Names, Service, TopicReader, produce

from geofence.events import format_ts
from services.pipeline.broker import EmbeddedBroker, ensure_topics

pytestmark = pytest.mark.integration  # a real broker and a service process

PARTITIONS = 3
#: An hour ago, on the second: recent enough for the live matcher's admission window.
T0 = float(int(time.time()) - 3600)
FENCE_A = {"type": "Feature", "id": "A", "properties": {"name": "A"}, "geometry": square_geometry(-0.1, 51.5, 0.001)}
INSIDE, OUTSIDE = (51.5005, -0.0995), (51.5005, -0.1015)


def lip(issi: str, t: float, where: tuple[float, float]) -> tuple[bytes, bytes]:
    """A LIP record t seconds after T0 (position error < 2 m), keyed by its ISSI."""
    payload = short_report(lon_raw(where[1]), lat_raw(where[0]))
    return issi.encode(), orjson.dumps({"issi": issi, "received_at": format_ts(T0 + t), "payload": payload})


async def test_lip_topic_records_give_events_and_bad_records_land_in_the_dlq_with_reason(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    names = Names.fresh("lip")
    lip_topic = f"{names.pings}-lip"
    await ensure_topics(broker.bootstrap, {**names.topics(PARTITIONS), lip_topic: PARTITIONS})
    fences = tmp_path / "fences.geojson"
    fences.write_text(json.dumps({"type": "FeatureCollection", "features": [FENCE_A]}))
    track = [(0, OUTSIDE), (60, INSIDE), (120, INSIDE), (180, OUTSIDE), (240, OUTSIDE), (300, OUTSIDE)]
    records = [lip("2001", t, where) for t, where in track]
    records[2:2] = [
        (b"2001", orjson.dumps({"issi": "2001", "received_at": format_ts(T0 + 90), "payload": "0AZZ"})),
        (b"2001", b'{"issi": "2001", '),
    ]
    service = Service(broker.bootstrap, tmp_path / "data", names, PARTITIONS, fences, extra=("--topic-lip", lip_topic))
    try:
        await service.start_ready()
        await produce(broker.bootstrap, lip_topic, records)
        async with TopicReader(broker.bootstrap, names.events) as reader:
            events = await reader.collect(2)
        async with TopicReader(broker.bootstrap, names.dlq) as reader:
            dead = await reader.collect(2)
    finally:
        await service.stop()
    assert [(e["type"], e["device_id"], e["fence_id"], e["ts"], e.get("dwell_s")) for e in events] == [
        ("enter", "2001", "A", format_ts(T0 + 60), None),
        ("exit", "2001", "A", format_ts(T0 + 180), 120.0),
    ]
    assert [(d["topic"], d["key"]) for d in dead] == [(lip_topic, "2001")] * 2
    assert dead[0]["reason"] == "payload: is not hex: 'Z' at character 3"
    assert dead[1]["reason"].startswith("malformed JSON")
