"""`/api/health`, request ids and the error envelope, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import psycopg
import pytest

from conftest import PgServer
from cronicorn import __version__
from cronicorn.app import create_app
from cronicorn.config import load_settings
from cronicorn.embedded import EmbeddedPostgres
from cronicorn.runtime import Runtime
from cronicorn.serve import make_runtime
from support import free_port, serve_app, until


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _runtime(url: str) -> Runtime:
    settings = load_settings(DATABASE_URL=url, AUTH_SECRET="t" * 40)
    return Runtime.create(settings, url)


async def _health(http: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, object]]:
    async with http.get(f"{base}/api/health") as resp:
        return resp.status, await resp.json()


async def test_health_ok_when_database_reachable_and_current(
    database_url: str, http: aiohttp.ClientSession
) -> None:
    async with serve_app(create_app(_runtime(database_url))) as base:
        status, body = await _health(http, base)
    assert status == 200
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["migrations"] == "current"
    assert body["version"] == __version__


async def test_health_503_when_migrations_pending(
    pg_server: PgServer, http: aiohttp.ClientSession
) -> None:
    url = pg_server.empty_database()
    try:
        async with serve_app(create_app(_runtime(url))) as base:
            status, body = await _health(http, base)
        assert status == 503
        assert body["database"] == "ok"
        assert body["migrations"] == "pending"
    finally:
        pg_server.drop_database(url)


async def test_health_follows_database_loss_and_recovery(
    pg_server: PgServer, database_url: str, http: aiohttp.ClientSession
) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    async with serve_app(create_app(_runtime(database_url))) as base:
        assert (await _health(http, base))[0] == 200
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )

        async def unreachable() -> bool:
            status, body = await _health(http, base)
            return status == 503 and body["database"] == "unreachable"

        await until(unreachable, timeout=10, what="health to report the database lost")
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

        async def recovered() -> bool:
            return (await _health(http, base))[0] == 200

        await until(recovered, timeout=10, what="health to recover")


async def test_health_says_restarting_while_the_embedded_server_comes_back(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    http: aiohttp.ClientSession,
) -> None:
    """What a process on the embedded server reports (`make_runtime`), from the state the
    supervisors share: here a crash noted and no server running yet under this home."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    home = tmp_path / "home"
    settings = load_settings(CRONICORN_HOME=str(home), AUTH_SECRET="t" * 40)
    assert settings.embedded
    crashed_at = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    EmbeddedPostgres(home).note_crash(4242, crashed_at)
    dead = f"postgresql://user@127.0.0.1:{free_port()}/db"
    async with serve_app(create_app(make_runtime(settings, dead, role="api"))) as base:
        status, body = await _health(http, base)
    assert status == 503
    assert body["database"] == "restarting"
    assert body["embeddedDatabase"] == {
        "state": "restarting",
        "restarts": 0,
        "lastCrashAt": crashed_at.isoformat(),
        "lastRecoveredAt": None,
        "lastError": None,
    }
    async with serve_app(create_app(make_runtime(settings, database_url, role="api"))) as base:
        status, body = await _health(http, base)
    assert status == 200, "the database answers: ok, whatever the server's history says"
    assert body["database"] == "ok"


async def test_health_has_no_embedded_section_with_database_url(
    database_url: str, http: aiohttp.ClientSession
) -> None:
    settings = load_settings(DATABASE_URL=database_url, AUTH_SECRET="t" * 40)
    async with serve_app(create_app(make_runtime(settings, database_url, role="api"))) as base:
        _, body = await _health(http, base)
    assert "embeddedDatabase" not in body


async def test_request_id_is_echoed_when_well_formed_and_replaced_otherwise(
    database_url: str, http: aiohttp.ClientSession
) -> None:
    async with serve_app(create_app(_runtime(database_url))) as base:
        async with http.get(f"{base}/api/health", headers={"X-Request-Id": "abc-123"}) as resp:
            assert resp.headers["X-Request-Id"] == "abc-123"
        bad = "no spaces allowed <script>"
        async with http.get(f"{base}/api/health", headers={"X-Request-Id": bad}) as resp:
            generated = resp.headers["X-Request-Id"]
            assert generated != bad
            assert len(generated) == 32


async def test_unknown_route_uses_the_error_envelope(
    database_url: str, http: aiohttp.ClientSession
) -> None:
    async with (
        serve_app(create_app(_runtime(database_url))) as base,
        http.get(f"{base}/api/nope", headers={"X-Request-Id": "rid-1"}) as resp,
    ):
        assert resp.status == 404
        body = await resp.json()
    assert body["error"]["code"] == "not_found"
    assert body["error"]["requestId"] == "rid-1"
    assert set(body["error"]) == {"code", "message", "details", "requestId"}
