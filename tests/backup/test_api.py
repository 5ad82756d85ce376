"""Admin-only `/api/backups` over real HTTP, with real API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.app import create_app
from cronicorn.auth.service import create_user_with_api_key
from cronicorn.backup import pg
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from support import serve_app, until


@dataclass
class Api:
    base: str
    http: aiohttp.ClientSession
    admin: dict[str, str]
    user: dict[str, str]

    async def call(self, method: str, path: str, headers: dict[str, str] | None) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path, headers=headers or {}) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def api(seeded: str, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Api]:
    settings = load_settings(
        DATABASE_URL=seeded,
        AUTH_SECRET="s" * 40,
        BACKUP_DIR=str(tmp_path / "api-backups"),
        RATE_LIMIT_READ_RPM=1_000_000,
        RATE_LIMIT_WRITE_RPM=1_000_000,
    )
    _, admin_key = await create_user_with_api_key(engine, "root@example.com", is_admin=True)
    _, user_key = await create_user_with_api_key(engine, "someone@example.com")
    app = create_app(Runtime.create(settings, seeded))
    async with serve_app(app) as base, aiohttp.ClientSession() as http:
        yield Api(base, http, {"x-api-key": admin_key}, {"x-api-key": user_key})


async def test_only_admins_reach_backups(api: Api) -> None:
    assert (await api.call("GET", "/api/backups", None))[0] == 401
    for method, path in [
        ("GET", "/api/backups"),
        ("POST", "/api/backups"),
        ("POST", "/api/backups/cronicorn-20260101T000000Z/verify"),
    ]:
        status, body = await api.call(method, path, api.user)
        assert status == 403, (method, path)
        assert body["error"]["code"] == "forbidden"


async def test_admin_starts_lists_and_verifies_a_backup(api: Api) -> None:
    status, body = await api.call("POST", "/api/backups", api.admin)
    assert status == 202
    name = body["name"]
    assert name.startswith("cronicorn-")

    async def listed() -> bool:
        _, listing = await api.call("GET", "/api/backups", api.admin)
        return any(b["name"] == name for b in listing["backups"])

    await until(listed, timeout=60, what="the background backup to appear")
    status, report = await api.call("POST", f"/api/backups/{name}/verify", api.admin)
    assert status == 200
    assert report["ok"] is True
    assert {c["name"] for c in report["checks"]} >= {"row counts", "SELECT count(*) FROM jobs"}
    _, listing = await api.call("GET", "/api/backups", api.admin)
    [item] = listing["backups"]
    assert item["verified"] is True
    assert item["kind"] == "manual"
    assert report["scratch"] == "server", "auto: this role may create databases"
    path = f"/api/backups/{name}/verify?scratch=embedded"
    status, embedded = await api.call("POST", path, api.admin)
    assert status == 200
    assert embedded["scratch"] == "embedded", "the query parameter is honoured"
    assert embedded["ok"] is True
    status, body = await api.call("POST", f"/api/backups/{name}/verify?scratch=moon", api.admin)
    assert status == 422, body


async def test_busy_and_unknown(api: Api, seeded: str) -> None:
    held = pg.try_backup_lock(seeded)
    try:
        status, body = await api.call("POST", "/api/backups", api.admin)
    finally:
        pg.release_backup_lock(held)
    assert status == 409
    assert "another backup or restore" in body["error"]["message"]
    for name in ("cronicorn-19990101T000000Z", "..", "a%2Fb"):
        status, _ = await api.call("POST", f"/api/backups/{name}/verify", api.admin)
        assert status == 404, name


def test_the_api_reaches_backups_only_through_the_service() -> None:
    """Architecture rule: `api` may use `backup.service`, no other backup module."""
    import ast
    from pathlib import Path

    import cronicorn.api

    offenders = []
    for path in Path(cronicorn.api.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                inside = name.startswith("cronicorn.backup.")
                if inside and not name.startswith("cronicorn.backup.service"):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
