"""`hotspots ingest pei`: a PEI log's LIP reports, decoded and produced to the pings topic.

Published as HTTP ingest publishes (``services.pipeline.http_ingest``): decoded pings, keyed by
the radio's identity, into the pings topic the matcher reads, so the service needs no LIP topic
for them. Reports without a timestamp before their ``+CTSDSR`` are dated when read (a log being
written as the radio reports); refused lines are reported as FILE:LINE: reason and skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer

from ingest.pei import read_pei
from services.metrics import Metrics
from services.pipeline.http_ingest import produce_pings


async def ingest_pei(path: Path, bootstrap: str, topic: str, report: Callable[[str], None]) -> tuple[int, int]:
    """Produce the reports of the log at path; (pings produced, lines refused)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    produced = refused = 0
    metrics = Metrics()  # counts nothing anyone reads: produce_pings wants one
    try:
        for chunk in read_pei(path, received_at=time.time):
            for error in chunk.errors:
                report(f"{path}:{error.line}: {error.reason}")
            refused += len(chunk.errors)
            produced += await produce_pings(producer, topic, chunk.batch, metrics)
    finally:
        await producer.stop()
    return produced, refused
