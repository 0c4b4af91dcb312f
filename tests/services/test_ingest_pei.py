"""`hotspots ingest pei`: a PEI log's LIP reports produced as pings to the pings topic of a real broker."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from support.lip_frames import LAT_STEP, LON_STEP, lat_raw, lon_raw, short_report
from support.pipeline import TopicReader, run_private

from services.cli import main
from services.pipeline.broker import EmbeddedBroker, ensure_topics

pytestmark = pytest.mark.integration  # a real broker


async def _read(bootstrap: str, topic: str, count: int) -> list[dict]:
    async with TopicReader(bootstrap, topic) as reader:
        return await reader.collect(count, quiet_s=0.5)


def test_ingest_pei_produces_the_reports_as_pings_and_reports_bad_lines(
    broker: EmbeddedBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"pei-{uuid.uuid4().hex[:8]}"
    run_private(ensure_topics(broker.bootstrap, {topic: 1}))
    x, y = lon_raw(-0.1), lat_raw(51.5)
    log = tmp_path / "radio.pei"
    log.write_text(
        f"2026-11-21T22:03:00Z +CTSDSR: 12,2269001,0,9999,0,76\n{short_report(x, y, error=1)}\n"
        "2026-11-21T22:03:05Z +CTSDSR: 12,2269001,0,9999,0,76\n0A00\n"  # line 3: too short
    )
    code = main(["ingest", "pei", "--file", str(log), "--kafka-bootstrap", broker.bootstrap, "--topic-pings", topic])
    captured = capsys.readouterr()
    assert code == 1  # a line was refused
    assert f"{log}:3: user data holds 16 bits, the header says 76" in captured.err
    assert f"{log}: 1 pings produced to {topic}, 1 lines refused" in captured.out
    [ping] = run_private(_read(broker.bootstrap, topic, 1))
    assert ping == {
        "device_id": "2269001",
        "ts": "2026-11-21T22:03:00Z",
        "lat": y * LAT_STEP,
        "lon": x * LON_STEP,
        "accuracy_m": 20.0,
        "speed_mps": 0.0,
        "heading_deg": 0.0,
    }


def test_ingest_pei_without_a_broker_address_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOTSPOTS_KAFKA_BOOTSTRAP", raising=False)
    log = tmp_path / "radio.pei"
    log.write_text("")
    assert main(["ingest", "pei", "--file", str(log)]) == 2
    assert "give --kafka-bootstrap" in capsys.readouterr().err
