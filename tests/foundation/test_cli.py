"""The real `cronicorn` CLI as a subprocess, talking HTTP to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import PgServer
from cronicorn.embedded import EmbeddedPostgres
from support import cli_env, free_port, run_cli, start_cli, wait_sync

pytestmark = pytest.mark.slow

SECRET = "x" * 40


def _health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}


def _wait_healthy(port: int, proc: subprocess.Popen[str]) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.communicate()}")
        return _health(port)[0] == 200

    wait_sync(ready, timeout=60, what=f"health on port {port}")


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 15) -> int:
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()
    return proc.returncode


def test_up_serves_health_and_stops_cleanly_on_sigterm(database_url: str) -> None:
    port = free_port()
    env = cli_env(DATABASE_URL=database_url, PORT=str(port), AUTH_SECRET=SECRET, HOST="127.0.0.1")
    proc = start_cli("up", env=env)
    _wait_healthy(port, proc)
    _, body = _health(port)
    assert body["migrations"] == "current"
    assert _stop(proc) == 0
    assert _health(port)[0] == 0, "nothing listens after shutdown"


def test_a_cli_start_loads_only_the_command_it_runs() -> None:
    """Every CLI start paid ~1 s of CPU for commands it did not run (export's schemas, the
    backup machinery, Alembic); they load on first use now, and `--help` still lists them."""
    probe = (
        "import sys; from cronicorn.cli import app; "
        "sys.argv = ['cronicorn', 'version']; "
        "app(standalone_mode=False); "
        "print(sorted(m for m in sys.modules if m.startswith(('cronicorn.commands.', 'alembic'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert (
        done.stdout.splitlines()[-1] == "['cronicorn.commands.common', 'cronicorn.commands.lazy']"
    )
    listed = run_cli("--help", env=cli_env())
    for name in ("export", "import", "users", "apikey", "backup", "audit", "health", "mcp"):
        assert f" {name} " in listed.stdout, name
    assert run_cli("users", "--help", env=cli_env()).returncode == 0


def test_unreachable_database_is_one_line_and_non_zero(tmp_path: Path) -> None:
    dead = f"postgresql://user:secretpw@127.0.0.1:{free_port()}/db"
    result = run_cli("up", env=cli_env(DATABASE_URL=dead, AUTH_SECRET=SECRET), cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot connect to the database at 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr
    assert "secretpw" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_port_in_use_is_reported(database_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = cli_env(
            DATABASE_URL=database_url, PORT=str(port), HOST="127.0.0.1", AUTH_SECRET=SECRET
        )
        result = run_cli("up", env=env)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("variable", "value"), [("PORT", "abc"), ("LOG_LEVEL", "chatty")])
def test_invalid_environment_exits_2_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = run_cli("migrate", env=cli_env(**{variable: value}), cwd=tmp_path)
    assert result.returncode == 2
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_reports_nothing_pending_the_second_time(pg_server: PgServer) -> None:
    url = pg_server.empty_database()
    try:
        env = cli_env(DATABASE_URL=url, AUTH_SECRET=SECRET)
        first = run_cli("migrate", env=env)
        assert first.returncode == 0, first.stderr
        assert "Applied" in first.stdout
        second = run_cli("migrate", env=env)
        assert second.returncode == 0, second.stderr
        assert "No pending migrations" in second.stdout
    finally:
        pg_server.drop_database(url)


def test_two_migrate_processes_at_once(pg_server: PgServer) -> None:
    url = pg_server.empty_database()
    try:
        env = cli_env(DATABASE_URL=url, AUTH_SECRET=SECRET)
        procs = [start_cli("migrate", env=env) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        stdout = [o[0] for o in outputs]
        assert sum("Applied" in s for s in stdout) == 1
        assert sum("No pending migrations" in s for s in stdout) == 1
    finally:
        pg_server.drop_database(url)


def test_admin_user_is_created_once_and_never_overwritten(database_url: str) -> None:
    env = cli_env(
        DATABASE_URL=database_url,
        AUTH_SECRET=SECRET,
        ADMIN_USER_EMAIL="Ops@Example.com",
        ADMIN_USER_PASSWORD="first-password",
    )
    assert run_cli("migrate", env=env).returncode == 0
    with psycopg.connect(database_url) as conn:
        before = conn.execute("SELECT password_hash, is_admin FROM users").fetchall()
    assert len(before) == 1
    assert before[0][1] is True
    assert before[0][0].startswith("$argon2id$")
    env["ADMIN_USER_PASSWORD"] = "second-password"
    env["ADMIN_USER_EMAIL"] = "ops@example.com"
    assert run_cli("migrate", env=env).returncode == 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT password_hash FROM users").fetchall() == [(before[0][0],)]


def _db_status(env: dict[str, str]) -> dict[str, object]:
    result = run_cli("db", "status", "--json", env=env)
    return dict(json.loads(result.stdout))


def test_embedded_up_survives_sigkill_and_stops_the_server_on_sigterm(embedded_home: Path) -> None:
    port = free_port()
    env = cli_env(CRONICORN_HOME=str(embedded_home), PORT=str(port), HOST="127.0.0.1")
    server = EmbeddedPostgres(embedded_home)  # its state, read as `cronicorn db status` does
    first = start_cli("up", env=env)
    _wait_healthy(port, first)
    _stop(first, signal.SIGKILL)
    assert server.status().running, "PostgreSQL outlives a SIGKILLed app"

    second = start_cli("up", env=env)
    _wait_healthy(port, second)
    with psycopg.connect(server.url()) as conn:
        assert conn.execute("SELECT email FROM users").fetchall() == [("admin@example.com",)]
    assert _stop(second) == 0
    status = server.status()
    assert not status.running
    assert status.clients == []


def test_embedded_server_is_shared_and_stops_with_its_last_user(embedded_home: Path) -> None:
    env = cli_env(CRONICORN_HOME=str(embedded_home), HOST="127.0.0.1")
    server = EmbeddedPostgres(embedded_home)
    port_a, port_b = free_port(), free_port()
    a = start_cli("up", env={**env, "PORT": str(port_a)})
    _wait_healthy(port_a, a)
    b = start_cli("api", env={**env, "PORT": str(port_b)})
    _wait_healthy(port_b, b)
    assert server.status().clients == sorted([a.pid, b.pid])
    assert _stop(a) == 0
    assert server.status().running
    assert _health(port_b)[0] == 200
    assert _stop(b) == 0
    assert not server.status().running


def test_db_start_keeps_the_server_for_operators_until_db_stop(embedded_home: Path) -> None:
    env = cli_env(CRONICORN_HOME=str(embedded_home))
    started = run_cli("db", "start", env=env)
    assert started.returncode == 0, started.stderr
    try:
        status = _db_status(env)
        assert status["running"] is True
        assert status["pinned"] is True
        url = run_cli("db", "url", env=env).stdout.strip()
        assert url.startswith("postgresql://user@/db?host=")
        psql = run_cli("db", "psql", "-tAc", "SELECT current_database()", env=env)
        assert psql.stdout.strip() == "db", psql.stderr
    finally:
        stopped = run_cli("db", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    result = run_cli("db", "status", env=env)
    assert result.returncode == 3
    assert "running: False" in result.stdout


@pytest.mark.parametrize(
    "with_password",
    [
        lambda url: url.replace("://user@", "://user:Pw-in-url-7@", 1),
        lambda url: f"{url}&password=Pw-in-url-7",
    ],
    ids=["userinfo", "parameter"],
)
def test_db_psql_keeps_the_password_out_of_argv(
    database_url: str, with_password: Callable[[str], str]
) -> None:
    """`ps` shows every process's argv to every user; the environment only to its owner."""
    url = with_password(database_url)
    assert "Pw-in-url-7" in url
    show = r'\! tr "\0" " " < /proc/$PPID/cmdline; echo; echo "env=$PGPASSWORD"'
    result = run_cli(
        "db", "psql", "-tA", "-c", show, "-c", "SELECT current_user", env=cli_env(DATABASE_URL=url)
    )
    assert result.returncode == 0, result.stderr
    argv, env, user = result.stdout.splitlines()[:3]
    assert "psql" in argv
    assert database_url.split("?")[0] in argv, "psql got the URL, minus the password"
    assert "Pw-in-url-7" not in argv
    assert env == "env=Pw-in-url-7"
    assert user == "user"


def _workers(parent: int) -> set[int]:
    """The API worker processes of `parent` (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    found = set()
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            found.add(pid)
    return found


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def _requests_counted(port: int, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
        text = resp.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "cronicorn_http_requests_total"
        and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if b"=" in item)


def test_api_workers_share_the_port_are_replaced_and_stop_together(database_url: str) -> None:
    port = free_port()
    env = cli_env(DATABASE_URL=database_url, PORT=str(port), AUTH_SECRET=SECRET, HOST="127.0.0.1")
    proc = start_cli("api", "--workers", "2", env=env)
    try:
        metrics_dir, workers = _exercise_workers(port, proc)
    except BaseException:
        _stop(proc)  # no worker outlives a failed test
        raise
    assert _stop(proc) == 0
    assert not Path(metrics_dir).exists(), "the shared metrics directory is removed"
    assert _health(port)[0] == 0, "nothing listens after shutdown"
    for pid in workers:
        wait_sync(lambda pid=pid: not Path(f"/proc/{pid}").exists(), timeout=10, what="exit")


def _exercise_workers(port: int, proc: subprocess.Popen[str]) -> tuple[str, set[int]]:
    """Requests spread over both workers, metrics summed, a killed worker replaced: returns
    the shared metrics directory and the workers running at the end."""
    _wait_healthy(port, proc)
    wait_sync(lambda: len(_workers(proc.pid)) == 2, timeout=30, what="two workers")
    first = _workers(proc.pid)
    for _ in range(20):  # every connection is answered, whichever worker takes it
        assert _health(port)[0] == 200
    for _ in range(30):  # one connection each: the kernel spreads them over the workers
        assert _status(f"http://127.0.0.1:{port}/api/jobs") == 401
    # A request is counted once its response has been sent, so the client can read the
    # last response a moment before its worker counts it: wait for the count, then check
    # that whichever worker answers the scrape reports all of them.
    wait_sync(
        lambda: _requests_counted(port, route="/api/jobs", status="401") >= 30,
        timeout=10,
        what="30 requests counted",
    )
    for _ in range(6):
        assert _requests_counted(port, route="/api/jobs", status="401") == 30
    metrics_dir = _environ(min(first))["PROMETHEUS_MULTIPROC_DIR"]
    assert Path(metrics_dir).is_dir()

    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_sync(
        lambda: len(_workers(proc.pid)) == 2 and victim not in _workers(proc.pid),
        timeout=30,
        what="the killed worker replaced",
    )
    _wait_healthy(port, proc)
    counted = _requests_counted(port, route="/api/jobs", status="401")
    assert counted == 30, "the killed worker's counts stay in the sum"
    return metrics_dir, _workers(proc.pid)
