"""A crashed embedded PostgreSQL comes back by itself while cronicorn uses it (real servers,
real `kill -9`, the real CLI)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
import pytest

from cronicorn.embedded import EmbeddedPostgres
from cronicorn.embedded_supervisor import EmbeddedSupervisor, retry_delay
from foundation.conftest import postmaster_pid
from foundation.test_cli import _health, _stop, _wait_healthy
from support import cli_env, free_port, run_cli, start_cli, wait_sync

pytestmark = pytest.mark.slow


class Stderr:
    """What a running CLI process has logged so far, read without blocking."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self._fd = proc.stderr.fileno()
        os.set_blocking(self._fd, False)
        self._text = ""

    def text(self) -> str:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._text += chunk.decode(errors="replace")
        return self._text


@contextlib.contextmanager
def holding_the_server_lock(home: Path) -> Iterator[None]:
    """The lock every restart takes: while the test holds it, no process can restart."""
    with open(home / "embedded.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_server_is_restarted_once_for_all_its_users(embedded_home: Path) -> None:
    env = cli_env(CRONICORN_HOME=str(embedded_home), HOST="127.0.0.1")
    ports = free_port(), free_port()
    up = start_cli("up", env={**env, "PORT": str(ports[0])})
    _wait_healthy(ports[0], up)
    api = start_cli("api", env={**env, "PORT": str(ports[1])})
    _wait_healthy(ports[1], api)
    procs = up, api
    logs = [Stderr(p) for p in procs]
    before = _health(ports[0])[1]["embeddedDatabase"]
    assert before == {
        "state": "running",
        "restarts": 0,
        "lastCrashAt": None,
        "lastRecoveredAt": None,
        "lastError": None,
    }

    crashed = postmaster_pid(embedded_home)
    with holding_the_server_lock(embedded_home):
        os.kill(crashed, signal.SIGKILL)
        notice = f"embedded PostgreSQL (pid {crashed}) exited unexpectedly; restarting, attempt 1"
        wait_sync(
            lambda: all(notice in log.text() for log in logs),
            timeout=30,
            what="both processes to log the crash",
        )
        for port in ports:
            status, body = _health(port)
            assert status == 503
            assert body["database"] == "restarting"
            assert body["embeddedDatabase"]["state"] == "restarting"  # type: ignore[index]
            assert body["embeddedDatabase"]["lastCrashAt"] is not None  # type: ignore[index]
        assert not EmbeddedPostgres(embedded_home).running(), "no restart without the lock"

    for port, proc in zip(ports, procs, strict=True):
        _wait_healthy(port, proc)  # pools reconnect by themselves: no restart of cronicorn
        assert _health(port)[1]["embeddedDatabase"]["state"] == "running"  # type: ignore[index]
        # The restarter records the restart just after the server accepts connections.
        wait_sync(
            lambda port=port: _health(port)[1]["embeddedDatabase"]["restarts"] == 1,  # type: ignore[index,misc]
            timeout=30,
            what="the restart to be recorded",
        )
        server = _health(port)[1]["embeddedDatabase"]
        assert server["state"] == "running"  # type: ignore[index]
        assert server["lastRecoveredAt"] is not None  # type: ignore[index]
    status = EmbeddedPostgres(embedded_home).status()
    assert status.running
    assert status.pid not in (None, crashed)
    line = '"event": "embedded_postgres_restarted"'
    wait_sync(lambda: any(line in log.text() for log in logs), timeout=10, what="the log line")
    assert "crash recovery done" in "".join(log.text() for log in logs)
    restarted = [log.text().count(line) for log in logs]
    assert sorted(restarted) == [0, 1], "exactly one process restarted the shared server"
    assert [_stop(p) for p in procs] == [0, 0]


def test_db_status_after_a_crash_names_no_stale_pid(embedded_home: Path) -> None:
    env = cli_env(CRONICORN_HOME=str(embedded_home))
    started = run_cli("db", "start", env=env)
    assert started.returncode == 0, started.stderr
    url = EmbeddedPostgres(embedded_home).url()
    assert started.stdout.splitlines() == [f"Embedded PostgreSQL running: {url}"]

    crashed = postmaster_pid(embedded_home)
    os.kill(crashed, signal.SIGKILL)
    wait_sync(lambda: _gone(crashed), timeout=30, what="the postmaster to die")
    text = run_cli("db", "status", env=env)
    assert text.returncode == 3
    assert "running: False" in text.stdout
    assert "pid: None" in text.stdout
    assert f"pid {crashed}" in text.stderr, "the crash is named as a crash, not as a pid"
    assert "cronicorn db start" in text.stderr


def test_supervisor_retries_with_backoff_until_the_server_starts(embedded_home: Path) -> None:
    """A restart that fails (here: a bad setting) is retried, and health can tell why."""
    server = EmbeddedPostgres(embedded_home)
    server.start(pin=False)
    conf = server.pgdata / "postgresql.conf"
    original = conf.read_text()
    fixed = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)  # the supervisor's only clock
    supervisor = EmbeddedSupervisor(
        server, clock=lambda: fixed, poll_s=0.1, first_retry_s=0.1, max_retry_s=0.4
    )
    crashed = postmaster_pid(embedded_home)
    conf.write_text(original + "\nshared_buffers = 'plenty'\n")
    with supervisor:
        os.kill(crashed, signal.SIGKILL)
        wait_sync(
            lambda: "shared_buffers" in (server.crashes().last_error or ""),
            timeout=60,
            what="a failed restart to be recorded",
        )
        report = server.report()
        assert report["state"] == "restarting"
        assert report["lastCrashAt"] == fixed.isoformat()
        assert report["restarts"] == 0
        conf.write_text(original)
        wait_sync(lambda: server.report()["state"] == "running", timeout=60, what="the restart")
    assert server.report() == {
        "state": "running",
        "restarts": 1,
        "lastCrashAt": fixed.isoformat(),
        "lastRecoveredAt": fixed.isoformat(),
        "lastError": None,
    }
    with psycopg.connect(server.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_db_stop_is_not_undone_by_a_supervisor(embedded_home: Path) -> None:
    server = EmbeddedPostgres(embedded_home)
    server.start(pin=False)
    server.stop(force=True)
    EmbeddedSupervisor(server).check()  # what its thread does every second
    assert not server.running()
    assert server.report()["state"] == "stopped"


def test_retry_delay_doubles_up_to_its_cap() -> None:
    assert [retry_delay(n, 0.5, 4.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
