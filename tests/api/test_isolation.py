"""Every route in the OpenAPI document, called by user B with user A's ids: B can neither read
nor change A's data (404 on routes that name a resource; no trace of A elsewhere), and A's
rows are byte-for-byte unchanged afterwards. A new route fails here until it is listed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Client, Served, add_run, add_session
from cronicorn.api.app import create_api
from cronicorn.auth.service import start_session
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from cronicorn.store import signing_keys as key_store
from cronicorn.store import suggestions as suggestion_store
from cronicorn.store.tables import (
    ai_sessions,
    ai_suggestions,
    api_keys,
    endpoints,
    jobs,
    runs,
    sessions,
    signing_keys,
    users,
)

SOON = (datetime.now(UTC) + timedelta(days=1)).isoformat()
ENDPOINT = {"name": "ping", "url": "https://example.com/ping", "baselineIntervalMs": 60000}
RANGE = {"startDate": "2020-01-01T00:00:00Z", "endDate": "2020-12-01T00:00:00Z"}

# A valid body for every operation that takes one, so a 404 is about ownership, not input.
# Callables get A's ids (for routes that name a resource in the body).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/auth/api-key/create"): {"name": "b-key"},
    ("POST", "/auth/change-password"): {"currentPassword": "x" * 12, "newPassword": "y" * 12},
    ("POST", "/auth/api-key/delete"): lambda ids: {"keyId": ids["api_key"]},
    ("POST", "/users"): {"email": "c@example.com"},
    ("POST", "/jobs"): {"name": "b-job"},
    ("PATCH", "/jobs/{id}"): {"name": "stolen"},
    ("POST", "/jobs/{jobId}/endpoints"): ENDPOINT,
    ("PATCH", "/jobs/{jobId}/endpoints/{id}"): {"name": "stolen", "baselineIntervalMs": 5000},
    ("POST", "/endpoints/{id}/hints/interval"): {"intervalMs": 5000},
    ("POST", "/endpoints/{id}/hints/oneshot"): {"nextRunInMs": 1000},
    ("POST", "/endpoints/{id}/pause"): {"pausedUntil": SOON},
    ("POST", "/import"): {"version": 1, "jobs": [{"name": "b-import", "endpoints": [ENDPOINT]}]},
    ("POST", "/channels"): {"name": "b-ch", "url": "json://example.com/hook", "test": False},
    ("PATCH", "/channels/{id}"): {"name": "stolen"},
    ("PUT", "/jobs/{id}/notify"): {"notify": None},
    ("PUT", "/endpoints/{id}/notify"): {"notify": None},
}
# Our resources answer 404 to other users; admin-only routes may answer 403 to non-admins.
OURS = ("/jobs", "/endpoints", "/runs", "/sessions", "/suggestions", "/channels")
QUERIES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/dashboard/stats"): RANGE,
    ("GET", "/dashboard/activity"): RANGE,
}
# Which of A's ids fill each path parameter, by path prefix.
PARAMS = {
    "/users/{user_id}": {"user_id": "user"},
    "/devices/{session_id}": {"session_id": "browser_session"},
    "/auth/api-key/{key_id}": {"key_id": "api_key"},
    "/backups/{name}": {"name": "backup"},  # operator-level: a non-admin gets 403
    "/jobs/{id}": {"id": "job"},
    "/jobs/{jobId}/endpoints": {"jobId": "job", "id": "endpoint"},
    "/endpoints/{id}": {"id": "endpoint"},
    "/runs/{id}": {"id": "run"},
    "/sessions/{id}": {"id": "session"},
    "/suggestions/{id}": {"id": "suggestion"},
    "/channels/{id}": {"id": "channel"},
}


def _operations() -> list[tuple[str, str]]:
    settings = load_settings(AUTH_SECRET="s" * 40)
    api = create_api(Runtime.create(settings, "postgresql://nobody@127.0.0.1:9/none"))
    doc = api.openapi()
    return sorted(
        (method.upper(), path)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if op.get("security")
    )


OPERATIONS = _operations()


def test_every_protected_route_is_covered() -> None:
    assert len(OPERATIONS) >= 30
    for _method, path in OPERATIONS:
        if "{" in path:
            assert any(path.startswith(p) for p in PARAMS), f"add {path} to PARAMS"


async def _seed(a: Client, engine: AsyncEngine) -> dict[str, str]:
    status, job = await a.call("POST", "/jobs", {"name": "a-secret-job"})
    assert status == 201
    status, ep = await a.call("POST", f"/jobs/{job['id']}/endpoints", ENDPOINT | {"name": "a-ep"})
    assert status == 201
    status, channel = await a.call(
        "POST", "/channels", {"name": job["id"], "url": "json://example.com/a", "test": False}
    )
    assert status == 201
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        run = await add_run(conn, user_id=a.user_id, endpoint_id=ep["id"], started_at=now)
        session = await add_session(conn, user_id=a.user_id, endpoint_id=ep["id"], analyzed_at=now)
        suggestion = await suggestion_store.record(
            conn,
            endpoint_id=ep["id"],
            user_id=a.user_id,
            session_id=session,
            action="clear",
            args={},
            reason=None,
            expires_at=now + timedelta(days=1),
            now=now,
        )
        if not await key_store.list_live(conn, a.user_id, now):
            await key_store.create(conn, a.user_id, encrypted=b"k", prefix="sk_aaaa", now=now)
        api_key = await conn.scalar(select(api_keys.c.id).where(api_keys.c.user_id == a.user_id))
        _, browser = await start_session(
            conn, a.user_id, kind="browser", now=now, ttl=timedelta(days=1)
        )
    return {
        "job": job["id"],
        "endpoint": ep["id"],
        "run": run,
        "session": session,
        "suggestion": suggestion,
        "user": a.user_id,
        "api_key": str(api_key),
        "browser_session": browser.id,
        "backup": "no-such-backup",
        "channel": channel["id"],
    }


async def _snapshot(engine: AsyncEngine, user_id: str) -> str:
    out = {}
    async with engine.connect() as conn:
        for table in (
            jobs,
            endpoints,
            runs,
            ai_sessions,
            ai_suggestions,
            signing_keys,
            api_keys,
            sessions,
        ):
            rows = await conn.execute(
                select(table).where(table.c.user_id == user_id).order_by(table.c.id)
            )
            out[table.name] = [[repr(v) for v in row] for row in rows]
        user = (await conn.execute(select(users).where(users.c.id == user_id))).one()
        out["users"] = [[repr(v) for v in user]]
    return json.dumps(out)


def _paths(path: str, ids: dict[str, str], b_job: str) -> list[str]:
    prefix = next((p for p in PARAMS if path.startswith(p)), None)
    if prefix is None:
        return [path]
    filled = path
    for name, kind in PARAMS[prefix].items():
        filled = filled.replace("{" + name + "}", ids[kind])
    variants = [filled]
    if "{jobId}" in path and "{id}" in path:  # A's endpoint under B's own job
        variants.append(path.replace("{jobId}", b_job).replace("{id}", ids["endpoint"]))
    return variants


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
async def test_other_user_cannot_touch(
    shared: tuple[Served, AsyncEngine], method: str, path: str
) -> None:
    served, engine = shared
    a, b = served.a, served.b
    ids = await _seed(a, engine)
    b_job = (await b.call("POST", "/jobs", {"name": "b-own"}))[1]["id"]
    before = await _snapshot(engine, a.user_id)
    body = BODIES.get((method, path))
    if callable(body):
        body = body(ids)
    query = QUERIES.get((method, path), {})
    names_a_resource = "{" in path or (method, path) == ("POST", "/auth/api-key/delete")
    expected = {404} if path.startswith(OURS) else {403, 404}
    for url in _paths(path, ids, b_job):
        status, reply = await b.call(method, url, body, **query)
        if names_a_resource:
            assert status in expected, (url, status, reply)
        else:
            assert status < 500, (url, status, reply)
        text = json.dumps(reply)
        secrets = [v for k, v in ids.items() if k != "backup"]
        for secret in (*secrets, "a-secret-job", "a-ep", "sk_aaaa"):
            assert secret not in text, (url, secret)
    assert await _snapshot(engine, a.user_id) == before
