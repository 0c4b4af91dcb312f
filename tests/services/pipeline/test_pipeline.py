"""The live service end to end: `hotspots run` as a real process against a real broker.

Pings go in with aiokafka (or over HTTP), events and dead letters come out of Kafka, and the
events are held against `hotspots replay --partitions N` on the same input: the live pipeline
must give the events an analyst gets offline, through crashes, broker outages and rebalances.
The helpers (service process, producing, reading topics, comparing) are in support/pipeline.py.

Determinism: the pings are historical (days before now) and every service runs with
`--no-wall-clock-watermark`, so event time alone drives the watermark, exactly as in replay; with
the wall clock on, every historical device would be declared lost at once. Comparisons also run
both sides with `--max-lateness-s 0` (the generated feeds are in order per device): with a
positive lateness the live service holds the newest max_lateness_s of each partition until later
pings release them, while replay releases everything at the end of its file.

Topics use 3 partitions, not Tansu's auto-create default of 4, so a topic the broker created by
itself (instead of the service or the test creating it) shows up as wrong events.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.helpers import square_geometry
from support.pipeline import (
    Names,
    Service,
    TopicReader,
    assert_same_events,
    assignments,
    create_topics,
    csv_messages,
    first_of_each_id,
    get,
    kafka_producer,
    pg_checkpointed,
    poll_until,
    post,
    produce,
    replay_events,
    run_private,
    sample,
    scrape,
    send_all,
    topic_partitions,
    unique_ids,
    write_workload,
)

from geofence.events import format_ts
from services.pipeline.broker import EmbeddedBroker
from services.workload import make_workload

pytestmark = pytest.mark.integration  # a real broker and service processes

PARTITIONS = 3
#: Both sides of every comparison: see the module docstring.
STRICT_ORDER = ("--max-lateness-s", "0")

# -- hand-made tracks around one hot spot ----------------------------------------------------------

#: Start of the hand-made tracks: a morning long past (see the module docstring).
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC).timestamp()
#: Hot spot "A": a square of 0.001 degrees (about 70 m x 111 m) in central London.
FENCE_A = {"type": "Feature", "id": "A", "properties": {"name": "A"}, "geometry": square_geometry(-0.1, 51.5, 0.001)}
INSIDE = (51.5005, -0.0995)
OUTSIDE = (51.5005, -0.1015)
#: Largest POST body the shared service accepts (small, so a 413 is cheap to provoke).
MAX_BODY = 4096


def ping(device: str, t: float, where: tuple[float, float], **extra: Any) -> dict[str, Any]:
    """A ping t seconds after T0 (ISO 8601, as a radio gateway sends it)."""
    return {"device_id": device, "ts": format_ts(T0 + t), "lat": where[0], "lon": where[1], **extra}


def message(p: dict[str, Any]) -> tuple[bytes, bytes]:
    """The Kafka message of a ping: keyed by device, JSON value."""
    return p["device_id"].encode(), orjson.dumps(p)


def visit(device: str) -> list[dict[str, Any]]:
    """Outside, 2 minutes in A from t=60 to t=180, outside until t=300.

    With the default max_lateness_s of 30 the last ping (t=300) moves the stream past t=180, so
    the ENTER at 60 and the EXIT at 180 (dwell 120 s) both come out; gaps stay far below the
    signal timeout.
    """
    return [
        ping(device, 0, OUTSIDE),
        ping(device, 60, INSIDE),
        ping(device, 120, INSIDE),
        ping(device, 180, OUTSIDE),
        ping(device, 240, OUTSIDE),
        ping(device, 300, OUTSIDE),
    ]


VISIT_EVENTS = [("enter", "A", 60.0, None, None), ("exit", "A", 180.0, 120.0, "left")]


def brief(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(type, fence, seconds after T0, dwell_s, reason) of each event."""
    return [
        (
            e["type"],
            e["fence_id"],
            datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp() - T0,
            e.get("dwell_s"),
            e.get("reason"),
        )
        for e in events
    ]


async def events_of(service: Service, device: str, count: int) -> list[dict[str, Any]]:
    """The events of one device on the service's events topic, once count are in and it is quiet."""
    async with TopicReader(service.bootstrap, service.names.events) as reader:
        values = await reader.collect(lambda records: sum(r.value["device_id"] == device for r in records) >= count)
    return [e for e in values if e["device_id"] == device]


@pytest.fixture(scope="module")
def shared(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One running service for the bad-input, HTTP and metrics tests: a start costs seconds.

    Those tests share its topics but each uses devices of its own and looks only at them. Their
    tracks all lie in T0..T0+300 s: devices in one partition share its watermark, and a track
    far later in time would make another test's devices look lost.
    """
    tmp = tmp_path_factory.mktemp("shared")
    fences = tmp / "fences.geojson"
    fences.write_text(json.dumps({"type": "FeatureCollection", "features": [FENCE_A]}))
    names = Names.fresh("shared")
    service = Service(
        broker.bootstrap, tmp / "data", names, PARTITIONS, fences, extra=("--max-body-bytes", str(MAX_BODY))
    )
    run_private(create_topics(broker.bootstrap, names, PARTITIONS))
    try:
        run_private(service.start_ready())
        run_private(service.make_ingest_key())
        yield service
    finally:
        run_private(service.stop())


# -- events equal replay ---------------------------------------------------------------------------


async def test_pipeline_kafka_stream_events_equal_replay_per_partition(broker: EmbeddedBroker, tmp_path: Path) -> None:
    fences, pings = write_workload(tmp_path, make_workload(30, 25, 3600, seed=3))
    expected = replay_events(tmp_path, fences, pings, PARTITIONS, *STRICT_ORDER)
    assert {e["type"] for e in expected} == {"enter", "exit", "signal_lost", "signal_restored"}
    names = Names.fresh("equal")
    await create_topics(broker.bootstrap, names, PARTITIONS)
    service = Service(broker.bootstrap, tmp_path / "data", names, PARTITIONS, fences, extra=STRICT_ORDER)
    try:
        await service.start_ready()
        await produce(broker.bootstrap, names.pings, csv_messages(pings))
        async with TopicReader(broker.bootstrap, names.events) as reader:
            live = await reader.collect(len(expected))
        assert await service.stop() == 0, "a graceful stop (SIGTERM) exits 0"
    finally:
        await service.stop()
    assert_same_events(live, expected)


async def test_pipeline_kill_9_mid_stream_then_restart_events_equal_uninterrupted_run(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    fences, pings = write_workload(tmp_path, make_workload(30, 30, 3 * 3600, seed=11))
    expected = replay_events(tmp_path, fences, pings, PARTITIONS, *STRICT_ORDER)
    messages = csv_messages(pings)
    names = Names.fresh("crash")
    await create_topics(broker.bootstrap, names, PARTITIONS)
    service = Service(broker.bootstrap, tmp_path / "data", names, PARTITIONS, fences, extra=STRICT_ORDER)
    chunk = 250
    chunks = [messages[i : i + chunk] for i in range(0, len(messages), chunk)]
    try:
        await service.start_ready()
        async with kafka_producer(broker.bootstrap) as producer, TopicReader(broker.bootstrap, names.events) as reader:
            # First third: wait until the service has checkpointed all of it (its events are out)...
            third = len(chunks) // 3
            for c in chunks[:third]:
                await send_all(producer, names.pings, c)
            first_third = sum(map(len, chunks[:third]))
            checkpointed = lambda: sum(service.checkpointed_offsets().values()) == first_third  # noqa: E731
            await poll_until(checkpointed, "the first third to be checkpointed")
            # ...then kill it while it is busy with the next third, with no chance to clean up:
            # whatever it did after its last checkpoint, it does again after the restart.
            for c in chunks[third : 2 * third]:
                await send_all(producer, names.pings, c)
            service.kill()
            for c in chunks[2 * third :]:  # the rest arrives while the service is down
                await send_all(producer, names.pings, c)
            await service.start_ready()
            await reader.collect(lambda records: unique_ids(records) >= len(expected))
            live = reader.values()
        async with TopicReader(broker.bootstrap, names.dlq) as dlq:
            rejected = await dlq.collect(0, quiet_s=0.5)
    finally:
        await service.stop()
    assert_same_events(first_of_each_id(live), expected)
    # The restart resumed from its checkpoint: it did not read the partitions again from the
    # start, which would have sent every ping it had already applied to the DLQ as `late`.
    assert rejected == []


async def test_pipeline_broker_restarts_empty_mid_stream_no_event_lost(tmp_path: Path) -> None:
    workload = make_workload(30, 20, 2 * 3600, seed=5)
    fences, pings = write_workload(tmp_path, workload)
    expected = replay_events(tmp_path, fences, pings, PARTITIONS, *STRICT_ORDER)
    # Three batches of the stream, each later in time than the one before, for the same devices;
    # each is larger than the one before, so a consumer that kept its offsets into the old log
    # would skip part of the next one.
    messages = csv_messages(pings)
    cuts = [0, len(messages) // 6, len(messages) // 2, len(messages)]
    batches = [messages[a:b] for a, b in itertools.pairwise(cuts)]
    names = Names.fresh("outage")
    events: list[dict[str, Any]] = []

    async def phase(bootstrap: str, batch: list[tuple[bytes, bytes]], want: int | None = None) -> None:
        """Produce a batch; collect its events (all of them, once the batch is checkpointed)."""
        await produce(bootstrap, names.pings, batch)
        async with TopicReader(bootstrap, names.events) as reader:
            if want is None:  # each batch goes to a fresh log: its offsets count this batch only
                consumed = lambda: sum(service.checkpointed_offsets().values()) == len(batch)  # noqa: E731
                await poll_until(consumed, "the batch to be consumed and checkpointed")
            new = await reader.collect(want or 0)
        assert new, "a batch gave no events"
        events.extend(new)

    async def topics_back() -> bool:
        partitions = await topic_partitions(own.bootstrap)
        return {t: partitions.get(t) for t in names.topics(PARTITIONS)} == names.topics(PARTITIONS)

    # A broker of our own: this test stops it, which the session's broker must never be.
    async with EmbeddedBroker(log_dir=tmp_path) as own:
        await create_topics(own.bootstrap, names, PARTITIONS)
        service = Service(own.bootstrap, tmp_path / "data", names, PARTITIONS, fences, extra=STRICT_ORDER)
        try:
            await service.start_ready()
            await phase(own.bootstrap, batches[0])

            # An outage the service sees: not ready while the broker is away, ready once it is back
            # (memory only: empty, same port) and the service has made its topics again.
            await own.stop()
            await poll_until(lambda: service.readyz_is(503), "/readyz to answer 503 while the broker is down")
            await own.start()
            await service.wait_ready()
            assert await topics_back(), "ready without its topics (or with partitions the broker chose)"
            await phase(own.bootstrap, batches[1])

            # A restart quicker than the service's broker probe: it must find its topics gone by
            # itself. Nothing touches the topics before it has made them again (the broker would
            # create them with 4 partitions).
            await own.restart()
            await poll_until(topics_back, "the service to make its topics again")
            await phase(own.bootstrap, batches[2], want=len(expected) - len(events))
        finally:
            await service.stop()
    assert_same_events(events, expected)


async def test_pipeline_two_matchers_on_postgres_second_joins_mid_stream_events_equal_replay(
    broker: EmbeddedBroker, tmp_path: Path, pg_url: str
) -> None:
    fences, pings = write_workload(tmp_path, make_workload(30, 24, 2 * 3600, seed=17))
    expected = replay_events(tmp_path, fences, pings, PARTITIONS, *STRICT_ORDER)
    messages = csv_messages(pings)
    third = len(messages) // 3
    head, rest = messages[:third], [messages[i : i + 100] for i in range(third, len(messages), 100)]
    names = Names.fresh("pair")
    await create_topics(broker.bootstrap, names, PARTITIONS)
    db = pg_url

    def matcher(name: str) -> Service:
        """A `--role matcher` process (no HTTP API): state and offsets in the shared store."""
        flags = ("--database-url", db, *STRICT_ORDER)
        return Service(broker.bootstrap, tmp_path / name, names, PARTITIONS, fences, "matcher", flags)

    async def head_consumed() -> bool:
        return await pg_checkpointed(db, names) == len(head)

    first, second = matcher("a"), matcher("b")
    try:
        first.start()
        await first.wait_assigned()
        await produce(broker.bootstrap, names.pings, head)
        await poll_until(head_consumed, "the first third to be checkpointed in PostgreSQL")

        # The second joins while pings keep coming: the group rebalances under load, and
        # the partitions that move are restored on the second from the checkpoints the
        # first wrote as it gave them up.
        second.start()
        during, after = rest[: len(rest) // 2], rest[len(rest) // 2 :]
        async with kafka_producer(broker.bootstrap) as producer:
            while during and not (assignments(second) and len(assignments(first)) > 1):
                await send_all(producer, names.pings, during.pop(0))
                await asyncio.sleep(0.1)  # pacing: spread the stream over the rebalance
            await second.wait_assigned()
            await first.wait_assigned(2)
            for chunk in during + after:  # at least half of the stream after the rebalance
                await send_all(producer, names.pings, chunk)
        now = [assignments(first)[-1], assignments(second)[-1]]
        assert all(now) and now[0] | now[1] == set(range(PARTITIONS)) and not now[0] & now[1], now
        async with TopicReader(broker.bootstrap, names.events) as reader:
            live = await reader.collect(len(expected))
        async with TopicReader(broker.bootstrap, names.dlq) as dlq:
            rejected = await dlq.collect(0, quiet_s=0.5)
    finally:
        await first.stop()
        await second.stop()
    assert_same_events(live, expected)
    assert rejected == []  # each moved partition resumed at its checkpoint, not from the start


# -- bad input, HTTP ingest, health and metrics (one shared service) ------------------------------


async def test_pipeline_bad_and_late_kafka_messages_go_to_dlq_with_reason_and_source_good_ones_flow(
    shared: Service,
) -> None:
    device = "dlq-unit"
    good = [message(p) for p in visit(device)]
    key = device.encode()
    no_lat = ping(device, 20, OUTSIDE)
    del no_lat["lat"]
    # (message, what its reason must say); all keyed by the device, so all in its partition.
    bad: list[tuple[tuple[bytes, bytes], Callable[[str], bool]]] = [
        ((key, b'{"device_id": "dlq-unit", "ts": '), lambda r: r.startswith("malformed JSON")),
        (message(no_lat), lambda r: r.startswith("lat:") and "required" in r),
        (message(ping(device, 25, (91.0, -0.0995))), lambda r: r.startswith("lat:") and "90" in r),
        (message(ping(device, 30, INSIDE, fence_id="nope")), lambda r: r.startswith("fence_id:") and "nope" in r),
    ]
    late = message(ping(device, 100, INSIDE))  # after t=180 was seen: 80 s behind, the limit is 30
    sequence = [good[0], *(m for m, _ in bad), *good[1:4], late, *good[4:]]
    acks = await produce(shared.bootstrap, shared.names.pings, sequence)
    sent = dict(zip(sequence, acks, strict=True))

    async with TopicReader(shared.bootstrap, shared.names.dlq) as reader:
        values = await reader.collect(lambda records: sum(r.key == key for r in records) >= len(bad) + 1)
    dead = sorted((d for d in values if d["key"] == device), key=lambda d: d["offset"])
    expected = [*bad, (late, lambda r: r == "late")]
    assert len(dead) == len(expected), dead
    for d, (msg, reason_ok) in zip(dead, expected, strict=True):
        assert reason_ok(d["reason"]), d
        assert d["original"] == msg[1].decode()
        assert (d["topic"], d["partition"], d["offset"]) == (shared.names.pings, sent[msg].partition, sent[msg].offset)
    # The good pings around them were applied, and none of the rejected ones was (the unknown
    # fence ping at t=30 was inside A: applied, it would have entered A at 30).
    assert brief(await events_of(shared, device, 2)) == VISIT_EVENTS


async def test_pipeline_http_pings_json_and_ndjson_accepted_bad_items_explained_limits_enforced(
    shared: Service,
) -> None:
    device = "http-unit"
    track = visit(device)
    url = f"{shared.url}/v1/pings"
    bad_item = ping(device, 90, (123.0, -0.0995))
    key = shared.api_key
    response = await post(url, orjson.dumps([*track[:3], bad_item]), api_key=key)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (3, 1)
    [error] = body["errors"]
    assert (error["index"], error["field"]) == (3, "lat") and "90" in error["reason"]

    ndjson = b"".join(orjson.dumps(p) + b"\n" for p in track[3:])
    response = await post(url, ndjson, "application/x-ndjson", api_key=key)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 3, "rejected": 0, "errors": [], "errors_unlisted": 0}

    assert brief(await events_of(shared, device, 2)) == VISIT_EVENTS

    too_big = orjson.dumps([ping("http-big", t, OUTSIDE) for t in range(0, 300, 5)])
    assert len(too_big) > MAX_BODY
    response = await post(url, too_big, api_key=key)
    assert response.status_code == 413, response.text

    response = await post(url, orjson.dumps([{"device_id": device, "lat": 51.5}]), api_key=key)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, 1) and body["errors"][0]["index"] == 0


async def test_pipeline_health_and_metrics_report_consumed_rejected_events_lag_and_batch_latency(
    shared: Service,
) -> None:
    response = await get(f"{shared.url}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})

    before = await scrape(shared.url)
    device = "metrics-unit"
    pings = [message(p) for p in visit(device)]
    rejects = [
        message(ping(device, 10, (95.0, -0.0995))),  # invalid
        message(ping(device, 20, INSIDE, fence_id="nope")),  # unknown fence
    ]
    late = message(ping(device, 30, OUTSIDE))  # after t=300: late
    acks = await produce(shared.bootstrap, shared.names.pings, [*rejects, *pings, late])
    partition = str(acks[0].partition)

    def grew(now: dict[Any, float], name: str, by: float, **labels: str) -> bool:
        return sample(now, name, **labels) >= sample(before, name, **labels) + by

    async def counted() -> bool:
        now = await scrape(shared.url)
        return (
            grew(now, "hotspots_pings_consumed_total", 9)
            and grew(now, "hotspots_pings_rejected_total", 1, reason="invalid")
            and grew(now, "hotspots_pings_rejected_total", 1, reason="unknown_fence")
            and grew(now, "hotspots_pings_rejected_total", 1, reason="late")
            and grew(now, "hotspots_events_total", 1, type="enter")
            and grew(now, "hotspots_events_total", 1, type="exit")
            and sample(now, "hotspots_consumer_lag", partition=partition) == 0
        )

    await poll_until(counted, "/metrics to count the pings, rejects and events")
    now = await scrape(shared.url)
    assert ("hotspots_consumer_lag", frozenset({("partition", partition)})) in now
    assert sample(now, "hotspots_batch_seconds_count") > sample(before, "hotspots_batch_seconds_count")
    assert sample(now, "hotspots_batch_seconds_bucket", le="+Inf") == sample(now, "hotspots_batch_seconds_count")
    assert sample(now, "hotspots_batch_seconds_sum") > 0
