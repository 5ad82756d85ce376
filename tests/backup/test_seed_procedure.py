"""The operator page's manual procedure, to the letter, against an embedded server with its
bundled binaries (`EmbeddedPostgres.env()` puts them on PATH with PGHOST/PGPORT):
`pg_dump -U user -d db --no-owner --no-acl | gzip`, stop the app, drop and create `db` with
`psql -U user -c`, `gunzip -c … | psql -U user -d db`, start again, nothing to migrate,
health ok, data present. Then its "Backup Verification" section on a second, scratch server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backup.backup_support import counts
from cronicorn.embedded import EmbeddedPostgres
from support import cli_env, free_port, run_cli, start_cli, wait_sync

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("backup-seed")]


def _sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _get(port: int, path: str, key: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if key:
        request.add_header("x-api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def _start_app(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    app = start_cli("up", env=env)

    def healthy() -> bool:
        if app.poll() is not None:
            raise AssertionError(f"cronicorn up exited: {app.communicate()}")
        return _get(port, "/api/health")[0] == 200

    wait_sync(healthy, timeout=90, what="cronicorn up to be healthy")
    return app


def _stop_app(app: subprocess.Popen[str]) -> None:
    app.send_signal(signal.SIGTERM)
    app.communicate(timeout=30)
    assert app.returncode == 0


def _create_data(url: str) -> None:
    """Jobs, endpoints and recent runs for the first admin, with plain SQL."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO jobs (id, user_id, name) SELECT 'job-' || g, u.id, 'nightly ' || g "
            "FROM users u, generate_series(1, 2) g WHERE u.email = 'admin@example.com'"
        )
        conn.execute(
            "INSERT INTO endpoints (id, job_id, user_id, name, url, baseline_interval_ms, "
            "next_run_at) SELECT 'ep-' || g, 'job-' || (g % 2 + 1), j.user_id, 'ping ' || g, "
            "'https://example.com/' || g, 60000, now() + interval '1 hour' "
            "FROM generate_series(1, 4) g JOIN jobs j ON j.id = 'job-' || (g % 2 + 1)"
        )
        conn.execute(
            "INSERT INTO runs (id, endpoint_id, user_id, status, source, started_at, due_at, "
            "finished_at, duration_ms, status_code) SELECT 'run-' || g, 'ep-' || (g % 4 + 1), "
            "e.user_id, 'success', 'baseline-interval', now() - g * interval '1 minute', "
            "now() - g * interval '1 minute', now() - g * interval '1 minute' + interval "
            "'80 ms', 80, 200 FROM generate_series(1, 40) g JOIN endpoints e "
            "ON e.id = 'ep-' || (g % 4 + 1)"
        )


@dataclass
class Site:
    env: dict[str, str]
    pg_env: dict[str, str]
    port: int
    url: str
    dump: Path
    expected: dict[str, int]
    app: subprocess.Popen[str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A running Cronicorn (embedded) with data, and the page's compressed dump of it."""
    root = tmp_path_factory.mktemp("seed")
    port = free_port()
    env = cli_env(CRONICORN_HOME=str(root / "home"), HOST="127.0.0.1", PORT=str(port))
    assert run_cli("db", "start", env=env).returncode == 0
    app = _start_app(env, port)
    try:
        url = run_cli("db", "url", env=env).stdout.strip()
        _create_data(url)
        pg_env = {**env, **EmbeddedPostgres(root / "home").env()}
        dump = root / "backups" / "cronicorn-backup-20250115.sql.gz"
        dump.parent.mkdir()
        made = _sh(f"pg_dump -U user -d db --no-owner --no-acl | gzip > {dump}", pg_env)
        assert made.returncode == 0, made.stderr
        yield Site(env, pg_env, port, url, dump, counts(url), app)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
        run_cli("db", "stop", "--force", env=env)


def test_restore_procedure(site: Site) -> None:
    # 1. Stop application services: everything except the database
    _stop_app(site.app)
    assert _get(site.port, "/api/health")[0] == 0
    # 2. Restore the database
    for statement in ("DROP DATABASE IF EXISTS db;", "CREATE DATABASE db;"):
        done = _sh(f'psql -U user -c "{statement}"', site.pg_env)
        assert done.returncode == 0, done.stderr
    with psycopg.connect(site.url) as conn:
        assert conn.execute("SELECT to_regclass('jobs')").fetchone() == (None,), "empty db"
    loaded = _sh(f"gunzip -c {site.dump} | psql -U user -d db", site.pg_env)
    assert loaded.returncode == 0, loaded.stderr
    assert "ERROR" not in loaded.stderr, loaded.stderr
    # 3. Restart services: the migrator finds nothing pending
    site.app = _start_app(site.env, site.port)
    migrated = run_cli("migrate", env=site.env)
    assert migrated.returncode == 0, migrated.stderr
    assert "No pending migrations" in migrated.stdout
    # 4. Verify: health, then jobs, endpoints and recent runs as a signed-in user sees them
    status, health = _get(site.port, "/api/health")
    assert status == 200
    assert health["migrations"] == "current"
    assert counts(site.url) == site.expected
    key = run_cli(
        "apikey", "create", "--user", "admin@example.com", "--name", "restore-check", env=site.env
    ).stdout.strip()
    status, jobs = _get(site.port, "/api/jobs", key)
    assert status == 200
    assert sorted(j["name"] for j in jobs["jobs"]) == ["nightly 1", "nightly 2"]
    status, endpoints = _get(site.port, "/api/jobs/job-1/endpoints", key)
    assert status == 200, endpoints
    assert len(endpoints["endpoints"]) == 2
    status, runs = _get(site.port, "/api/endpoints/ep-1/runs?limit=5", key)
    assert status == 200, runs
    assert runs["total"] == 10
    assert len(runs["runs"]) == 5
    _stop_app(site.app)


def test_backup_verification_section(site: Site, tmp_path: Path) -> None:
    """ "Start a temporary database", restore into it, `\\dt`, count jobs, clean up."""
    scratch_env = cli_env(CRONICORN_HOME=str(tmp_path / "pg-test"))
    assert run_cli("db", "start", env=scratch_env).returncode == 0
    try:
        pg_test = {**scratch_env, **EmbeddedPostgres(tmp_path / "pg-test").env()}
        loaded = _sh(f"gunzip -c {site.dump} | psql -U user -d db", pg_test)
        assert loaded.returncode == 0, loaded.stderr
        assert "ERROR" not in loaded.stderr
        tables = _sh('psql -U user -d db -c "\\dt"', pg_test)
        assert tables.returncode == 0, tables.stderr
        for name in ("jobs", "endpoints", "runs", "users", "alembic_version"):
            assert f" {name} " in tables.stdout, tables.stdout
        jobs = _sh('psql -U user -d db -c "SELECT count(*) FROM jobs;"', pg_test)
        assert jobs.stdout.split()[2] == str(site.expected["jobs"]), jobs.stdout
    finally:
        assert run_cli("db", "stop", env=scratch_env).returncode == 0
