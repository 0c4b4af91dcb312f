"""`make bench`, end to end: pings through the real broker and one `hotspots run` process to events.

Starts the embedded broker (Tansu, memory only) and `hotspots run` as a child process with
2,000 fences, 4 partitions and ``--max-lateness-s 0`` (nothing is held back for reordering, so
an event can leave as soon as its ping is matched), then measures:

* sustained throughput: workload pings at the target rate for ~20 s while /metrics is sampled
  every second: the pings/s one matcher process consumes and whether its consumer lag stays
  bounded (if a backlog is left, how fast the matcher drains it with the producers quiet);
* latency at fixed rates: events are consumed here and matched to their ping by
  (device_id, ts) (with debounce 0 an enter, exit or restored event carries its ping's ts);
  latency = receipt of the event - the wall time its ping was handed to the producer.

Pings are those of `hotspots simulate` (same JSON, keyed by device_id) with current timestamps:
the workload's patrols, in order, with ping i of a run at R pings/s stamped t0 + i / R, its due
time (so the throughput run replays ~70 minutes of 10,000 officers' patrols in 20 s), sent in
the first producer tick after it. They are JSON-encoded here and pre-batched per (tick,
partition) in producer child processes before t0, so sending costs the producers next to
nothing (unpaced, two of them pushed 1.6 M pings/s into this broker on a 2-core box): what
limits the run is the matcher.

Targets (2-core machine): 100,000 pings/s sustained by one matcher; p99 < 250 ms at 20,000/s.
Everything listens on 127.0.0.1; child processes and the broker are stopped on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from geofence.pings import PingBatch
from services.pipeline.broker import EmbeddedBroker, ensure_topics, free_port
from services.replay import partition_for
from services.workload import make_fences, make_pings

HOST = "127.0.0.1"
PARTITIONS = 4
N_FENCES = 2_000
PINGS_TOPIC, EVENTS_TOPIC, DLQ_TOPIC = "pings", "geofence-events", "pings-dlq"

TARGET_RATE = 100_000
THROUGHPUT_S = 20.0
#: Officers of the throughput stream and its length in event time (~2.3 M pings made, 2 M sent).
TP_DEVICES, TP_EVENT_TIME_S = 10_000, 4_800.0
#: Producer child processes of the throughput run, each owning PARTITIONS / TP_PRODUCERS.
TP_PRODUCERS = 2
TP_TICK_S = 0.01
#: Longest wait, after production stops, for the matcher to consume what is left.
DRAIN_MAX_S = 30.0

LATENCY_RATES = (5_000, 20_000)
LATENCY_S = 15.0
LATENCY_TARGET_P99_S = 0.25
LAT_DEVICES, LAT_EVENT_TIME_S = 10_000, 900.0
LAT_TICK_S = 0.005
#: After the last tick, how long events may still arrive.
LATENCY_GRACE_S = 2.0

#: Time the parent and producers get to encode and batch a run's pings before its first is due.
PREP_BASE_S, PREP_PER_PING_S = 2.0, 3e-6
READY_TIMEOUT_S = 90.0
CHILD_READY_TIMEOUT_S = 90.0
SERVICE_STOP_S = 20.0
SAMPLE_S = 1.0

#: Events whose ts is that of the ping that caused them (debounce 0). A signal loss, or an exit
#: because of one, is stamped with the device's last ping, not one just sent.
_PING_STAMPED = {"enter", "signal_restored"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


# ----------------------------------------------------------------------------- the parent


@dataclass(slots=True)
class Service:
    """`hotspots run` as a child process, and where it is."""

    proc: asyncio.subprocess.Process
    api: str
    log: Path


@dataclass(slots=True)
class Sample:
    t: float
    consumed: float
    lag: float


@dataclass(slots=True)
class Sent:
    """What the producer children of one run report."""

    pings: int
    rate: float  # pings/s from the first tick to the last ack
    late_s: float  # how late the first tick went out (preparation overran)
    tick_times: list[float]  # wall time each tick was handed to the producer (first child's)


@dataclass(slots=True)
class Throughput:
    sent: Sent
    rate: float
    max_lag: float
    end_lag: float
    bounded: bool
    drained: bool
    drain_rate: float | None


@dataclass(slots=True)
class Latency:
    rate: int
    sent: Sent
    events: int
    p50: float
    p99: float
    max: float


def bench_pipeline() -> None:
    print(
        f"pipeline, end to end: embedded broker (Tansu, memory only) -> one `hotspots run` ({N_FENCES} fences, "
        f"{PARTITIONS} partitions, --max-lateness-s 0: events are not held for reordering) -> events topic"
    )
    try:
        asyncio.run(_bench())
    except Exception as exc:  # a failed pipeline bench must not hide the figures printed before it
        print(f"  pipeline bench failed: {type(exc).__name__}: {exc}")


async def _bench() -> None:
    with tempfile.TemporaryDirectory(prefix="hotspots-bench-") as tmp_name:
        tmp = Path(tmp_name)
        rng = np.random.default_rng(23)
        fences = make_fences(N_FENCES, rng)
        fences_path = tmp / "fences.geojson"
        fences_path.write_text(json.dumps(fences))
        broker = EmbeddedBroker(log_dir=tmp)
        service: Service | None = None
        children: list[asyncio.subprocess.Process] = []
        try:
            await broker.start()
            await ensure_topics(broker.bootstrap, {t: PARTITIONS for t in (PINGS_TOPIC, EVENTS_TOPIC, DLQ_TOPIC)})
            service = await _start_service(broker.bootstrap, fences_path, tmp)
            # The matcher takes a few seconds to join its group: make the traffic meanwhile.
            tp_pings = make_pings(fences, TP_DEVICES, TP_EVENT_TIME_S, rng)
            tp_pings = tp_pings.take(slice(0, int(TARGET_RATE * THROUGHPUT_S)))
            # Other radios ("L" prefix) for the latency runs: no device is shared with the burst.
            lat_pings = _renamed(make_pings(fences, LAT_DEVICES, LAT_EVENT_TIME_S, rng), "L")
            await wait_ready(service)
            async with httpx.AsyncClient(base_url=service.api, trust_env=False, timeout=5.0) as http:
                tp = await _throughput(broker.bootstrap, http, tp_pings, tmp, children)
                if not tp.drained:
                    print("  (the backlog is still there: the latencies below include waiting behind it)")
                latencies = []
                offset = 0
                for rate in LATENCY_RATES:  # one stream, continued at each rate
                    n = int(rate * LATENCY_S)
                    chunk = lat_pings.take(slice(offset, offset + n))
                    offset += n
                    latencies.append(await _latency(broker.bootstrap, rate, chunk, tmp, children))
            _summary(tp, latencies)
        except BaseException:
            if service is not None:
                _print_tail(service.log)
            raise
        finally:
            await _stop_all(children, service, broker)


def _renamed(pings: PingBatch, prefix: str) -> PingBatch:
    ids = np.array([prefix + d for d in pings.device_id.tolist()], dtype=object)
    return PingBatch(device_id=ids, ts=pings.ts, lat=pings.lat, lon=pings.lon, accuracy_m=pings.accuracy_m)


async def _start_service(bootstrap: str, fences: Path, tmp: Path) -> Service:
    port = free_port()
    log = tmp / "service.log"
    argv = [
        sys.executable, "-m", "services.cli", "run",
        "--kafka-bootstrap", bootstrap,
        "--data-dir", str(tmp / "data"),
        "--fences", str(fences),
        "--max-lateness-s", "0",
        "--partitions", str(PARTITIONS),
        "--api-host", HOST,
        "--api-port", str(port),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOTS_")}  # the flags say it all
    env["PYTHONUNBUFFERED"] = "1"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env
        )
    return Service(proc, f"http://{HOST}:{port}", log)


async def wait_ready(service: Service) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=service.api, trust_env=False, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if service.proc.returncode is not None:
                raise RuntimeError(f"hotspots run exited with code {service.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"hotspots run not ready within {READY_TIMEOUT_S:g} s")


async def _stop_all(children: list[asyncio.subprocess.Process], service: Any, broker: EmbeddedBroker) -> None:
    """The producers, the service (if it started) and the broker, in that order."""
    for child in children:
        await _stop_process(child, 2.0)
    if service is not None:
        await _stop_process(service.proc, SERVICE_STOP_S)
    await broker.stop()


async def _stop_process(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM, SIGKILL after grace_s, then reap."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def _print_tail(log: Path, lines: int = 15) -> None:
    with contextlib.suppress(OSError):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print("  last lines of the service log:\n" + "\n".join("    " + line for line in tail))


async def _sample(http: httpx.AsyncClient) -> Sample:
    """pings consumed so far and the summed consumer lag, from /metrics."""
    text = (await http.get("/metrics")).text
    consumed = lag = 0.0
    for line in text.splitlines():
        if line.startswith("hotspots_pings_consumed_total "):
            consumed = float(line.split()[1])
        elif line.startswith("hotspots_consumer_lag{"):
            lag += float(line.rsplit(" ", 1)[1])
    return Sample(time.time(), consumed, lag)


# ----------------------------------------------------------------------------- a paced run


def _partitions(device_id: np.ndarray) -> np.ndarray:
    """Each ping's partition: murmur2 of its key, as the default partitioner of a producer picks."""
    names, inverse = np.unique(device_id.astype(str), return_inverse=True)
    per_device = np.array([partition_for(n, PARTITIONS) for n in names.tolist()])
    return per_device[inverse].astype(np.int8)


def _messages(pings: PingBatch, ts_us: np.ndarray) -> tuple[list[bytes], list[bytes]]:
    """Keys and JSON values as `hotspots simulate` sends them, with the ts given."""
    stamps = np.datetime_as_string(ts_us.astype("datetime64[us]"), unit="us").tolist()
    devices = pings.device_id.tolist()
    values = [
        f'{{"device_id":"{d}","ts":"{t}Z","lat":{la!r},"lon":{lo!r},"accuracy_m":{acc!r},'
        f'"callsign":"CX{d[-3:]}","source":"{"radio" if int(d[-5:]) % 3 else "handset"}"}}'.encode()
        for d, t, la, lo, acc in zip(
            devices, stamps, pings.lat.tolist(), pings.lon.tolist(), pings.accuracy_m.tolist(), strict=True
        )
    ]
    return [d.encode() for d in devices], values


@dataclass(slots=True)
class Run:
    """Producer children loaded with one run's pings, ready to send from t0 on."""

    procs: list[asyncio.subprocess.Process]
    t0: float
    ts_us: np.ndarray
    tick: np.ndarray


async def _prepare(
    bootstrap: str,
    pings: PingBatch,
    rate: float,
    tick_s: float,
    n_producers: int,
    tmp: Path,
    children: list[asyncio.subprocess.Process],
) -> Run:
    """Encode the pings with ts = their due time, hand them to producer children, wait until batched."""
    n = len(pings)
    t0 = time.time() + PREP_BASE_S + PREP_PER_PING_S * n
    ts_us = np.round((t0 + np.arange(n) / rate) * 1e6).astype(np.int64)
    tick = (ts_us - ts_us[0]) // round(tick_s * 1e6)
    keys, values = _messages(pings, ts_us)
    part = _partitions(pings.device_id)
    procs = []
    for c in range(n_producers):
        mine = np.flatnonzero(part * n_producers // PARTITIONS == c)
        job = tmp / f"producer-{len(children)}.pickle"
        with job.open("wb") as f:
            pickle.dump(
                {
                    "bootstrap": bootstrap,
                    "topic": PINGS_TOPIC,
                    "t0": t0,
                    "tick_s": tick_s,
                    "keys": [keys[i] for i in mine.tolist()],
                    "values": [values[i] for i in mine.tolist()],
                    "partitions": part[mine],
                    "ticks": tick[mine],
                },
                f,
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.pipeline", "produce", str(job),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        children.append(proc)
        procs.append(proc)
    for proc in procs:
        await _read_line(proc, CHILD_READY_TIMEOUT_S)
    return Run(procs, t0, ts_us, tick)


async def _read_line(proc: asyncio.subprocess.Process, timeout_s: float) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
    if not line:
        raise RuntimeError(f"producer child exited early (code {await proc.wait()})")
    result: dict[str, Any] = json.loads(line)
    return result


async def _finish(run: Run, timeout_s: float) -> Sent:
    results = [await _read_line(p, timeout_s) for p in run.procs]
    for p in run.procs:
        await p.wait()
    pings = sum(r["sent"] for r in results)
    first = min(r["first_send"] for r in results)
    last = max(r["last_ack"] for r in results)
    return Sent(pings, pings / max(last - first, 1e-9), first - run.t0, results[0]["tick_times"])


# ----------------------------------------------------------------------------- throughput


async def _throughput(
    bootstrap: str, http: httpx.AsyncClient, pings: PingBatch, tmp: Path, children: list[asyncio.subprocess.Process]
) -> Throughput:
    """TARGET_RATE pings/s for THROUGHPUT_S; /metrics sampled every second."""
    run = await _prepare(bootstrap, pings, TARGET_RATE, TP_TICK_S, TP_PRODUCERS, tmp, children)
    before = await _sample(http)
    samples = [before]
    finished = asyncio.create_task(_finish(run, run.t0 - time.time() + THROUGHPUT_S + 60.0))
    while not finished.done():
        await asyncio.wait([finished], timeout=max(0.0, samples[-1].t + SAMPLE_S - time.time()))
        samples.append(await _sample(http))
    sent = await finished
    end = samples[-1]
    # Steady state, from 2 s in to the last tick: least-squares slopes of the pings consumed and of
    # the backlog (pings due by the schedule - pings consumed; the lag gauge only moves when the
    # matcher fetches, so it misses what waits in the broker unfetched).
    steady = [s for s in samples if run.t0 + 2.0 <= s.t <= run.t0 + THROUGHPUT_S + TP_TICK_S]
    if len(steady) < 3:
        steady = samples
    t = np.array([s.t for s in steady])
    consumed = np.array([s.consumed - before.consumed for s in steady])
    due = np.minimum((t - run.t0) * TARGET_RATE, sent.pings)
    rate = float(np.polyfit(t, consumed, 1)[0])
    growth = float(np.polyfit(t, due - consumed, 1)[0])
    max_lag = max(s.lag for s in samples)
    bounded = growth < 0.02 * sent.rate  # 2 %: tick and sampling jitter
    verdict = "bounded" if bounded else "NOT bounded"
    # What is left is drained with the producers quiet (a bounded wait): the matcher alone.
    deadline = time.time() + DRAIN_MAX_S
    tail = [end]
    while tail[-1].consumed - before.consumed < sent.pings and time.time() < deadline:
        await asyncio.sleep(SAMPLE_S / 2)
        tail.append(await _sample(http))
    drained = tail[-1].consumed - before.consumed >= sent.pings
    busy = [s for s in tail if s.consumed - before.consumed < sent.pings]  # backlog still there
    drain_rate = None
    if busy and busy[-1].t - end.t >= 2.0:
        drain_rate = (busy[-1].consumed - end.consumed) / (busy[-1].t - end.t)
    print(
        f"  throughput: {sent.pings:,} pings offered at {sent.rate:,.0f}/s for {THROUGHPUT_S:.0f} s "
        f"({TP_PRODUCERS} producer processes, pre-batched; first tick {sent.late_s * 1000:+.0f} ms from due)"
    )
    print(
        f"  one matcher consumed {rate:>10,.0f} pings/s in steady state (target {TARGET_RATE:,}); consumer lag max "
        f"{max_lag:,.0f}, at end {end.lag:,.0f}; backlog growing {growth:,.0f}/s: {verdict}"
    )
    left = sent.pings - (end.consumed - before.consumed)
    if left > 0:
        took = tail[-1].t - end.t
        how = f"drained in {took:.1f} s" if drained else f"NOT drained within {DRAIN_MAX_S:.0f} s"
        alone = f": the matcher alone (producers quiet) {drain_rate:,.0f} pings/s" if drain_rate else ""
        print(f"  backlog of {left:,.0f} pings at the end {how}{alone}")
    return Throughput(sent, rate, max_lag, end.lag, bounded, drained, drain_rate)


# ----------------------------------------------------------------------------- latency


async def _latency(
    bootstrap: str, rate: int, pings: PingBatch, tmp: Path, children: list[asyncio.subprocess.Process]
) -> Latency:
    """Paced pings; each event is matched to its ping and timed from the ping's send to its receipt."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    received: list[tuple[float, str, int]] = []
    try:
        tps = [TopicPartition(EVENTS_TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, before the first ping is sent
            await consumer.position(tp)
        run = await _prepare(bootstrap, pings, rate, LAT_TICK_S, 1, tmp, children)
        finished = asyncio.create_task(_finish(run, run.t0 - time.time() + LATENCY_S + 30.0))
        grace_until = run.t0 + LATENCY_S + 60.0  # bounded even if the producer never reports
        while time.time() < grace_until:
            polled = await consumer.getmany(timeout_ms=20)
            now = time.time()
            for records in polled.values():
                for r in records:
                    e = orjson.loads(r.value)
                    if e["type"] in _PING_STAMPED or (e["type"] == "exit" and e.get("reason") == "left"):
                        received.append((now, e["device_id"], (datetime.fromisoformat(e["ts"]) - _EPOCH) // _ONE_US))
            if finished.done() and grace_until > now + LATENCY_GRACE_S:
                grace_until = now + LATENCY_GRACE_S
        sent = await finished
    finally:
        await consumer.stop()
    tick_of = dict(zip(zip(pings.device_id.tolist(), run.ts_us.tolist(), strict=True), run.tick.tolist(), strict=True))
    times = sent.tick_times
    lat = np.array([now - times[tick_of[(d, t)]] for now, d, t in received if (d, t) in tick_of])
    p50, p99, worst = np.percentile(lat, [50, 99, 100]).tolist() if len(lat) else [float("nan")] * 3
    print(
        f"  latency at {rate:>6,} pings/s for {LATENCY_S:.0f} s ({sent.pings:,} pings sent at {sent.rate:,.0f}/s): "
        f"{len(lat):,} events, ping-to-event p50 {p50 * 1e3:.0f} ms  p99 {p99 * 1e3:.0f} ms  max {worst * 1e3:.0f} ms"
    )
    return Latency(rate, sent, len(lat), p50, p99, worst)


def _summary(tp: Throughput, latencies: Sequence[Latency]) -> None:
    tp_ok = tp.rate >= TARGET_RATE * 0.98 and tp.bounded  # 2 %: tick and sampling jitter
    parts = [
        f"one matcher {tp.rate:,.0f} pings/s, lag {'bounded' if tp.bounded else 'growing'} "
        f"(target {TARGET_RATE:,}/s {'met' if tp_ok else 'MISSED'})"
    ]
    for x in latencies:
        parts.append(f"p99 {x.p99 * 1000:.0f} ms at {x.rate:,}/s")
    top = max(latencies, key=lambda x: x.rate, default=None)
    if top is not None:
        ok = top.p99 < LATENCY_TARGET_P99_S
        parts[-1] += f" (target < {LATENCY_TARGET_P99_S * 1000:.0f} ms {'met' if ok else 'MISSED'})"
    print("  pipeline summary: " + "; ".join(parts))


# ----------------------------------------------------------------------------- producer child


def _builders(producer: AIOKafkaProducer, keys: list[bytes], values: list[bytes], idx: Sequence[int]) -> list[Any]:
    """Record batches holding the messages idx in order, each as full as max_batch_size allows."""
    out = []
    batch = producer.create_batch()
    for i in idx:
        if batch.append(key=keys[i], value=values[i], timestamp=None) is None:
            out.append(batch)
            batch = producer.create_batch()
            batch.append(key=keys[i], value=values[i], timestamp=None)
    if batch.record_count():
        out.append(batch)
    return out


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _produce(job: dict[str, Any]) -> None:
    """Batch every (tick, partition), say so, then hand tick k over at t0 + (k + 1) * tick_s.

    A tick goes out once its last ping's ts has passed: every fix is in the past when sent.
    """
    producer = AIOKafkaProducer(bootstrap_servers=job["bootstrap"], acks="all", linger_ms=0, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        topic, t0, tick_s = job["topic"], job["t0"], job["tick_s"]
        keys, values = job["keys"], job["values"]
        ticks = job["ticks"].tolist()
        plan: list[dict[int, list[int]]] = [{} for _ in range(ticks[-1] + 1 if ticks else 0)]
        for i, (k, p) in enumerate(zip(ticks, job["partitions"].tolist(), strict=True)):
            plan[k].setdefault(p, []).append(i)
        batches = [[(p, _builders(producer, keys, values, idx)) for p, idx in sorted(t.items())] for t in plan]
        del keys, values, job
        _say({"ready": True})
        tick_times: list[float] = []
        futures = []
        sent = 0
        for k, tick in enumerate(batches):
            delay = t0 + (k + 1) * tick_s - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tick_times.append(time.time())
            for p, bs in tick:
                for b in bs:
                    sent += b.record_count()
                    futures.append(await producer.send_batch(b, topic, partition=p))
        await asyncio.gather(*futures)
        first = tick_times[0] - tick_s if tick_times else t0
        _say({"sent": sent, "first_send": first, "last_ack": time.time(), "tick_times": tick_times})
    finally:
        await producer.stop()


def _child_main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] != "produce":
        print("usage: python -m bench.pipeline produce JOB.pickle", file=sys.stderr)
        return 2
    with Path(argv[1]).open("rb") as f:
        job = pickle.load(f)  # our own file, written a moment ago by the parent
    asyncio.run(_produce(job))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
