"""The embedded broker: lifecycle, a real produce/consume round trip, restart, topic creation."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from support.pipeline import topic_partitions

from services.pipeline.broker import STOP_GRACE_S, BrokerError, EmbeddedBroker, ensure_topics

pytestmark = pytest.mark.integration  # starts real Tansu brokers


def _name(prefix: str) -> str:
    """Topic and group names of their own, so tests can share the session broker."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _gone(pid: int) -> bool:
    """True when no process (not even a zombie) has this pid: the broker was reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_embedded_broker_start_then_stop_leaves_no_process(tmp_path):
    b = EmbeddedBroker(log_dir=tmp_path)
    await b.start()
    pid = b.pid
    assert pid is not None and b.running and b.bootstrap == f"127.0.0.1:{b.port}"
    assert await topic_partitions(b.bootstrap) == {}
    await b.stop()
    assert _gone(pid) and not b.running and b.pid is None
    await b.stop()  # idempotent


async def test_embedded_broker_output_goes_to_log_not_stdout(tmp_path, capfd):
    async with EmbeddedBroker(log_dir=tmp_path) as b:
        log_path = b.log_path
    assert log_path is not None and "listening on" in log_path.read_text()
    assert capfd.readouterr().out == ""


async def test_embedded_broker_restart_same_port_comes_back_empty():
    async with EmbeddedBroker() as b:
        topic = _name("restart")
        await ensure_topics(b.bootstrap, {topic: 2})
        bootstrap, old_pid = b.bootstrap, b.pid
        assert old_pid is not None
        await b.restart()
        assert b.bootstrap == bootstrap and b.pid != old_pid and _gone(old_pid)
        assert await topic_partitions(b.bootstrap) == {}


async def test_embedded_broker_restart_under_connected_client_is_quick_and_client_recovers():
    async with EmbeddedBroker() as b:
        topic = _name("outage")
        await ensure_topics(b.bootstrap, {topic: 1})
        producer = AIOKafkaProducer(bootstrap_servers=b.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"before")
            started = time.monotonic()
            await b.restart()  # Tansu would wait 5 s for the connected producer: we kill after the grace
            assert time.monotonic() - started < STOP_GRACE_S + 2
            await ensure_topics(b.bootstrap, {topic: 1})
            meta = await asyncio.wait_for(producer.send_and_wait(topic, b"after"), 10)
            assert meta.offset == 0  # a new, empty log
        finally:
            await producer.stop()


async def test_embedded_broker_port_taken_raises_without_leftover():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))  # bound, not listening: the broker's bind fails, connects are refused
        b = EmbeddedBroker(port=squatter.getsockname()[1])
        with pytest.raises(BrokerError, match="exited"):
            await b.start()
    assert b.pid is None and not b.running


async def test_embedded_broker_start_sync_inside_running_loop_refused():
    with pytest.raises(BrokerError, match="await"):
        EmbeddedBroker().start_sync()


async def test_ensure_topics_missing_topics_created_with_requestedtopic_partitions(broker):
    a, b = _name("three"), _name("one")
    await ensure_topics(broker.bootstrap, {a: 3, b: 1})
    await ensure_topics(broker.bootstrap, {a: 3, b: 1})  # existing: tolerated, unchanged
    found = await topic_partitions(broker.bootstrap)
    assert found[a] == 3 and found[b] == 1


async def test_ensure_topics_broker_still_starting_retries_until_up():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = EmbeddedBroker(port=port)
    topic = _name("late")
    pending = asyncio.create_task(ensure_topics(f"127.0.0.1:{port}", {topic: 2}, timeout_s=10))
    await asyncio.sleep(0.3)  # a few failed attempts before the broker exists
    assert not pending.done()
    async with b:
        await asyncio.wait_for(pending, 10)
        assert (await topic_partitions(b.bootstrap))[topic] == 2


async def test_embedded_broker_group_consumer_reads_what_was_produced(broker):
    topic, group = _name("roundtrip"), _name("group")
    await ensure_topics(broker.bootstrap, {topic: 1})
    sent = [(f"dev{i % 2}".encode(), f"ping {i}".encode()) for i in range(5)]
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for key, value in sent:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=2000,  # Tansu answers the first JoinGroup after session_timeout / 2
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    try:
        got: list[tuple[bytes | None, bytes | None]] = []
        async with asyncio.timeout(10):
            while len(got) < len(sent):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got += [(r.key, r.value) for r in records]
        await consumer.commit()
        tp = TopicPartition(topic, 0)
        assert got == sent
        assert await consumer.committed(tp) == len(sent)
    finally:
        await consumer.stop()


async def test_consumer_highwater_after_partial_fetch_is_log_end(broker):
    # Tansu's end_offsets() answers the last batch's base offset + 1 (here 31, not 60); the
    # highwater a fetch reports is the true end, even before the consumer has read that far.
    topic = _name("highwater")
    await ensure_topics(broker.bootstrap, {topic: 1})
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
    await producer.start()
    try:
        for _ in range(2):  # two batches of 30 records
            await asyncio.gather(*[await producer.send(topic, b"x" * 10) for _ in range(30)])
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", max_poll_records=5)
    await consumer.start()
    try:
        consumer.assign([tp])
        async with asyncio.timeout(10):
            records: list[object] = []
            while not records:
                records = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
        assert len(records) == 5
        assert consumer.highwater(tp) == 60
    finally:
        await consumer.stop()


async def test_ensure_topics_creates_raw_ping_topic_with_retention(broker: EmbeddedBroker) -> None:
    # Raw pings carry officers' positions: the topic holding them is created with their retention.
    topic = f"pings-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, {topic: 2}, configs={topic: {"retention.ms": str(31 * 86_400_000)}})
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = {entry[0]: entry[1] for entry in described[0].resources[0][4]}
    assert entries["retention.ms"] == "2678400000"
