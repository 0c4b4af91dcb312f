"""The write-ahead journal of HTTP pings while the broker is the embedded, memory-only one.

A 202 must mean "will be processed" even if the process is killed: Kafka gives that with
acks=all, a memory-only broker does not. So, with the embedded broker, HTTP ingest produces
the pings (the broker acknowledges them and names their partition and offset), appends them
with those positions here, and answers 202 only once the append is fsynced. Appends of
concurrent requests share one write and one fsync (group commit): a request waits for at most
the fsync in progress and the one after it.

Records belong to a *generation*: the broker log they were produced to. Every segment starts
with a header naming its generation and the *base*, the checkpoint (next offset, fingerprint)
of every partition when the generation began. A checkpoint still equal to the base was made
in an older log, so nothing of this generation is processed; a checkpoint that moved was made
in this generation's log, so its records from the checkpoint's offset on are not processed.

At start (`recover`): read the newest generation, keep the records the checkpoints do not
cover, produce them to the fresh broker in their partition order, and write them with their new
positions as the first records of the next generation; then delete the old segments. A crash
at any point of that leaves either the old generation (done again) or the complete new one.
While running, a segment every record of which a checkpoint covers is deleted
(TRUNCATE_INTERVAL_S), so the journal holds roughly what the matcher has not yet checkpointed.

Frames are length + CRC-32 + payload; a torn frame at the end of a segment (killed mid-write,
so never acknowledged) ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

#: A segment is closed (and becomes deletable) past this size: small enough that the journal of
#: a service keeping up stays a few segments, large enough that rolling is rare.
SEGMENT_BYTES = 16 * 1024 * 1024
#: How often checkpointed segments are looked for: deleting them is not urgent.
TRUNCATE_INTERVAL_S = 5.0

#: (next_offset, log fingerprint) of a partition's checkpoint; (0, None) when it has none.
Position = tuple[int, str | None]
NO_CHECKPOINT: Position = (0, None)

_FRAME = struct.Struct("<II")  # payload length, CRC-32 of the payload
_RECORD = struct.Struct("<iqI")  # partition (-1: a header), offset (header: generation), key length
_SUFFIX = ".journal"


@dataclass(frozen=True, slots=True)
class Record:
    """One acknowledged ping: where the broker put it, and the message."""

    partition: int
    offset: int
    key: bytes
    value: bytes


def pending(records: Sequence[Record], base: Mapping[int, Position], now: Mapping[int, Position]) -> list[Record]:
    """The records of a generation with this base that the checkpoints `now` do not cover (module docstring)."""
    out = []
    for r in records:
        cp = now.get(r.partition, NO_CHECKPOINT)
        if cp == base.get(r.partition, NO_CHECKPOINT) or r.offset >= cp[0]:
            out.append(r)
    return out


def _frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _record_frame(r: Record) -> bytes:
    return _frame(_RECORD.pack(r.partition, r.offset, len(r.key)) + r.key + r.value)


def _header_frame(generation: int, base: Mapping[int, Position]) -> bytes:
    body = orjson.dumps({str(p): list(pos) for p, pos in base.items()})
    return _frame(_RECORD.pack(-1, generation, 0) + body)


@dataclass(slots=True)
class Segment:
    """One journal file: its generation, base and records (records only while recovering)."""

    path: Path
    generation: int
    base: dict[int, Position]
    records: list[Record] = field(default_factory=list)
    ends: dict[int, int] = field(default_factory=dict)  # partition -> last offset + 1 in this segment

    @classmethod
    def read(cls, path: Path) -> Segment | None:
        """The segment's header and records up to the first torn frame; None without a header."""
        data = path.read_bytes()
        pos, segment = 0, None
        while pos + _FRAME.size <= len(data):
            size, crc = _FRAME.unpack_from(data, pos)
            payload = data[pos + _FRAME.size : pos + _FRAME.size + size]
            if len(payload) < size or zlib.crc32(payload) != crc or size < _RECORD.size:
                break
            partition, offset, key_len = _RECORD.unpack_from(payload)
            rest = payload[_RECORD.size :]
            if partition < 0:
                base = {int(p): (int(o), f) for p, (o, f) in orjson.loads(rest).items()}
                segment = segment or cls(path, offset, base)
            elif segment is not None:
                segment.add(Record(partition, offset, rest[:key_len], rest[key_len:]))
            pos += _FRAME.size + size
        if pos < len(data):
            log.warning(
                "journal %s: %d bytes after offset %d unreadable (torn write?), ignored", path, len(data) - pos, pos
            )
        return segment

    def add(self, r: Record) -> None:
        self.records.append(r)
        self.ends[r.partition] = max(self.ends.get(r.partition, 0), r.offset + 1)

    def covered(self, now: Mapping[int, Position]) -> bool:
        """Whether the checkpoints `now` cover every record of this segment."""
        for p, end in self.ends.items():
            cp = now.get(p, NO_CHECKPOINT)
            if cp == self.base.get(p, NO_CHECKPOINT) or end > cp[0]:
                return False
        return True


#: The checkpoints' positions now, per partition (Store.checkpoint_positions for our group and topic).
Positions = Callable[[], Awaitable[dict[int, Position]]]
#: Produces messages (key, value) in order and returns each one's (partition, offset) once acknowledged.
Publish = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[list[tuple[int, int]]]]


class Journal:
    """Appends fsynced in groups; closed segments deleted once checkpointed. See the module docstring."""

    def __init__(
        self,
        directory: Path,
        generation: int,
        base: Mapping[int, Position],
        initial: Sequence[Record] = (),
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.directory = directory
        self.generation = generation
        self.base = dict(base)
        self.segment_bytes = segment_bytes
        self.closed: list[Segment] = []  # full segments, oldest first, records dropped
        self._sequence = 0
        self._segment, self._fd, self._size = self._open_segment(initial)
        self._queue: list[tuple[list[Record], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._truncator: asyncio.Task[None] | None = None
        self.fsyncs = 0  # flush rounds so far: appends per fsync is the group-commit figure
        self.broken: OSError | None = None  # a failed write that could not be undone: no more appends
        self.positions: Positions = _no_checkpoints

    def _open_segment(self, initial: Sequence[Record] = ()) -> tuple[Segment, int, int]:
        """A new segment: header and initial records written under a temporary name, fsynced,
        then renamed, so a segment is never seen without its initial records."""
        self._sequence += 1
        path = self.directory / f"{self.generation:08d}-{self._sequence:08d}{_SUFFIX}"
        temp = path.with_suffix(".tmp")
        data = _header_frame(self.generation, self.base) + b"".join(map(_record_frame, initial))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            _write_all(fd, data)
            os.rename(temp, path)
            _fsync_dir(self.directory)
        except BaseException:
            os.close(fd)
            raise
        segment = Segment(path, self.generation, self.base)
        for r in initial:
            segment.add(r)
        segment.records.clear()  # only its ends are kept in memory
        return segment, fd, len(data)

    async def append(self, records: Sequence[Record]) -> None:
        """Return once the records are on disk (fsynced); OSError if they could not be."""
        if not records:
            return
        if self.broken is not None:
            raise OSError(f"journal unusable since a failed write ({self.broken}); restart the service")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((list(records), done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="journal-flush")
        await asyncio.shield(done)  # a client that gives up does not cancel the others' fsync

    async def _flush(self) -> None:
        """Write and fsync everything queued, round after round, until the queue is empty."""
        while self._queue:
            batch, self._queue = self._queue, []
            records = [r for recs, _ in batch for r in recs]
            data = b"".join(map(_record_frame, records))
            try:
                await asyncio.to_thread(_write_all, self._fd, data)
                self.fsyncs += 1
            except OSError as exc:
                log.error("journal write failed (the requests get 503): %s", exc)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(OSError(f"journal write failed: {exc}"))
                await self._undo(exc)
                continue
            for r in records:
                self._segment.ends[r.partition] = max(self._segment.ends.get(r.partition, 0), r.offset + 1)
            self._size += len(data)
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
            if self._size >= self.segment_bytes:
                os.close(self._fd)
                self.closed.append(self._segment)
                try:
                    self._segment, self._fd, self._size = await asyncio.to_thread(self._open_segment)
                except OSError as exc:
                    log.error("journal: cannot start a segment: %s", exc)
                    self.broken = exc

    async def _undo(self, exc: OSError) -> None:
        """Cut a failed write's partial frame off, so frames appended later stay readable."""
        try:
            await asyncio.to_thread(_truncate, self._fd, self._size)
        except OSError as again:
            log.error("journal: cannot undo a failed write (%s): refusing appends", again)
            self.broken = exc

    def start(self, positions: Positions) -> None:
        """Delete checkpointed segments every TRUNCATE_INTERVAL_S until close."""
        self.positions = positions
        self._truncator = asyncio.create_task(self._truncate_loop(), name="journal-truncate")

    async def _truncate_loop(self) -> None:
        while True:
            await asyncio.sleep(TRUNCATE_INTERVAL_S)
            try:
                await self.truncate(await self.positions())
            except Exception as exc:  # the store is away: try again next time
                log.warning("journal truncation skipped: %s", exc)

    async def truncate(self, now: Mapping[int, Position]) -> int:
        """Delete the closed segments the checkpoints `now` cover; how many were deleted."""
        keep = []
        for segment in self.closed:
            if segment.covered(now):
                segment.path.unlink(missing_ok=True)
            else:
                keep.append(segment)
        deleted = len(self.closed) - len(keep)
        self.closed = keep
        return deleted

    async def unprocessed(self) -> int:
        """How many journaled pings the checkpoints do not cover now (reads the segments)."""
        now = await self.positions()
        await self.drain()
        segments = [s for s in (Segment.read(x.path) for x in [*self.closed, self._segment]) if s is not None]
        return sum(len(pending(s.records, self.base, now)) for s in segments)

    async def drain(self) -> None:
        """Wait for the appends queued so far."""
        if self._flusher is not None:
            with contextlib.suppress(OSError):
                await self._flusher

    async def close(self) -> None:
        if self._truncator is not None:
            self._truncator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._truncator
        await self.drain()
        with contextlib.suppress(OSError):  # already closed when a new segment could not be started
            os.close(self._fd)


async def recover(directory: Path, positions: Positions, publish: Publish) -> tuple[Journal, int]:
    """Re-publish what the journal holds and no checkpoint covers; the journal of the new generation.

    Call before anything else produces to the (fresh, empty) broker. Returns the journal and
    how many pings were re-published. The journals of the last run's API workers (`join`) are
    read and deleted with the rest.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = sorted([*directory.glob(f"*{_SUFFIX}"), *directory.glob(f"*/*{_SUFFIX}")])
    segments = [s for s in map(Segment.read, paths) if s is not None]
    now = await positions()
    generation = max((s.generation for s in segments), default=0)
    todo = [r for s in segments if s.generation == generation for r in pending(s.records, s.base, now)]
    todo.sort(key=lambda r: (r.partition, r.offset))
    placed = await publish([(r.key, r.value) for r in todo])
    moved = [Record(p, o, r.key, r.value) for r, (p, o) in zip(todo, placed, strict=True)]
    journal = Journal(directory, generation + 1, now, moved)  # complete on disk before the old one goes
    for path in [*paths, *directory.glob("*.tmp"), *directory.glob("*/*.tmp")]:
        path.unlink()
    for sub in directory.iterdir():
        if sub.is_dir():
            sub.rmdir()
    _fsync_dir(directory)
    if todo:
        log.warning("re-published %d acknowledged pings from the journal (not processed before the stop)", len(todo))
    return journal, len(todo)


async def join(directory: Path, positions: Positions) -> Journal:
    """The journal of an API worker process: the generation `recover` began, in a directory of its own.

    Its base is the checkpoints now, read before it produces anything (see the module docstring).
    """
    generation = max(int(p.name.split("-")[0]) for p in directory.glob(f"*{_SUFFIX}"))
    own = directory / f"api-{os.getpid()}"
    own.mkdir(mode=0o700)
    journal = Journal(own, generation, await positions())
    journal.start(positions)
    return journal


async def _no_checkpoints() -> dict[int, Position]:
    return {}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _truncate(fd: int, size: int) -> None:
    os.ftruncate(fd, size)
    os.fsync(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a created or deleted file's name durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
