"""The reference's clients against our real API: every route its MCP server's tools call (and
the web client's dashboard, sessions, devices and sign-in options) answers what the
reference's response schemas accept. Unset optional fields must be absent (zod's
`.optional()` refuses `null`), nullable ones present. Requests are sent as those clients
send them, stray path ids in bodies included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Client, Served, add_run, add_session, serving
from contract import reference_schemas as ref
from cronicorn.auth.service import start_session
from support import serve_app


@pytest.fixture
async def served(database_url: str, engine: AsyncEngine) -> AsyncIterator[Served]:
    async with serving(database_url, engine) as served:
        yield served


def conforms(schema: ref.Schema, body: Any, what: str) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in Draft202012Validator(schema).iter_errors(body)
    ]
    assert not errors, f"{what} does not match the reference's schema:\n" + "\n".join(errors)


async def tool(client: Client, method: str, path: str, schema: ref.Schema, body: Any = None) -> Any:
    """One MCP tool call: the API's answer (a 204 becomes `{}`), checked like the tool does."""
    status, reply = await client.call(method, path, body)
    assert 200 <= status < 300, (method, path, status, reply)
    reply = {} if status == 204 else reply
    conforms(schema, reply, f"{method} {path}")
    return reply


async def test_job_and_endpoint_tools(served: Served) -> None:
    a = served.a
    job = await tool(a, "POST", "/jobs", ref.JOB, {"name": "nightly"})
    assert "description" not in job
    jid = job["id"]
    await tool(a, "GET", f"/jobs/{jid}", ref.JOB)
    await tool(a, "PATCH", f"/jobs/{jid}", ref.JOB, {"description": "reports"})

    plain = {"name": "ping", "url": "https://example.com/p", "method": "GET"}
    minimal = await tool(
        a, "POST", f"/jobs/{jid}/endpoints", ref.ENDPOINT, {**plain, "baselineIntervalMs": 60000}
    )
    full = await tool(
        a,
        "POST",
        f"/jobs/{jid}/endpoints",
        ref.ENDPOINT,
        {
            **plain,
            "name": "full",
            "method": "POST",
            "description": "nightly report",
            "baselineCron": "0 3 * * *",
            "minIntervalMs": 60000,
            "maxIntervalMs": 3600000,
            "headersJson": {"x-k": "v"},
            "bodyJson": {"n": 1},
            "timeoutMs": 5000,
            "maxExecutionTimeMs": 60000,
            "maxResponseSizeKb": 64,
        },
    )
    assert full["headersJson"] == {"x-k": "v"}
    assert not {"description", "baselineCron", "lastRunAt", "pausedUntil"} & set(minimal)
    await tool(a, "GET", f"/jobs/{jid}/endpoints/{minimal['id']}", ref.ENDPOINT)
    listed = await tool(a, "GET", f"/jobs/{jid}/endpoints", ref.ENDPOINT_LIST)
    assert len(listed["endpoints"]) == 2
    await tool(a, "PATCH", f"/jobs/{jid}/endpoints/{full['id']}", ref.ENDPOINT, {"timeoutMs": None})
    await tool(a, "GET", "/jobs", ref.JOB_LIST)

    ep = f"/endpoints/{minimal['id']}"
    detail = f"/jobs/{jid}/endpoints/{minimal['id']}"
    await tool(a, "POST", f"{ep}/hints/interval", ref.EMPTY, {"intervalMs": 30000})
    await tool(a, "POST", f"{ep}/hints/oneshot", ref.EMPTY, {"nextRunInMs": 60000})
    until_ = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    await tool(a, "POST", f"{ep}/pause", ref.EMPTY, {"pausedUntil": until_, "reason": "x"})
    steered = await tool(a, "GET", detail, ref.ENDPOINT)
    assert {"aiHintIntervalMs", "aiHintNextRunAt", "aiHintExpiresAt", "pausedUntil"} <= set(steered)
    await tool(a, "POST", f"{ep}/pause", ref.EMPTY, {"pausedUntil": None})
    await tool(a, "DELETE", f"{ep}/hints", ref.EMPTY)
    await tool(a, "POST", f"{ep}/reset-failures", ref.EMPTY, {"id": minimal["id"]})
    cleared = await tool(a, "GET", detail, ref.ENDPOINT)
    assert not {"aiHintIntervalMs", "aiHintReason", "pausedUntil"} & set(cleared)

    # Body-less routes get the path ids as a body from the reference's clients.
    paused = await tool(a, "POST", f"/jobs/{jid}/pause", ref.JOB, {"id": jid})
    resumed = await tool(a, "POST", f"/jobs/{jid}/resume", ref.JOB, {"id": jid})
    assert (paused["status"], resumed["status"]) == ("paused", "active")
    archived = await tool(
        a,
        "POST",
        f"/jobs/{jid}/endpoints/{full['id']}/archive",
        ref.ENDPOINT,
        {"jobId": jid, "id": full["id"]},
    )
    assert "archivedAt" in archived
    gone = await tool(a, "DELETE", f"/jobs/{jid}", ref.JOB)
    assert gone["status"] == "archived"
    assert "archivedAt" in gone


async def test_history_and_run_now_tools(served: Served, engine: AsyncEngine) -> None:
    a = served.a
    _, job = await a.call("POST", "/jobs", {"name": "j"})
    target = FastAPI()

    @target.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    async with serve_app(target) as target_base:
        spec = {"name": "t", "url": f"{target_base}/ok", "baselineIntervalMs": 60000}
        _, ep = await a.call("POST", f"/jobs/{job['id']}/endpoints", spec)
        _, idle = await a.call("POST", f"/jobs/{job['id']}/endpoints", {**spec, "name": "idle"})
        passed = await tool(a, "POST", f"/endpoints/{ep['id']}/test", ref.TEST_RESULT, {})
        assert (passed["status"], passed["statusCode"]) == ("success", 200)
        assert "errorMessage" not in passed
    # The target is gone: the call fails without a status code.
    failed = await tool(a, "POST", f"/endpoints/{ep['id']}/test", ref.TEST_RESULT, {})
    assert failed["status"] == "failed"
    assert "statusCode" not in failed
    assert failed["responseBody"] is None  # nullable in the reference: kept as null

    now = datetime.now(UTC)
    async with engine.begin() as conn:
        running = await add_run(
            conn, user_id=a.user_id, endpoint_id=ep["id"], started_at=now, status="running"
        )
        silent = await add_run(
            conn,
            user_id=a.user_id,
            endpoint_id=ep["id"],
            started_at=now - timedelta(minutes=1),
            status="failed",
            duration_ms=None,
        )
    runs = await tool(a, "GET", f"/endpoints/{ep['id']}/runs", ref.RUN_LIST)
    assert runs["total"] == 4
    by_id = {r["runId"]: r for r in runs["runs"]}
    assert "durationMs" not in by_id[running]
    assert "durationMs" not in by_id[silent]
    for run_id in [*by_id, passed["runId"]]:
        run = await tool(a, "GET", f"/runs/{run_id}", ref.RUN_DETAILS)
        assert "responseBody" in run  # nullable: present, possibly null
    assert "finishedAt" not in (await a.call("GET", f"/runs/{running}"))[1]

    health = await tool(a, "GET", f"/endpoints/{ep['id']}/health", ref.HEALTH)
    assert health["lastRun"] is not None
    empty = await tool(a, "GET", f"/endpoints/{idle['id']}/health", ref.HEALTH)
    assert (empty["avgDurationMs"], empty["lastRun"]) == (None, None)


async def test_signing_key_tools(served: Served) -> None:
    a = served.a
    none = await tool(a, "GET", "/signing-keys", ref.SIGNING_KEY_INFO)
    assert (none["keyPrefix"], none["createdAt"], none["rotatedAt"]) == (None, None, None)
    await tool(a, "POST", "/signing-keys", ref.SIGNING_KEY_CREATED, {})
    await tool(a, "POST", "/signing-keys/rotate", ref.SIGNING_KEY_CREATED, {})
    info = await tool(a, "GET", "/signing-keys", ref.SIGNING_KEY_INFO)
    assert info["rotatedAt"] is not None


async def test_web_client_routes(served: Served, engine: AsyncEngine) -> None:
    """Dashboard, AI sessions, devices and sign-in options, as the web client reads them."""
    a = served.a
    _, job = await a.call("POST", "/jobs", {"name": "j"})
    _, ep = await a.call(
        "POST",
        f"/jobs/{job['id']}/endpoints",
        {"name": "e", "url": "https://example.com", "baselineIntervalMs": 60000},
    )
    now = datetime.now(UTC).replace(microsecond=0)
    async with engine.begin() as conn:
        await add_run(conn, user_id=a.user_id, endpoint_id=ep["id"], started_at=now)
        await add_run(
            conn,
            user_id=a.user_id,
            endpoint_id=ep["id"],
            started_at=now - timedelta(minutes=5),
            status="running",
        )
        quiet = await add_session(conn, user_id=a.user_id, endpoint_id=ep["id"], analyzed_at=now)
        warned = await add_session(
            conn,
            user_id=a.user_id,
            endpoint_id=ep["id"],
            analyzed_at=now - timedelta(minutes=1),
            warnings=[{"code": "missing_reasoning", "message": "no reasoning"}],
        )
        await start_session(
            conn,
            a.user_id,
            kind="device",
            now=now,
            ttl=timedelta(days=1),
            user_agent=None,
            ip_address=None,
        )

    sessions = await tool(a, "GET", f"/endpoints/{ep['id']}/sessions", ref.SESSION_LIST)
    assert [s["id"] for s in sessions["sessions"]] == [quiet, warned]
    await tool(a, "GET", f"/sessions/{warned}", ref.SESSION_DETAIL)

    # The web client sends `Date.toString()` text; ISO 8601 works too.
    js_start = (now - timedelta(days=1)).strftime("%a %b %d %Y %H:%M:%S GMT+0000")
    js_end = (now + timedelta(hours=1)).strftime("%a %b %d %Y %H:%M:%S GMT+0000")
    window = {
        "startDate": f"{js_start} (Coordinated Universal Time)",
        "endDate": f"{js_end} (Coordinated Universal Time)",
    }
    iso = {
        "startDate": (now - timedelta(days=1)).isoformat(),
        "endDate": (now + timedelta(hours=1)).isoformat(),
    }
    stats: dict[str, Any] = {}
    for query in (window, iso):
        status, stats[query["startDate"]] = await a.call("GET", "/dashboard/stats", **query)
        assert status == 200, stats
        conforms(ref.DASHBOARD_STATS, stats[query["startDate"]], "GET /dashboard/stats")
    assert stats[window["startDate"]] == stats[iso["startDate"]]
    status, activity = await a.call("GET", "/dashboard/activity", **window)
    assert (status, activity["total"]) == (200, 4), activity
    conforms(ref.ACTIVITY, activity, "GET /dashboard/activity")

    devices = await tool(a, "GET", "/devices", ref.DEVICES)
    [device] = devices["devices"]
    assert (device["userAgent"], device["ipAddress"]) == (None, None)
    await tool(a, "DELETE", f"/devices/{device['id']}", ref.DEVICE_REVOKED)
    async with a.http.get(f"{served.base}/api/auth/config") as resp:
        conforms(ref.AUTH_CONFIG, await resp.json(), "GET /api/auth/config")


def test_the_contract_schemas_refuse_null_for_absent_fields() -> None:
    """The schemas catch what broke the reference's clients: `null` in an optional field."""
    job = {
        "id": "j",
        "userId": "u",
        "name": "n",
        "status": "active",
        "createdAt": "2025-03-10T12:00:00.000Z",
        "updatedAt": "2025-03-10T12:00:00.000Z",
    }
    conforms(ref.JOB, job, "a job")
    with pytest.raises(AssertionError, match="description"):
        conforms(ref.JOB, {**job, "description": None}, "a job")
    with pytest.raises(AssertionError, match="createdAt"):
        conforms(ref.JOB, {**job, "createdAt": "2025-03-10T12:00:00+00:00"}, "a job")
