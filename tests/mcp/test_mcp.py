"""MCP with the SDK's own client, over streamable HTTP at `/mcp` (the real app on the test
database) and over stdio (the real `cronicorn mcp` subprocess bridged to it): every tool called
once through a realistic session, filters honoured, errors as tool errors in the API's words,
isolation between users through both transports, authentication as on `/api`, the device
flow. One served app for the whole module."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import httpx2
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Served, add_session, serving
from auth.auth_support import make_user as make_password_user
from auth.auth_support import sign_in
from conftest import PgServer
from cronicorn.api.deps import set_clock
from cronicorn.api.docs_hook import openapi_document
from cronicorn.auth.service import start_session
from cronicorn.commands.mcp import device
from cronicorn.commands.mcp.bridge import BearerAuth, BridgeConfig, api_base
from cronicorn.config import load_settings
from cronicorn.mcp import gate
from cronicorn.mcp.http import McpEndpoint, access_of
from cronicorn.mcp.tools import ALL_TOOLS
from cronicorn.runtime import Runtime
from cronicorn.store import suggestions as suggestion_store
from cronicorn.store.db import make_async_engine
from cronicorn.store.tables import api_keys, audit_log, endpoints
from mcp import Client, StdioServerParameters
from support import CLI, serve_app, until


@dataclass
class OffsetClock:
    """The wall clock moved forward by hand (device-flow polls without waiting)."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@contextlib.asynccontextmanager
async def over_http(
    base: str, headers: dict[str, str], *, mode: str = "auto"
) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    transport = streamable_http_client(f"{base}/mcp", http_client=http)
    async with http, Client(transport, cache=None, mode=mode) as client:
        yield client


@contextlib.asynccontextmanager
async def over_stdio(env: dict[str, str], errlog: TextIO) -> AsyncIterator[Client]:
    """The real `cronicorn mcp` subprocess, spoken to as a desktop agent does (handshake)."""
    params = StdioServerParameters(command=CLI, args=["mcp"], env=env)
    async with Client(stdio_client(params, errlog=errlog), cache=None, mode="legacy") as client:
        yield client


def bridge_env(base: str, home: Path, **extra: str) -> dict[str, str]:
    env = {
        "HOME": str(home),
        "CRONICORN_API_URL": f"{base}/api",
        "CRONICORN_NO_BROWSER": "1",
        "CRONICORN_API_KEY": "",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


async def ok(client: Client, name: str, arguments: dict[str, Any] | None = None) -> Any:
    """The structured result of a tool call that must succeed."""
    result = await client.call_tool(name, arguments or {})
    assert not result.is_error, (name, result.content)
    assert result.structured_content is not None, name
    return result.structured_content


async def refused(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The error body of a tool call that must fail as a tool error (not a crash)."""
    result = await client.call_tool(name, arguments)
    assert result.is_error, (name, result.structured_content)
    assert result.structured_content is not None
    error: dict[str, Any] = result.structured_content["error"]
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith(f"API Error ({error['status']}): {error['message']}")
    return error


ORIGINAL_TOOLS = {
    "createJob", "getJob", "listJobs", "updateJob", "archiveJob", "pauseJob", "resumeJob",
    "addEndpoint", "getEndpoint", "listEndpoints", "updateEndpoint", "archiveEndpoint",
    "applyIntervalHint", "scheduleOneShot", "pauseResumeEndpoint", "clearHints",
    "resetFailures", "listEndpointRuns", "getRunDetails", "getEndpointHealth", "testEndpoint",
    "getDashboardStats", "getSigningKey", "createSigningKey", "rotateSigningKey",
}  # fmt: skip
OURS = {"deleteEndpoint", "previewSchedule", "listAiSessions", "getAiSession"}


@pytest.fixture(scope="module")
async def world(pg_server: PgServer) -> AsyncIterator[tuple[Served, AsyncEngine, OffsetClock]]:
    """One app and database for the module (each test makes its own jobs)."""
    url = pg_server.create_database()
    engine = make_async_engine(url, pool_size=5, max_overflow=5)
    clock = OffsetClock()
    try:
        async with serving(url, engine) as served:
            set_clock(served.app, clock)
            yield served, engine, clock
    finally:
        await engine.dispose()
        pg_server.drop_database(url)


HOOKED: list[Any] = []  # what the receiver's /hook was sent (notification channels)


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[str]:
    """The endpoints' target: a JSON answer, and a failure."""
    app = FastAPI()

    @app.get("/depth")
    async def depth() -> dict[str, int]:
        return {"depth": 42}

    @app.get("/fail")
    async def fail() -> JSONResponse:
        return JSONResponse({"error": "down"}, status_code=500)

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, bool]:
        HOOKED.append(await request.json())
        return {"ok": True}

    async with serve_app(app) as base:
        yield base


def _bearer(served: Served, who: str = "a") -> dict[str, str]:
    client = served.a if who == "a" else served.b
    return {"Authorization": f"Bearer {client.headers['x-api-key']}"}


async def test_tools_are_listed_with_schemas_from_the_api_models(world: Any) -> None:
    served, _, _ = world
    async with over_http(served.base, _bearer(served)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= ORIGINAL_TOOLS | OURS
    add = tools["addEndpoint"].input_schema
    assert add["required"][:1] == ["jobId"]
    assert {"name", "url"} <= set(add["required"])
    assert add["properties"]["method"]["enum"] == ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    assert add["properties"]["baselineIntervalMs"]["anyOf"][0]["minimum"] == 1000
    assert add.get("additionalProperties") is False  # unknown arguments are refused
    assert "milliseconds" in add["properties"]["baselineIntervalMs"]["description"]
    assert "1000" in tools["addEndpoint"].description  # type: ignore[operator]
    hint = tools["applyIntervalHint"].input_schema
    assert hint["required"] == ["id", "intervalMs"]
    runs = tools["listEndpointRuns"].input_schema["properties"]
    assert runs["status"]["anyOf"][0]["enum"] == ["running", "success", "failed", "skipped"]
    assert {"since", "until", "limit", "offset"} <= set(runs)
    annotations = {name: tool.annotations for name, tool in tools.items()}
    assert annotations["listJobs"].read_only_hint is True  # type: ignore[union-attr]
    assert annotations["deleteEndpoint"].destructive_hint is True  # type: ignore[union-attr]
    assert annotations["archiveJob"].destructive_hint is True  # type: ignore[union-attr]
    assert annotations["createJob"].read_only_hint is False  # type: ignore[union-attr]
    assert annotations["createJob"].destructive_hint is False  # type: ignore[union-attr]
    assert tools["getJob"].output_schema is not None
    assert "jobs" in tools["listJobs"].output_schema["properties"]  # type: ignore[index]


async def test_every_tool_once_in_a_session(world: Any, receiver: str) -> None:
    served, engine, _ = world
    async with over_http(served.base, _bearer(served)) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        called: set[str] = set()

        async def call(name: str, arguments: dict[str, Any] | None = None) -> Any:
            called.add(name)
            return await ok(client, name, arguments)

        # jobs, and the status filter honoured
        job = await call(
            "createJob", {"name": "queue", "description": "drains the queue", "aiMode": "suggest"}
        )
        other = await call("createJob", {"name": "other"})
        async with engine.connect() as conn:  # the audit log names the key that acted
            actor = (
                await conn.execute(
                    select(audit_log.c.actor_kind, audit_log.c.actor_id).where(
                        audit_log.c.entity == "job", audit_log.c.entity_id == job["id"]
                    )
                )
            ).one()
            key_id = await conn.scalar(
                select(api_keys.c.id).where(api_keys.c.user_id == served.a.user_id)
            )
        assert tuple(actor) == ("api_key", key_id)
        assert (await call("pauseJob", {"id": other["id"]}))["status"] == "paused"
        paused = await call("listJobs", {"status": "paused"})
        assert [j["id"] for j in paused["jobs"]] == [other["id"]]
        active = await call("listJobs", {"status": "active"})
        assert job["id"] in [j["id"] for j in active["jobs"]]
        assert other["id"] not in [j["id"] for j in active["jobs"]]
        assert (await call("resumeJob", {"id": other["id"]}))["status"] == "active"
        assert (await call("getJob", {"id": job["id"]}))["aiMode"] == "suggest"
        edited = await call("updateJob", {"id": job["id"], "description": None, "name": "q2"})
        assert edited["name"] == "q2"
        assert "description" not in edited

        # endpoints
        ids = {"jobId": job["id"]}
        ep = await call(
            "addEndpoint",
            ids
            | {
                "name": "depth",
                "url": f"{receiver}/depth",
                "baselineIntervalMs": 60_000,
                "minIntervalMs": 10_000,
                "maxIntervalMs": 600_000,
            },
        )
        spare = await call(
            "addEndpoint",
            ids | {"name": "spare", "url": f"{receiver}/depth", "baselineCron": "0 * * * *"},
        )
        eid = ep["id"]
        listed_eps = await call("listEndpoints", ids)
        assert [e["id"] for e in listed_eps["endpoints"]] == [eid, spare["id"]]
        assert (await call("getEndpoint", ids | {"id": eid}))["baselineIntervalMs"] == 60_000
        assert (await call("updateEndpoint", ids | {"id": eid, "timeoutMs": 5000}))[
            "timeoutMs"
        ] == 5000

        # runs: one success, one failure, then every filter
        good = await call("testEndpoint", {"id": eid})
        assert good["status"] == "success"
        assert good["responseBody"] == {"depth": 42}
        await call("updateEndpoint", ids | {"id": eid, "url": f"{receiver}/fail"})
        bad = await ok(client, "testEndpoint", {"id": eid})
        assert bad["status"] == "failed"
        assert bad["statusCode"] == 500
        failed = await call("listEndpointRuns", {"id": eid, "status": "failed"})
        assert (failed["total"], [r["runId"] for r in failed["runs"]]) == (1, [bad["runId"]])
        page = await call("listEndpointRuns", {"id": eid, "limit": 1, "offset": 1})
        assert (page["total"], [r["runId"] for r in page["runs"]]) == (2, [good["runId"]])
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert (await call("listEndpointRuns", {"id": eid, "since": later}))["total"] == 0
        details = await call("getRunDetails", {"id": good["runId"]})
        assert (details["statusCode"], details["responseBody"]) == (200, {"depth": 42})
        assert details["endpoint"]["name"] == "depth"
        health = await call("getEndpointHealth", {"id": eid, "sinceHours": 1})
        assert (health["successCount"], health["failureCount"], health["sinceHours"]) == (1, 1, 1)

        # adaptive scheduling
        hinted = await call(
            "applyIntervalHint",
            {"id": eid, "intervalMs": 20_000, "ttlMinutes": 30, "reason": "deep"},
        )
        assert (hinted["aiHintIntervalMs"], hinted["aiHintReason"]) == (20_000, "deep")
        shot = await call("scheduleOneShot", {"id": eid, "nextRunInMs": 120_000})
        assert "aiHintNextRunAt" in shot
        preview = await call("previewSchedule", {"id": eid, "count": 3})
        assert len(preview["runs"]) == 3
        assert preview["endpointId"] == eid
        cleared = await call("clearHints", {"id": eid})
        assert "aiHintIntervalMs" not in cleared
        assert "aiHintNextRunAt" not in cleared
        until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert "pausedUntil" in await call("pauseResumeEndpoint", {"id": eid, "pausedUntil": until})
        assert "pausedUntil" not in await call(
            "pauseResumeEndpoint", {"id": eid, "pausedUntil": None}
        )
        async with engine.begin() as conn:
            await conn.execute(
                update(endpoints).where(endpoints.c.id == eid).values(failure_count=3)
            )
        assert (await call("resetFailures", {"id": eid}))["failureCount"] == 0

        # dashboard (dates default to the last 7 days; the job filter is applied)
        stats = await call("getDashboardStats")
        assert stats["jobs"]["total"] >= 2
        assert stats["filteredMetrics"]["totalRuns"] >= 2
        mine = await call("getDashboardStats", {"jobId": other["id"]})
        assert mine["filteredMetrics"]["totalRuns"] == 0

        activity = await call("getActivity", {"eventType": "runs", "limit": 1})
        assert activity["total"] >= 2  # the page holds one
        assert [e["type"] for e in activity["events"]] == ["run"]
        usage = await call("getUsage")
        assert usage["runsThisMonth"] >= 2
        assert usage["totalRunsLimit"] is None  # no quota set

        # signing key
        assert (await call("getSigningKey"))["hasKey"] is False
        created = await call("createSigningKey")
        assert re.fullmatch(r"[0-9a-f]{64}", created["rawKey"])
        assert (await call("getSigningKey"))["keyPrefix"] == created["keyPrefix"]
        rotated = await call("rotateSigningKey")
        assert rotated["previousKeyRetireAt"] is not None

        # AI planner: sessions and suggestions
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            session = await add_session(
                conn, user_id=served.a.user_id, endpoint_id=eid, analyzed_at=now
            )
            suggested = [
                await suggestion_store.record(
                    conn,
                    endpoint_id=eid,
                    user_id=served.a.user_id,
                    session_id=session,
                    action="interval",
                    args={"intervalMs": 30_000, "ttlMinutes": 60},
                    reason="busy",
                    expires_at=now + timedelta(days=1),
                    now=now,
                )
                for _ in range(2)
            ]
        sessions = await call("listAiSessions", {"id": eid})
        assert (sessions["total"], sessions["sessions"][0]["id"]) == (1, session)
        assert (await call("getAiSession", {"id": session}))["endpointName"] == "depth"
        pending = await call("listSuggestions", {"id": eid, "status": "pending"})
        assert sorted(s["id"] for s in pending["suggestions"]) == sorted(suggested)
        assert (await call("applySuggestion", {"id": suggested[0]}))["status"] == "applied"
        assert (await call("dismissSuggestion", {"id": suggested[1]}))["status"] == "dismissed"
        assert (await call("listSuggestions", {"id": eid, "status": "pending"}))[
            "suggestions"
        ] == []

        # export, then import (a dry run first writes nothing)
        document = await call("exportJobs")
        assert "q2" in [j["name"] for j in document["jobs"]]
        renamed = {
            **document,
            "jobs": [{**j, "name": j["name"] + "-copy"} for j in document["jobs"]],
        }
        copies = sorted(j["name"] for j in renamed["jobs"])
        dry = await call("importJobs", {"document": renamed})  # a dry run by default
        assert (dry["dryRun"], dry["created"]["jobs"]) == (True, len(copies))

        async def names() -> list[str]:
            return [j["name"] for j in (await ok(client, "listJobs"))["jobs"]]

        assert not set(copies) & set(await names())  # nothing written
        done = await call("importJobs", {"document": renamed, "dryRun": False})
        assert (done["dryRun"], done["created"]["jobs"]) == (False, len(copies))
        assert set(copies) <= set(await names())

        # notification channels and subscriptions
        hook = f"json://{receiver[len('http://') :]}/hook"
        sent = len(HOOKED)
        channel = await call("createChannel", {"name": "ops", "url": hook})  # tested first
        assert len(HOOKED) == sent + 1
        assert channel["id"] in [c["id"] for c in (await call("listChannels"))["channels"]]
        renamed_channel = await call("updateChannel", {"id": channel["id"], "name": "oncall"})
        assert renamed_channel["name"] == "oncall"
        assert (await call("testChannel", {"id": channel["id"]}))["ok"] is True
        assert len(HOOKED) == sent + 2
        assert (await call("getChannel", {"id": channel["id"]}))["name"] == "oncall"
        notify = {"channels": [channel["id"]], "onFailureAfter": 3}
        set_job = await call("setJobNotify", {"id": job["id"], "notify": notify})
        assert set_job["notify"]["onFailureAfter"] == 3
        assert (await call("getJobNotify", {"id": job["id"]}))["notify"] == set_job["notify"]
        await call("setEndpointNotify", {"id": eid, "notify": None})
        assert (await call("getEndpointNotify", {"id": eid}))["notify"] is None
        assert (await call("deleteChannel", {"id": channel["id"]}))["deleted"] is True
        left = (await ok(client, "listChannels"))["channels"]
        assert channel["id"] not in [c["id"] for c in left]

        # the end of things
        assert "archivedAt" in await call("archiveEndpoint", ids | {"id": eid})
        assert (await call("deleteEndpoint", ids | {"id": spare["id"]}))["deleted"] is True
        gone = await refused(client, "getEndpoint", ids | {"id": spare["id"]})
        assert (gone["status"], gone["message"]) == (404, "Endpoint not found")
        assert (await call("archiveJob", {"id": job["id"]}))["status"] == "archived"

    admin_only = {"getAccountNotify", "setAccountNotify"}  # tests/mcp/test_account_notify.py
    assert called | admin_only == listed, f"not called: {sorted(listed - called - admin_only)}"


async def test_failures_come_back_as_tool_errors_in_the_api_words(world: Any) -> None:
    served, _, _ = world
    async with over_http(served.base, _bearer(served)) as client:
        missing = await refused(client, "getJob", {"id": "no-such-job"})
        assert (missing["status"], missing["code"], missing["message"]) == (
            404,
            "not_found",
            "Job not found",
        )
        assert (await refused(client, "getJob", {"id": "../etc"}))["status"] == 404
        blank = await refused(client, "createJob", {"name": " "})
        assert (blank["status"], blank["field"]) == (422, "name")
        unknown = await refused(client, "createJob", {"name": "x", "colour": "red"})
        assert (unknown["status"], unknown["field"]) == (422, "colour")
        job = await ok(client, "createJob", {"name": "errors"})
        ssrf = await refused(
            client,
            "addEndpoint",
            {
                "jobId": job["id"],
                "name": "meta",
                "url": "http://169.254.169.254/latest",
                "baselineIntervalMs": 60_000,
            },
        )
        assert (ssrf["status"], ssrf["field"]) == (422, "url")
        assert ssrf["message"].startswith("URL not allowed")
        both = await refused(
            client,
            "addEndpoint",
            {
                "jobId": job["id"],
                "name": "x",
                "url": "https://example.com",
                "baselineCron": "* * * * *",
                "baselineIntervalMs": 60_000,
            },
        )
        assert both["status"] == 422
        endpoint = {"name": "e", "url": "http://169.254.169.254/", "baselineIntervalMs": 60_000}
        document = {"version": 1, "jobs": [{"name": "imported", "endpoints": [endpoint]}]}
        refused_import = await refused(client, "importJobs", {"document": document})
        assert (refused_import["status"], refused_import["field"]) == (
            422,
            "document.jobs.0.endpoints.0.url",
        )
        no_id = await refused(client, "pauseJob", {})
        assert (no_id["status"], no_id["field"]) == (422, "id")
        backwards = await refused(
            client, "getDashboardStats", {"startDate": "2025-03-10", "endDate": "2025-03-01"}
        )
        assert (backwards["status"], backwards["field"]) == (422, "endDate")
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("dropDatabase", {})


async def test_another_user_sees_nothing_and_changes_nothing(world: Any, receiver: str) -> None:
    """User B's key, through every tool that takes an id, with A's ids: always "not found"."""
    served, engine, _ = world
    async with over_http(served.base, _bearer(served, "a")) as a:
        job = await ok(a, "createJob", {"name": "a-private"})
        ep = await ok(
            a,
            "addEndpoint",
            {
                "jobId": job["id"],
                "name": "a-ep",
                "url": f"{receiver}/depth",
                "baselineIntervalMs": 60_000,
            },
        )
        run = await ok(a, "testEndpoint", {"id": ep["id"]})
        hook = f"json://{receiver[len('http://') :]}/hook"
        channel = await ok(a, "createChannel", {"name": "a-ch", "url": hook, "test": False})
        before = await ok(a, "getEndpoint", {"jobId": job["id"], "id": ep["id"]})
        modern = a.protocol_version
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        session = await add_session(
            conn, user_id=served.a.user_id, endpoint_id=ep["id"], analyzed_at=now
        )
        suggestion = await suggestion_store.record(
            conn,
            endpoint_id=ep["id"],
            user_id=served.a.user_id,
            session_id=session,
            action="clear",
            args={},
            reason=None,
            expires_at=now + timedelta(days=1),
            now=now,
        )
    ids = {
        "Job": job["id"],
        "Endpoint": ep["id"],
        "Run": run["runId"],
        "Channel": channel["id"],
        "Session": session,
        "Suggestion": suggestion,
    }
    bodies: dict[str, dict[str, Any]] = {
        "addEndpoint": {"name": "x", "url": "https://example.com", "baselineIntervalMs": 60_000},
        "updateEndpoint": {"name": "stolen"},
        "updateJob": {"name": "stolen"},
        "applyIntervalHint": {"intervalMs": 60_000},
        "scheduleOneShot": {"nextRunInMs": 60_000},
        "pauseResumeEndpoint": {"pausedUntil": None},
        "updateChannel": {"name": "stolen"},
        "setJobNotify": {"notify": None},
        "setEndpointNotify": {"notify": None},
    }
    async with over_http(served.base, _bearer(served, "b"), mode="legacy") as b:
        assert b.protocol_version != modern  # both protocol eras are served
        assert (await ok(b, "listJobs"))["jobs"] == []
        tried = 0
        for tool in ALL_TOOLS:
            if not tool.ids or tool.ids[-1].what not in ids:
                continue
            arguments = {
                pid.name: ids["Job" if pid.name == "jobId" else pid.what] for pid in tool.ids
            }
            error = await refused(b, tool.name, arguments | bodies.get(tool.name, {}))
            assert error["status"] == 404, (tool.name, error)
            tried += 1
        assert tried == sum(1 for tool in ALL_TOOLS if tool.ids)  # every id-taking tool
    async with over_http(served.base, _bearer(served, "a")) as a:
        after = await ok(a, "getEndpoint", {"jobId": job["id"], "id": ep["id"]})
        assert after == before
        assert (await ok(a, "getJob", {"id": job["id"]}))["name"] == "a-private"
        assert (await ok(a, "getChannel", {"id": channel["id"]}))["name"] == "a-ch"
        pending = await ok(a, "listSuggestions", {"id": ep["id"], "status": "pending"})
        assert [x["id"] for x in pending["suggestions"]] == [suggestion]


async def test_mcp_needs_the_api_credentials(world: Any) -> None:
    served, _, _ = world
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(base_url=served.base) as http:
        for sent in ({}, {"Authorization": "Bearer cron_wrong"}, {"x-api-key": "nope"}):
            response = await http.post("/mcp", json=hello, headers=headers | sent)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"
        # a browser's session cookie is not a credential here (no CSRF check to lean on)
        response = await http.post(
            "/mcp", json=hello, headers=headers | {"Cookie": "cronicorn_session=x"}
        )
        assert response.status_code == 401
        response = await http.get("/mcp", headers=headers | dict(served.a.headers))
        assert response.status_code in {404, 405}  # stateless: no stream is held open
    async with over_http(served.base, dict(served.a.headers)) as client:  # x-api-key works too
        assert (await ok(client, "listJobs"))["jobs"] is not None


async def test_rate_limits_are_the_api_budgets(world: Any) -> None:
    """One write a minute: the second write tool call is a 429 with Retry-After, while reads
    keep their own budget (the same windows as /api)."""
    served, engine, _ = world
    url = engine.url.render_as_string(hide_password=False)
    settings = load_settings(
        DATABASE_URL=url, AUTH_SECRET="s" * 40, RATE_LIMIT_WRITE_RPM=1, RATE_LIMIT_READ_RPM=1000
    )
    runtime = Runtime.create(settings, url)
    headers = {"authorization": "Bearer " + served.b.headers["x-api-key"]}
    at = datetime(2025, 3, 10, 12, 0, 10, tzinfo=UTC)  # one window for every call here
    try:
        first = await gate.authenticate(runtime, headers, "write", lambda: at)
        second = await gate.authenticate(runtime, headers, "write", lambda: at)
        read = await gate.authenticate(runtime, headers, "read", lambda: at)
    finally:
        await runtime.close()
    assert isinstance(first, gate.Caller)
    assert first.user_id == served.b.user_id
    assert isinstance(second, gate.Refusal)
    assert (second.status, second.headers["Retry-After"]) == (429, "50")
    assert isinstance(read, gate.Caller)


def test_tool_calls_that_write_count_against_the_write_budget() -> None:
    call = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s"}}'
    assert access_of(call % b"createJob") == "write"
    assert access_of(call % b"listJobs") == "read"
    assert access_of(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}') == "read"
    assert access_of(b"not json") == "read"


async def test_docs_are_resources_and_prompts_fill_in(world: Any) -> None:
    served, _, _ = world
    async with over_http(served.base, _bearer(served)) as client:
        assert client.instructions is not None
        assert "minIntervalMs" in client.instructions
        resources = {str(r.uri): r for r in (await client.list_resources()).resources}
        page = resources["file:///docs/responses.md"]
        assert page.mime_type == "text/markdown"
        assert page.title
        read = await client.read_resource("file:///docs/responses.md")
        assert "assertions" in read.contents[0].text  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await client.read_resource("file:///docs/nope.md")
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"monitor-url", "why-stopped", "tighten-while-queue-deep"} <= prompts
        prompt = await client.get_prompt("monitor-url", {"url": "https://example.com/q"})
        text = prompt.messages[0].content.text  # type: ignore[union-attr]
        assert "https://example.com/q" in text
        assert "every 5 minutes" in text


# -- stdio: the real `cronicorn mcp` bridged to /mcp ----------------------------------------


@pytest.mark.slow
async def test_stdio_bridge_serves_the_same_tools_as_the_caller(world: Any, tmp_path: Path) -> None:
    served, _, _ = world
    async with over_http(served.base, _bearer(served)) as direct:
        http_tools = {t.name: t.input_schema for t in (await direct.list_tools()).tools}
    key_a, key_b = served.a.headers["x-api-key"], served.b.headers["x-api-key"]
    with (tmp_path / "a.log").open("w") as log:
        async with over_stdio(bridge_env(served.base, tmp_path, CRONICORN_API_KEY=key_a), log) as a:
            assert {t.name: t.input_schema for t in (await a.list_tools()).tools} == http_tools
            assert a.instructions is not None
            assert "minIntervalMs" in a.instructions
            job = await ok(a, "createJob", {"name": "via-stdio"})
            assert job["userId"] == served.a.user_id
            archived = (await ok(a, "listJobs", {"status": "archived"}))["jobs"]
            assert "via-stdio" not in [j["name"] for j in archived]
            names = [j["name"] for j in (await ok(a, "listJobs", {"status": "active"}))["jobs"]]
            assert "via-stdio" in names
            missing = await refused(a, "getJob", {"id": "no-such-job"})
            assert (missing["status"], missing["message"]) == (404, "Job not found")
            page = await a.read_resource("file:///docs/responses.md")
            assert "assertions" in page.contents[0].text  # type: ignore[union-attr]
    # B's bridge, with the API URL given without `/api`: A's job stays invisible
    env_b = bridge_env(served.base, tmp_path / "b", CRONICORN_API_KEY=key_b)
    env_b["CRONICORN_API_URL"] = served.base + "/"
    with (tmp_path / "b.log").open("w") as log:
        async with over_stdio(env_b, log) as b:
            assert "via-stdio" not in [j["name"] for j in (await ok(b, "listJobs"))["jobs"]]
            assert (await refused(b, "getJob", {"id": job["id"]}))["status"] == 404


@pytest.mark.slow
async def test_stdio_bridge_signs_in_with_the_device_flow(world: Any, tmp_path: Path) -> None:
    """No key: the bridge prints a code on stderr, a signed-in browser approves it, the token
    lands 0600 in ~/.cronicorn/credentials.json in the original's format."""
    served, engine, _ = world
    user_id = await make_password_user(engine, "device@example.com")
    log_path = tmp_path / "bridge.log"

    async def approve() -> None:
        await until(lambda: "(code " in log_path.read_text(), timeout=60, what="the user code")
        found = re.search(r"\(code ([^)]+)\)", log_path.read_text())
        assert found is not None
        async with aiohttp.ClientSession() as http:
            browser = await sign_in(http, served.base, "device@example.com")
            status, _ = await browser.call("POST", "/auth/device/approve", {"userCode": found[1]})
            assert status == 200

    with log_path.open("w") as log:
        approving = asyncio.create_task(approve())
        async with over_stdio(bridge_env(served.base, tmp_path), log) as client:
            await approving
            job = await ok(client, "createJob", {"name": "device-job"})
            assert job["userId"] == user_id
    stored = tmp_path / ".cronicorn" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    body = json.loads(stored.read_text())
    assert set(body) == {"access_token", "refresh_token", "expires_at"}
    assert body["refresh_token"] == ""
    days = (body["expires_at"] / 1000 - time.time()) / 86_400
    assert 29 < days <= 30  # SESSION_TTL_DAYS


# -- the device flow and the stored token, in process ---------------------------------------


async def test_a_stored_token_is_checked_and_follows_the_server_expiry(
    world: Any, tmp_path: Path
) -> None:
    served, engine, _ = world
    user_id = await make_password_user(engine, "stored@example.com")
    async with engine.begin() as conn:
        token, _ = await start_session(
            conn, user_id, kind="device", now=datetime.now(UTC), ttl=timedelta(days=30)
        )
    path = device.credentials_path(tmp_path)
    soon = device.now_ms() + 3_600_000  # the file says an hour; the server says 30 days
    device.save(path, device.StoredToken(token, soon))

    async def no_sleep(_: float) -> None:
        raise AssertionError("a usable token needs no device flow")

    async with httpx2.AsyncClient() as http:
        got = await device.signed_in(http, served.base, path, open_browser=False, sleep=no_sleep)
    assert got == token
    refreshed = device.load(path)
    assert refreshed is not None
    assert refreshed.expires_at > soon + 25 * 86_400_000


@pytest.mark.parametrize("stale", ["expired", "revoked"])
async def test_a_stale_token_is_replaced_by_approving_again(
    world: Any, tmp_path: Path, stale: str
) -> None:
    served, engine, clock = world
    email = f"{stale}@example.com"
    await make_password_user(engine, email)
    path = device.credentials_path(tmp_path)
    if stale == "expired":  # the file says it is past (5-minute margin): not even tried
        device.save(path, device.StoredToken("cron_whatever", device.now_ms() + 60_000))
    else:  # the file says fine, the server refuses it
        device.save(path, device.StoredToken("not-a-session", device.now_ms() + 86_400_000))
    approved: list[str] = []

    async def approve(seconds: float) -> None:
        clock.offset += timedelta(seconds=seconds)  # the poll interval passes on the server
        if approved:
            return
        async with engine.connect() as conn:
            code = await conn.scalar(
                text(
                    "SELECT user_code FROM device_codes WHERE status = 'pending' "
                    "ORDER BY created_at DESC LIMIT 1"
                )
            )
        async with aiohttp.ClientSession() as http:
            browser = await sign_in(http, served.base, email)
            status, _ = await browser.call("POST", "/auth/device/approve", {"userCode": code})
            assert status == 200
        approved.append(code)

    async with httpx2.AsyncClient() as http:
        token = await device.signed_in(http, served.base, path, open_browser=False, sleep=approve)
        assert approved
        assert device.load(path) == device.StoredToken(token, device.load(path).expires_at)  # type: ignore[union-attr]
        session = (
            await http.get(
                f"{served.base}/api/auth/get-session", headers={"Authorization": f"Bearer {token}"}
            )
        ).json()
        assert session["user"]["email"] == email


async def test_the_bridge_signs_in_again_when_the_server_refuses_its_token(world: Any) -> None:
    served, _, _ = world
    renewed: list[bool] = []

    async def renew() -> str:
        renewed.append(True)
        return served.a.headers["x-api-key"]

    auth = BearerAuth("revoked-token", renew)
    async with httpx2.AsyncClient(auth=auth) as http:
        response = await http.get(f"{served.base}/api/jobs")
    assert response.status_code == 200
    assert renewed == [True]


def test_the_api_url_is_accepted_with_or_without_api() -> None:
    for url in (
        "https://c.example/api",
        "https://c.example/api/",
        "https://c.example/",
        "https://c.example",
    ):
        assert api_base(url) == "https://c.example"
    config = BridgeConfig.from_env({"CRONICORN_API_URL": "http://h:3333/api", "HOME": "/home/x"})
    assert (config.mcp_url, config.api_key) == ("http://h:3333/mcp", None)
    assert config.credentials == Path("/home/x/.cronicorn/credentials.json")


# -- the query tools against the REST API's own parameters ----------------------------------

QUERY_TOOLS = {  # tool -> (method, path) of the REST route it mirrors
    "listJobs": ("get", "/jobs"),
    "listEndpointRuns": ("get", "/endpoints/{id}/runs"),
    "getEndpointHealth": ("get", "/endpoints/{id}/health"),
    "previewSchedule": ("get", "/endpoints/{id}/preview"),
    "getDashboardStats": ("get", "/dashboard/stats"),
    "getActivity": ("get", "/dashboard/activity"),
    "listAiSessions": ("get", "/endpoints/{id}/sessions"),
    "listSuggestions": ("get", "/endpoints/{id}/suggestions"),
    "importJobs": ("post", "/import"),
}
# Deliberate differences, for agents: dates default to the last 7 days, a smaller first page
# of runs, and an import is a dry run unless told otherwise.
RELAXED = {("getDashboardStats", "startDate"), ("getDashboardStats", "endDate")}
RELAXED |= {("getActivity", "startDate"), ("getActivity", "endDate")}
OTHER_DEFAULTS = {("listEndpointRuns", "limit"): 20, ("importJobs", "dryRun"): True}


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional parameter, without titles and descriptions."""
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    merged = {**branches[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
    return {
        k: v for k, v in merged.items() if k in {"type", "enum", "minimum", "maximum", "maxLength"}
    }


def test_query_tools_take_the_rest_routes_parameters() -> None:
    """The query models of the MCP tools are written beside the routes' `Query()` parameters:
    names, types, allowed values, bounds, defaults and required-ness must agree."""
    document = openapi_document()
    tools = {tool.name: tool for tool in ALL_TOOLS}
    for name, (method, path) in QUERY_TOOLS.items():
        parameters = [
            p for p in document["paths"][path][method]["parameters"] if p["in"] == "query"
        ]
        schema = tools[name].input_schema()
        properties, required = schema["properties"], set(schema.get("required", []))
        ids = {pid.name for pid in tools[name].ids}
        body = {"document"} if name == "importJobs" else set()
        assert set(properties) == ids | body | {p["name"] for p in parameters}, name
        for param in parameters:
            key, mine = param["name"], properties[param["name"]]
            assert _plain(mine) == _plain(param["schema"]), (name, key)
            default = OTHER_DEFAULTS.get((name, key), param["schema"].get("default"))
            assert mine.get("default") == default, (name, key)
            if (name, key) not in RELAXED:
                assert (key in required) == bool(param.get("required")), (name, key)


async def test_a_database_that_cannot_answer_is_a_503_not_a_crash() -> None:
    settings = load_settings(
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        AUTH_SECRET="s" * 40,
        DB_CONNECT_TIMEOUT_S=2,
    )
    runtime = Runtime.create(settings, "postgresql://nobody@127.0.0.1:1/none")
    endpoint = McpEndpoint(runtime)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "listJobs"}}
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": json.dumps(call).encode(), "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(b"x-api-key", b"cron_x")],
    }
    try:
        await endpoint(scope, receive, send)
    finally:
        await runtime.close()
    assert sent[0]["status"] == 503
    assert (b"retry-after", b"1") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["error"]["code"] == "unavailable"
