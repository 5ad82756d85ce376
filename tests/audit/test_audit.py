"""The audit log: triggers record every change to audited tables, whoever makes it; the API
names its actor and request; secrets are redacted; the scheduler's hot-path writes are not
changes; `GET /api/audit` is scoped to the caller (admins see all) and pages by cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Client, Served, credentials, serving
from conftest import PgServer
from cronicorn.store.db import make_async_engine
from cronicorn.store.tables import audit_log, endpoints

ENDPOINT = {
    "name": "ping",
    "url": "https://example.com/ping",
    "baselineIntervalMs": 60000,
    "headersJson": {"Authorization": "Bearer hunter2-secret"},
}


@pytest.fixture(scope="module")
async def app(pg_server: PgServer) -> AsyncIterator[tuple[Served, AsyncEngine, str]]:
    url = pg_server.create_database()
    engine = make_async_engine(url, pool_size=3, max_overflow=3)
    try:
        async with serving(url, engine) as served:
            yield served, engine, url
    finally:
        await engine.dispose()
        pg_server.drop_database(url)


async def entries(engine: AsyncEngine, **where: Any) -> list[dict[str, Any]]:
    query = select(audit_log).order_by(audit_log.c.id)
    for key, value in where.items():
        query = query.where(audit_log.c[key] == value)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def call(c: Client, method: str, path: str, body: Any = None, rid: str = "") -> Any:
    headers = {**c.headers, **({"x-request-id": rid} if rid else {})}
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    async with c.http.request(method, f"{c.base}/api{path}", **kwargs) as resp:
        is_json = resp.content_type == "application/json"
        return resp.status, (await resp.json()) if is_json else None


async def test_api_changes_are_recorded_with_actor_request_and_redacted_secrets(
    app: tuple[Served, AsyncEngine, str],
) -> None:
    served, engine, _ = app
    a = served.a
    status, job = await call(a, "POST", "/jobs", {"name": "nightly"}, rid="req-create-job")
    assert status == 201
    status, ep = await call(a, "POST", f"/jobs/{job['id']}/endpoints", ENDPOINT, rid="req-ep")
    assert status == 201
    status, _ = await call(
        a,
        "PATCH",
        f"/jobs/{job['id']}/endpoints/{ep['id']}",
        {"name": "pong", "headersJson": {"Authorization": "Bearer other-secret"}},
        rid="req-patch",
    )
    assert status == 200
    status, _ = await call(
        a, "POST", f"/endpoints/{ep['id']}/pause", {"pausedUntil": "2099-01-01T00:00:00Z"}
    )
    assert status in (200, 204)
    created = await entries(engine, entity="job", entity_id=job["id"])
    assert [e["action"] for e in created] == ["create"]
    assert created[0]["actor_kind"] == "api_key"
    assert created[0]["request_id"] == "req-create-job"
    assert created[0]["user_id"] == a.user_id
    assert created[0]["changes"]["name"] == {"from": None, "to": "nightly"}
    log = await entries(engine, entity="endpoint", entity_id=ep["id"])
    assert [e["action"] for e in log] == ["create", "update", "update"]
    patch = log[1]
    assert patch["request_id"] == "req-patch"
    assert patch["changes"]["name"] == {"from": "ping", "to": "pong"}
    assert patch["changes"]["headers_json"] == {"from": "[redacted]", "to": "[redacted]"}
    assert "paused_until" in log[2]["changes"]
    everything = str(await entries(engine))
    assert "hunter2-secret" not in everything
    assert "other-secret" not in everything


async def test_hot_path_writes_are_not_changes_but_direct_sql_is(
    app: tuple[Served, AsyncEngine, str],
) -> None:
    served, engine, _ = app
    _, job = await call(served.a, "POST", "/jobs", {"name": "hot"})
    _status, ep = await call(served.a, "POST", f"/jobs/{job['id']}/endpoints", ENDPOINT)
    before = len(await entries(engine))
    async with engine.begin() as conn:  # what the claim, heartbeat and batch write change
        await conn.execute(
            update(endpoints)
            .where(endpoints.c.id == ep["id"])
            .values(
                next_run_at=datetime(2030, 1, 1, tzinfo=UTC),
                lease_owner="w1",
                lease_until=func.now(),
                failure_count=3,
                last_run_at=func.now(),
                version=endpoints.c.version + 1,
            )
        )
    assert len(await entries(engine)) == before
    async with engine.begin() as conn:  # psql by hand: no actor set, still recorded
        await conn.execute(
            update(endpoints).where(endpoints.c.id == ep["id"]).values(url="https://x.test/")
        )
    (last,) = (await entries(engine))[before:]
    assert last["actor_kind"] == "system"
    assert last["changes"] == {"url": {"from": "https://example.com/ping", "to": "https://x.test/"}}


async def test_import_and_channel_changes_are_recorded(
    app: tuple[Served, AsyncEngine, str],
) -> None:
    served, engine, _ = app
    doc = {"version": 1, "jobs": [{"name": "imported", "endpoints": [ENDPOINT]}]}
    status, body = await call(served.a, "POST", "/import", doc, rid="req-import")
    assert status == 200, body
    imported = [e for e in await entries(engine) if e["request_id"] == "req-import"]
    assert {e["entity"] for e in imported} == {"job", "endpoint"}
    assert all(e["actor_kind"] == "api_key" for e in imported)
    status, ch = await call(
        served.a,
        "POST",
        "/channels",
        {"name": "c", "url": "json://example.com/h?token=tok-123456", "test": False},
    )
    assert status == 201
    (made,) = await entries(engine, entity="channel", entity_id=ch["id"])
    assert made["changes"]["url_encrypted"] == {"from": None, "to": "[redacted]"}
    assert "tok-123456" not in str(made)


async def test_get_audit_is_scoped_filtered_and_paged(
    app: tuple[Served, AsyncEngine, str],
) -> None:
    served, engine, _ = app
    a, b = served.a, served.b
    for i in range(5):
        status, _ = await call(b, "POST", "/jobs", {"name": f"b-{i}"})
        assert status == 201
    status, page = await b.call("GET", "/audit", entity="job", limit=2)
    assert status == 200, page
    seen = [e["entityId"] for e in page["entries"]]
    assert len(seen) == 2
    while page["nextCursor"]:
        status, page = await b.call(
            "GET", "/audit", entity="job", limit=2, cursor=page["nextCursor"]
        )
        seen += [e["entityId"] for e in page["entries"]]
    assert len(seen) == len(set(seen)) == 5
    status, mine = await b.call("GET", "/audit")
    kinds = {(e["entity"], e["actor"]["kind"]) for e in mine["entries"]}
    assert kinds == {("job", "api_key"), ("user", "system"), ("api_key", "system")}
    a_jobs = {e["entity_id"] for e in await entries(engine, user_id=a.user_id)}
    assert a_jobs.isdisjoint({e["entityId"] for e in mine["entries"]})
    for cursor in ("abc", "\u00b3", "1\u00b2"):  # "³" is a digit to str.isdigit, not to int()
        status, _bad = await b.call("GET", "/audit", cursor=cursor)
        assert status == 422, (cursor, _bad)
    for field in ("actor", "entityId"):  # PostgreSQL text cannot hold NUL: a 422, not a 500
        status, bad = await b.call("GET", "/audit", **{field: "a\x00b"})
        assert status == 422, bad
    async with aiohttp.ClientSession() as http:
        _, admin_headers = await credentials(engine, "root@example.com")
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE users SET is_admin = true WHERE email = 'root@example.com'")
            )
        admin = Client(served.base, http, admin_headers, "")
        status, everyone = await admin.call("GET", "/audit", limit=500)
    assert status == 200
    owners_seen = {e["entityId"] for e in everyone["entries"]}
    assert a_jobs & owners_seen


@pytest.mark.slow
async def test_cli_changes_are_recorded_and_cronicorn_audit_shows_them(
    app: tuple[Served, AsyncEngine, str],
) -> None:
    import json

    from support import cli_env, run_cli

    _, _engine, url = app
    env = cli_env(DATABASE_URL=url, AUTH_SECRET="s" * 40)
    made = run_cli("apikey", "create", "--user", "a@example.com", "--name", "ci-key", env=env)
    assert made.returncode == 0, made.stderr
    shown = run_cli("audit", "--entity", "api_key", "--json", "--limit", "5", env=env)
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)["entries"]
    newest = listed[0]
    assert newest["action"] == "create"
    assert newest["changes"]["name"] == {"from": None, "to": "ci-key"}
    assert newest["changes"]["key_hash"]["to"] == "[redacted]"
    assert newest["actor"]["kind"] == "system"
    assert made.stdout.strip() not in shown.stdout
