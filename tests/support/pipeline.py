"""Reusable pieces of the live-pipeline tests: the service as a real child process, real Kafka.

Nothing here is mocked. ``Service`` runs ``hotspots run`` as a subprocess (the installed entry
point next to the test interpreter), with its output in a log file of the test's temp dir;
pings are produced and events read back with aiokafka against a real (Tansu) broker; and the
expected events come from ``hotspots replay --partitions N`` on the same CSV.

Every wait is a poll until a condition holds, with a generous deadline: a slow CI box makes a
test slower, not flaky. Every client and child process is closed, also when a test fails.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata
from prometheus_client.parser import text_string_to_metric_families

from ingest.csv_pings import write_ping_csv
from services.access.keys import create_key
from services.access.roles import Role
from services.cli import main as hotspots_main
from services.pipeline.broker import ensure_topics, free_port
from services.store import database_url
from services.workload import Workload

T = TypeVar("T")

#: Longest wait for a service to start and answer /readyz 200 (process start, imports, store
#: migrations and the first consumer-group join, ~5 s on Tansu with aiokafka's defaults).
READY_TIMEOUT_S = 60.0
#: Longest wait for events (or DLQ records) to show up after their pings were produced.
EVENTS_TIMEOUT_S = 60.0
#: How long a topic must stay silent, once the expected records are in, before we conclude that
#: nothing more is coming (an extra event would show up well within this after the last one).
QUIET_S = 1.0
#: SIGTERM grace before SIGKILL when a test stops a service.
STOP_TIMEOUT_S = 20.0
#: Pause between polls of a condition.
POLL_S = 0.05


def hotspots_argv() -> list[str]:
    """The `hotspots` command of the interpreter running the tests (its venv's entry point)."""
    script = Path(sys.executable).with_name("hotspots")
    return [str(script)] if script.exists() else [sys.executable, "-m", "services.cli"]


def run_private(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a private event loop: for module-scoped (synchronous) fixtures, which
    must not touch the loops pytest-asyncio gives each test."""
    loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(coro)
        loop.run_until_complete(loop.shutdown_asyncgens())
        return result
    finally:
        loop.close()


async def poll_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool], what: str, timeout_s: float = EVENTS_TIMEOUT_S
) -> None:
    """Poll condition (sync or async) until it holds; AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(POLL_S)


# -- names and inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Topic and group names of one test: unique, so tests can share the session broker."""

    group: str
    pings: str
    events: str
    dlq: str

    @classmethod
    def fresh(cls, prefix: str) -> Names:
        tag = f"{prefix}-{uuid.uuid4().hex[:8]}"
        return cls(f"{tag}-matcher", f"{tag}-pings", f"{tag}-events", f"{tag}-dlq")

    def topics(self, partitions: int) -> dict[str, int]:
        return {self.pings: partitions, self.events: partitions, self.dlq: partitions}


async def create_topics(bootstrap: str, names: Names, partitions: int) -> None:
    """Create the test's topics before any client touches them (Tansu would auto-create 4 partitions)."""
    await ensure_topics(bootstrap, names.topics(partitions))


def write_workload(directory: Path, workload: Workload) -> tuple[Path, Path]:
    """The workload as the files an analyst gives `hotspots replay`: fences GeoJSON and pings CSV."""
    fences, pings = directory / "fences.geojson", directory / "pings.csv"
    fences.write_text(json.dumps(workload.fences))
    write_ping_csv(pings, workload.pings)
    return fences, pings


def csv_messages(path: Path) -> list[tuple[bytes, bytes]]:
    """The Kafka messages (key = device_id, JSON value) of a ping CSV, in file order.

    The timestamp is sent as the CSV's own text and coordinates as the floats the CSV spells,
    so the live service reads exactly the numbers `hotspots replay` reads from the file.
    """
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            msg: dict[str, Any] = {
                "device_id": row["device_id"],
                "ts": row["timestamp"],
                "lat": float(row["lat"]),
                "lon": float(row["lon"]),
            }
            if row.get("accuracy_m"):
                msg["accuracy_m"] = float(row["accuracy_m"])
            out.append((row["device_id"].encode(), orjson.dumps(msg)))
    return out


def replay_events(directory: Path, fences: Path, pings: Path, partitions: int, *flags: str) -> list[dict[str, Any]]:
    """Events of `hotspots replay --partitions N` (the CLI's own entry point) on the files."""
    out = directory / f"replay-{uuid.uuid4().hex[:6]}.jsonl"
    argv = ["replay", "--fences", str(fences), "--pings", str(pings), "--out", str(out)]
    code = hotspots_main([*argv, "--partitions", str(partitions), *flags])
    assert code == 0, f"hotspots replay exited {code}"
    return [json.loads(line) for line in out.read_text().splitlines()]


# -- the service -------------------------------------------------------------------------------


@dataclass
class Service:
    """One `hotspots run` child process and the flags it was started with.

    The flags pin everything the tests compare: the topics and group, the partition count the
    service creates topics with, a 0.2 s checkpoint interval, and `--no-wall-clock-watermark`.
    That last one matters: the tests feed historical timestamps (days before now), and with the
    wall clock allowed to advance the watermark every device would be declared lost the moment
    it was seen; without it, the watermark is event time only, as in `hotspots replay`, so the
    events depend on the input alone and can be compared with replay exactly.
    """

    bootstrap: str
    data_dir: Path
    names: Names
    partitions: int
    fences: Path | None = None
    role: str = "all"
    extra: Sequence[str] = ()
    api_port: int = field(default_factory=free_port)
    api_key: str | None = None  # an ingest key in the service's store, for POST /v1/pings
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _log: IO[bytes] | None = None
    _starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def argv(self) -> list[str]:
        argv = [
            *hotspots_argv(), "run",
            "--kafka-bootstrap", self.bootstrap,
            "--data-dir", str(self.data_dir),
            "--api-port", str(self.api_port),
            "--no-wall-clock-watermark",
            "--max-age-days", "36500",  # the tests' pings are dated 2024: admit history
            "--partitions", str(self.partitions),
            "--group-id", self.names.group,
            "--topic-pings", self.names.pings,
            "--topic-events", self.names.events,
            "--topic-dlq", self.names.dlq,
            "--checkpoint-interval-s", "0.2",
            "--role", self.role,
        ]  # fmt: skip
        if self.fences is not None:
            argv += ["--fences", str(self.fences)]
        return [*argv, *self.extra]

    def start(self) -> None:
        """Spawn the process (output to data_dir/service-<n>.log); see wait_ready."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._close_log()
        self._starts += 1
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"service-{self._starts}.log"
        self._log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOTS_")}  # flags only: hermetic
        self.proc = subprocess.Popen(
            self.argv(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise AssertionError(f"service exited ({code}); its log:\n{self.log_text()[-4000:]}")

    async def readyz(self) -> int:
        """The /readyz status code, 0 when the API does not answer at all."""
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                return (await client.get(f"{self.url}/readyz")).status_code
        except httpx.TransportError:
            return 0

    async def readyz_is(self, code: int) -> bool:
        return await self.readyz() == code

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until /readyz answers 200: store open, broker reachable, partitions assigned."""

        async def ready() -> bool:
            self._check_alive()
            return await self.readyz() == 200

        await poll_until(ready, f"{self.url}/readyz to answer 200", timeout_s)

    async def wait_log(self, pattern: str, count: int = 1, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until the log matches pattern count times (for `--role matcher`, which has no HTTP API)."""

        def seen() -> bool:
            self._check_alive()
            return len(re.findall(pattern, self.log_text())) >= count

        await poll_until(seen, f"{count} x {pattern!r} in {self.log_path}", timeout_s)

    async def wait_assigned(self, count: int = 1, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until aiokafka logged its count-th partition assignment in this process."""
        await self.wait_log(r"Setting newly assigned partitions", count, timeout_s)

    async def start_ready(self) -> None:
        self.start()
        await self.wait_ready()

    async def make_ingest_key(self) -> str:
        """An API key with the ingest role, made in the service's (SQLite) store as an operator
        does with `hotspots keys create --role ingest`."""
        self.api_key = await create_key(database_url(None, self.data_dir), Role.INGEST, "pipeline tests")
        return self.api_key

    def kill(self) -> None:
        """kill -9: no shutdown code runs, no final checkpoint."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (a graceful stop) and wait; SIGKILL if it does not exit in time. Idempotent."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(POLL_S)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._close_log()
        return None if proc is None else proc.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def checkpointed_offsets(self) -> dict[int, int]:
        """Partition -> next offset of the checkpoints in the SQLite store of data_dir."""
        db = self.data_dir / "hotspots.db"
        if not db.exists():
            return {}
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute(
                "SELECT partition, next_offset FROM checkpoints WHERE consumer_group = ? AND topic = ?",
                (self.names.group, self.names.pings),
            ).fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return {}
        finally:
            conn.close()
        return {int(p): int(o) for p, o in rows}


def assignments(service: Service) -> list[set[int]]:
    """The partitions of each assignment aiokafka logged in the service's current run, in order."""
    lines = re.findall(r"Setting newly assigned partitions (.*) for group", service.log_text())
    return [{int(p) for p in re.findall(r"partition=(\d+)", line)} for line in lines]


# -- PostgreSQL --------------------------------------------------------------------------------


async def pg_checkpointed(url: str, names: Names) -> int:
    """Messages the checkpoints in the PostgreSQL store cover: the sum of their next offsets."""
    conn = await asyncpg.connect(url)
    try:
        total = await conn.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM checkpoints WHERE consumer_group = $1 AND topic = $2",
            names.group,
            names.pings,
        )
    except asyncpg.UndefinedTableError:  # no matcher has migrated the database yet
        return 0
    finally:
        await conn.close()
    return int(total)


# -- Kafka clients -----------------------------------------------------------------------------


async def topic_partitions(bootstrap: str) -> dict[str, int]:
    """Every topic and its partition count (all topics: naming a missing one would create it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
    finally:
        await admin.close()


@asynccontextmanager
async def kafka_producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def send_all(
    producer: AIOKafkaProducer, topic: str, messages: Iterable[tuple[bytes | None, bytes]]
) -> list[RecordMetadata]:
    """Send messages (key, value) and wait until the broker acknowledged every one."""
    futures = [await producer.send(topic, value, key=key) for key, value in messages]
    return list(await asyncio.gather(*futures))


async def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> list[RecordMetadata]:
    async with kafka_producer(bootstrap) as producer:
        return await send_all(producer, topic, messages)


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: dict[str, Any]


class TopicReader:
    """Reads every partition of a topic from its beginning, without a consumer group.

    No group means no JoinGroup (which Tansu answers only after session_timeout / 2) and no
    committed offsets: each reader sees the whole topic. The topic must exist before the reader
    opens (asking for the partitions of a missing topic would make Tansu create it).
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self.records: list[Record] = []

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        try:
            partitions = await self._partitions()
            tps = [TopicPartition(self.topic, p) for p in partitions]
            self.consumer.assign(tps)
            await self.consumer.seek_to_beginning(*tps)
        except BaseException:
            await self.consumer.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def _partitions(self) -> range:
        count = 0

        async def known() -> bool:
            nonlocal count
            count = (await topic_partitions(self.bootstrap)).get(self.topic, 0)
            return count > 0

        await poll_until(known, f"topic {self.topic} to exist", 30.0)
        return range(count)

    async def poll(self) -> int:
        """One fetch; the number of new records."""
        got = await self.consumer.getmany(timeout_ms=100)
        n = 0
        for tp, records in sorted(got.items()):
            for r in records:
                self.records.append(Record(tp.partition, r.offset, r.key, orjson.loads(r.value or b"null")))
                n += 1
        return n

    async def collect(
        self,
        done: Callable[[list[Record]], bool] | int,
        *,
        quiet_s: float = QUIET_S,
        timeout_s: float = EVENTS_TIMEOUT_S,
    ) -> list[dict[str, Any]]:
        """Read until done(records) holds (or that many records are in) and then quiet_s pass with
        nothing new; every value read so far. At the deadline, return what is there: the test's
        comparison then shows what is missing."""
        if isinstance(done, int):
            want = done

            def enough(records: list[Record]) -> bool:
                return len(records) >= want

            done = enough
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            if await self.poll():
                last_new = time.monotonic()
            elif done(self.records) and time.monotonic() - last_new >= quiet_s:
                break
        return self.values()

    def values(self) -> list[dict[str, Any]]:
        return [r.value for r in self.records]


# -- comparing events --------------------------------------------------------------------------


#: Fields only the live side has: the version of the store's fence set an ENTER or EXIT was
#: matched against (replay reads fences from a file, which has no version).
LIVE_ONLY_FIELDS = frozenset({"fence_version"})


def _canonical(event: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in event.items() if k not in LIVE_ONLY_FIELDS}, sort_keys=True)


def first_of_each_id(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a consumer that drops repeated event_ids keeps, in arrival order."""
    seen: set[str] = set()
    out = []
    for e in events:
        if e["event_id"] not in seen:
            seen.add(e["event_id"])
            out.append(e)
    return out


def unique_ids(records: list[Record]) -> int:
    return len({r.value["event_id"] for r in records})


def by_device(events: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for e in events:
        out[e["device_id"]].append(_canonical(e))
    return dict(out)


def assert_same_events(live: Sequence[dict[str, Any]], expected: Sequence[dict[str, Any]]) -> None:
    """The same multiset of event dicts, and for every device the same events in the same order."""
    got, want = Counter(map(_canonical, live)), Counter(map(_canonical, expected))
    if got != want:
        missing = list((want - got).elements())
        extra = list((got - want).elements())
        raise AssertionError(
            f"live has {len(live)} events, replay {len(expected)}; "
            f"{len(missing)} missing, e.g. {missing[:3]}; {len(extra)} extra, e.g. {extra[:3]}"
        )
    live_order, want_order = by_device(live), by_device(expected)
    for device, events in want_order.items():
        assert live_order[device] == events, f"events of {device} in another order than replay's"


# -- the API -----------------------------------------------------------------------------------


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as client:
        return await client.get(url)


async def post(
    url: str, body: bytes, content_type: str = "application/json", api_key: str | None = None
) -> httpx.Response:
    headers = {"content-type": content_type}
    if api_key is not None:
        headers["authorization"] = f"Bearer {api_key}"
    async with httpx.AsyncClient(timeout=30.0) as client:
        return await client.post(url, content=body, headers=headers)


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics as {(sample name, labels): value}."""
    response = await get(f"{url}/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def sample(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """One sample's value, 0 when it is not there (yet)."""
    return metrics.get((name, frozenset(labels.items())), 0.0)
