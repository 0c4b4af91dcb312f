"""A 202 is durable with the memory-only embedded broker: the journal, its recovery, no orphan
broker, and pings lost for any other reason are counted.

The journal's rules are held in-process against a fake broker (offsets per partition), the
matcher's count of lost pings on the in-memory log; the whole service is then killed with
`kill -9` while clients POST pings and restarted, and its broker killed under it.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
import psutil
import pytest
from support.pipeline import Names, Service, poll_until

from geofence.params import EngineParams
from services.metrics import Metrics
from services.pipeline import journal as journal_module
from services.pipeline.journal import Journal, Position, Record, recover
from services.pipeline.matcher import Matcher
from services.pipeline.memory import MemoryLog, MemoryStore, NoCapture
from services.store import Checkpoint, Store

# -- the journal, in-process --------------------------------------------------------------------


class FakeLog:
    """A broker log per partition (the key's last byte, mod 2): what publish was given, with offsets."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, int, bytes, bytes]] = []
        self.ends = [0, 0]

    async def publish(self, messages: Sequence[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
        placed = []
        for key, value in messages:
            p = key[-1] % 2
            placed.append((p, self.ends[p]))
            self.messages.append((p, self.ends[p], key, value))
            self.ends[p] += 1
        return placed


def _place(log: FakeLog, messages: list[tuple[bytes, bytes]]) -> list[Record]:
    """The records HTTP ingest hands the journal once the log acknowledged messages."""
    out = []
    for key, value in messages:
        p = key[-1] % 2
        out.append(Record(p, log.ends[p], key, value))
        log.ends[p] += 1
    return out


def values(messages: Sequence[tuple[int, int, bytes, bytes]]) -> list[int]:
    return [orjson.loads(m[3])["i"] for m in messages]


def checkpoints(**positions: Position) -> dict[int, Position]:
    return {int(p[1:]): pos for p, pos in positions.items()}


async def test_journal_restart_republishes_exactly_what_no_checkpoint_covers(tmp_path: Path) -> None:
    now: dict[int, Position] = {}

    async def positions() -> dict[int, Position]:
        return dict(now)

    first = FakeLog()
    journal, republished = await recover(tmp_path, positions, first.publish)
    assert republished == 0
    records = _place(first, [(f"d{i % 4}".encode(), orjson.dumps({"i": i})) for i in range(20)])
    await journal.append(records)  # partition 0 gets i = 0, 2, 4, ... at offsets 0..9; 1 the odd ones
    now[0] = (6, "fp-of-offset-5")  # the matcher checkpointed partition 0 up to offset 6 (i = 12)
    # kill -9: no close. The broker (memory only) is gone with its log; a new one is empty.
    second = FakeLog()
    journal2, republished = await recover(tmp_path, positions, second.publish)
    # Partition 0 from its checkpoint on; all of partition 1 (never checkpointed), in log order.
    assert values(second.messages) == [12, 14, 16, 18, *range(1, 20, 2)]
    assert republished == 14

    # Killed again before the matcher checkpointed anything in the new log: the checkpoint is
    # still the one of the first log, so everything the second run was given comes back again.
    more = _place(second, [(b"d1", orjson.dumps({"i": 99}))])
    await journal2.append(more)
    third = FakeLog()
    _, republished = await recover(tmp_path, positions, third.publish)
    assert values(third.messages) == [12, 14, 16, 18, *range(1, 20, 2), 99]

    # Once the matcher checkpointed partition 1 in the third log (offset 3 of it), only the rest.
    now[1] = (3, "fp-in-third-log")
    fourth = FakeLog()
    await recover(tmp_path, positions, fourth.publish)
    assert values(fourth.messages) == [12, 14, 16, 18, 7, 9, 11, 13, 15, 17, 19, 99]
    assert len(list(tmp_path.glob("*.journal"))) == 1, "old generations are deleted once the new one is on disk"


async def test_journal_torn_last_frame_is_ignored_and_earlier_records_kept(tmp_path: Path) -> None:
    log = FakeLog()

    async def positions() -> dict[int, Position]:
        return {}

    journal, _ = await recover(tmp_path, positions, log.publish)
    await journal.append(_place(log, [(b"d0", orjson.dumps({"i": i})) for i in range(5)]))
    [segment] = tmp_path.glob("*.journal")
    with segment.open("ab") as f:  # killed in the middle of writing a frame: never acknowledged
        f.write(b"\x40\x00\x00\x00garbage")
    again = FakeLog()
    _, republished = await recover(tmp_path, positions, again.publish)
    assert values(again.messages) == [0, 1, 2, 3, 4] and republished == 5


async def test_journal_failed_write_answers_error_and_later_acknowledged_records_stay_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = FakeLog()

    async def positions() -> dict[int, Position]:
        return {}

    journal, _ = await recover(tmp_path, positions, log.publish)
    await journal.append(_place(log, [(b"d0", orjson.dumps({"i": 0}))]))

    def disk_full(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])  # half a frame made it to the file
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(journal_module, "_write_all", disk_full)
        with pytest.raises(OSError):
            await journal.append(_place(log, [(b"d0", orjson.dumps({"i": 1}))]))  # the client gets 503
    await journal.append(_place(log, [(b"d0", orjson.dumps({"i": 2}))]))
    again = FakeLog()
    await recover(tmp_path, positions, again.publish)
    assert values(again.messages) == [0, 2]


async def test_journal_concurrent_appends_share_one_fsync(tmp_path: Path) -> None:
    log = FakeLog()

    async def positions() -> dict[int, Position]:
        return {}

    journal, _ = await recover(tmp_path, positions, log.publish)
    requests = [_place(log, [(b"d0", orjson.dumps({"i": i}))]) for i in range(100)]
    await asyncio.gather(*(journal.append(r) for r in requests))
    assert journal.fsyncs == 1  # all 100 were queued before the first write: one group commit
    await journal.close()


async def test_journal_checkpointed_segments_are_deleted_others_kept(tmp_path: Path) -> None:
    log = FakeLog()
    now: dict[int, Position] = {}

    async def positions() -> dict[int, Position]:
        return dict(now)

    _, _ = await recover(tmp_path, positions, log.publish)
    journal = Journal(tmp_path, 7, {}, segment_bytes=2000)  # small segments: several close
    for i in range(40):
        await journal.append(_place(log, [(b"d0", orjson.dumps({"i": i, "pad": "x" * 100}))]))
    closed = list(journal.closed)
    assert len(closed) >= 2
    assert await journal.truncate({}) == 0, "nothing is checkpointed: everything is kept"
    first_end = closed[0].ends[0]
    assert await journal.truncate({0: (first_end, "fp")}) == 1
    assert not closed[0].path.exists() and closed[1].path.exists()
    assert await journal.truncate({0: (log.ends[0], "fp")}) == len(closed) - 1
    await journal.close()


async def test_journal_reads_each_partitions_checkpoint_position_from_the_store(store: Store) -> None:
    await store.save_checkpoint(Checkpoint("g", "pings", 0, 17, "17:1:ab", {}, {}))
    await store.save_checkpoint(Checkpoint("g", "pings", 2, 0, None, {}, {}))
    await store.save_checkpoint(Checkpoint("other-group", "pings", 1, 9, "9:1:cd", {}, {}))
    assert await store.checkpoint_positions("g", "pings") == {0: (17, "17:1:ab"), 2: (0, None)}


def metric(matcher: Matcher, name: str) -> float:
    return matcher.metrics.registry.get_sample_value(name) or 0.0


async def test_matcher_broker_restarts_empty_under_it_counts_the_pings_it_never_processed() -> None:
    """A memory-only broker restarts while the matcher is mid-log: the pings the old log held past
    the matcher's position are gone, and the matcher says how many (log and metric)."""
    log = MemoryLog({"pings": 2, "events": 2, "dlq": 2}, batch=50)
    for p in range(2):  # a bad message first in each partition: the first batch's dead letters...
        log.append("pings", None, b"not json", partition=p)
    t0 = time.time() - 3600
    for i in range(400):  # devices d0..d3 spread over both partitions
        device = f"d{i % 4}"
        log.append("pings", device.encode(), orjson.dumps({"device_id": device, "ts": t0 + i, "lat": 51.5, "lon": 0}))
    log.acks.clear()  # ...wait for acks that do not come
    matcher = Matcher(
        log=log,
        group="g",
        topics=("pings", "events", "dlq"),
        params=EngineParams(),
        store=MemoryStore(),
        capture=NoCapture(),
        metrics=Metrics(),
        wall_clock=False,
        checkpoint_interval_s=3600.0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(matcher.run(stop))
    try:
        await poll_until(lambda: bool(log.messages("dlq")), "the first batch's dead letters sent", 10.0)
        consumed = metric(matcher, "hotspots_pings_consumed_total")
        assert consumed == 100  # the first batch: 50 of each partition
        log.restart()  # the broker restarts empty meanwhile
        await poll_until(lambda: "topics missing" in (matcher.health.error or ""), "the restart noticed", 10.0)
        log.acks.set()
        lost = 402 - consumed
        await poll_until(lambda: metric(matcher, "hotspots_pings_lost_total") == lost, f"{lost} pings lost", 10.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10.0)


# -- the service, killed ------------------------------------------------------------------------

#: Devices, and clients each sending the pings of its own share of them one request after another
#: (so each device's pings arrive in order, as from one radio).
DEVICES = 50
CLIENTS = 5
#: The kill comes after the first checkpoint and a random number of acknowledged requests more.
KILL_AFTER = (1, 300)


class EmbeddedService(Service):
    """`hotspots run` with its embedded broker: no --kafka-bootstrap."""

    def argv(self) -> list[str]:
        argv = super().argv()
        i = argv.index("--kafka-bootstrap")
        return argv[:i] + argv[i + 2 :]

    def broker_pids(self) -> list[int]:
        assert self.proc is not None
        return [c.pid for c in psutil.Process(self.proc.pid).children() if "tansu" in c.name()]

    def children(self) -> list[int]:
        """The broker and the API worker processes."""
        assert self.proc is not None
        return [c.pid for c in psutil.Process(self.proc.pid).children()]

    def last_positions(self) -> dict[str, tuple[float, float, float]]:
        db = self.data_dir / "hotspots.db"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute("SELECT device_id, last_ts, lat, lon FROM devices").fetchall()
        except sqlite3.OperationalError:
            return {}
        finally:
            conn.close()
        return {d: (ts, lat, lon) for d, ts, lat, lon in rows}


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.integration
@pytest.mark.parametrize("api_workers", [1, 2])  # 2: the API runs in processes of its own, each with a journal
async def test_durability_kill_9_mid_ingest_every_acknowledged_ping_survives_and_no_broker_outlives(
    tmp_path: Path, api_workers: int
) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    t0 = int(time.time()) - 3600  # recent: no rule refuses it as too old
    names = Names.fresh("durable")
    extra = ("--max-lateness-s", "0", "--checkpoint-interval-s", "1", "--api-workers", str(api_workers))
    service = EmbeddedService("", tmp_path / "data", names, 3, extra=extra)
    acked: dict[str, tuple[float, float, float]] = {}
    in_flight: dict[str, tuple[float, float, float]] = {}  # sent, killed before the answer: may or may not count
    answered = 0
    killed = asyncio.Event()
    try:
        await service.start_ready()
        keys = [await service.make_ingest_key() for _ in range(CLIENTS)]  # each a radio gateway
        assert len(service.broker_pids()) == 1
        old_children = service.children()  # with API workers also multiprocessing's resource tracker
        assert len(old_children) >= 1 + (api_workers if api_workers > 1 else 0)

        async def client(key: str, devices: list[str]) -> None:
            nonlocal answered
            headers = {"authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=30.0) as http:
                for step in range(1_000_000):
                    sent = {d: (float(t0 + step), 51.5 + step * 1e-5, -0.1 + int(d[1:]) * 1e-4) for d in devices}
                    body = [{"device_id": d, "ts": ts, "lat": lat, "lon": lon} for d, (ts, lat, lon) in sent.items()]
                    in_flight.update(sent)
                    while True:
                        try:
                            response = await http.post("/v1/pings", content=orjson.dumps(body))
                        except httpx.TransportError:
                            assert killed.is_set(), "the service failed before the kill"
                            return
                        if response.status_code != 429:  # over the key's rate: not accepted, send again
                            break
                        await asyncio.sleep(0.05)
                    assert response.status_code == 202, response.text
                    acked.update(sent)
                    answered += 1
                    if killed.is_set():
                        return

        async def killer() -> None:
            # Past a checkpoint, so the restart finds some pings processed and some not.
            await poll_until(lambda: sum(service.checkpointed_offsets().values()) > 0, "a first checkpoint")
            target = answered + rng.randint(*KILL_AFTER)
            await poll_until(lambda: answered >= target, f"{target} answered requests")
            service.kill()  # SIGKILL to the service process only, not its group
            killed.set()

        shares = [[f"d{i}" for i in range(DEVICES) if i % CLIENTS == c] for c in range(CLIENTS)]
        await asyncio.gather(killer(), *(client(k, s) for k, s in zip(keys, shares, strict=True)))
        await poll_until(lambda: all(map(gone, old_children)), "the broker (and API workers) to die with the service")

        await service.start_ready()  # same data dir: the journal and the store of the first run

        def caught_up() -> bool:
            stored = service.last_positions()
            return all(stored.get(d) in (acked[d], in_flight[d]) for d in acked)

        await poll_until(caught_up, "every device at its last acknowledged ping")
        stored = service.last_positions()
        behind = {d: (stored.get(d), acked[d]) for d in acked if stored.get(d) not in (acked[d], in_flight[d])}
        assert behind == {}, f"seed {seed}: devices behind their last acknowledged ping: {behind}"
        # (the log, not /metrics: with API workers those answer /metrics, and the parent re-publishes)
        assert re.search(r"re-published [1-9]\d* acknowledged pings", service.log_text()), "nothing to recover"
        [new_broker] = service.broker_pids()
        new_children = service.children()
    finally:
        await service.stop()
    assert gone(new_broker), "the broker outlived the service's stop"
    await poll_until(lambda: all(map(gone, new_children)), "the API workers and resource tracker to end", 30.0)
    assert len(acked) == DEVICES


@pytest.mark.integration
async def test_durability_embedded_broker_dies_service_stops_saying_how_many_pings_wait_and_restart_has_them(
    tmp_path: Path,
) -> None:
    t0 = int(time.time()) - 3600
    names = Names.fresh("brokerdeath")
    extra = ("--max-lateness-s", "0", "--checkpoint-interval-s", "600")  # no checkpoint: every ping waits
    service = EmbeddedService("", tmp_path / "data", names, 3, extra=extra)
    steps = 20
    try:
        await service.start_ready()
        key = await service.make_ingest_key()
        [broker] = service.broker_pids()
        last = {}
        async with httpx.AsyncClient(base_url=service.url, headers={"authorization": f"Bearer {key}"}) as http:
            for step in range(steps):
                body = [
                    {"device_id": f"d{i}", "ts": t0 + step, "lat": 51.5 + step * 1e-5, "lon": -0.1}
                    for i in range(DEVICES)
                ]
                response = await http.post("/v1/pings", content=orjson.dumps(body))
                assert response.status_code == 202, response.text
                last = {p["device_id"]: (float(p["ts"]), p["lat"], p["lon"]) for p in body}
        os.kill(broker, signal.SIGKILL)  # the broker dies by itself, as an OOM kill would do it
        await poll_until(lambda: service.proc is not None and service.proc.poll() is not None, "the service to stop")
        assert service.proc is not None and service.proc.returncode != 0
        said = service.log_text()
        assert f"{steps * DEVICES} acknowledged pings not yet processed are in the journal" in said, said[-2000:]

        service.extra = ("--max-lateness-s", "0")  # checkpoints as usual now: the store shows the positions
        await service.start_ready()
        await poll_until(lambda: service.last_positions() == last, "every device at its last acknowledged ping")
        assert "never processed: lost" not in service.log_text()
    finally:
        await service.stop()
