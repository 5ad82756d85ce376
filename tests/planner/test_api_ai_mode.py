"""`aiMode` over the REST API: the job's default, each endpoint's override, and the
round trip through export and import."""

from __future__ import annotations

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NO_RATE_LIMITS, Client, credentials
from cronicorn.app import create_app
from cronicorn.config import load_settings
from cronicorn.runtime import Runtime
from support import serve_app

ENDPOINT = {"name": "queue", "url": "https://example.com/q", "baselineIntervalMs": 60000}


async def test_job_default_endpoint_override_and_transfer(
    clients: tuple[Client, Client],
) -> None:
    alice, bob = clients
    status, job = await alice.call("POST", "/jobs", {"name": "watch", "aiMode": "suggest"})
    assert status == 201
    assert job["aiMode"] == "suggest"
    status, plain = await alice.call("POST", "/jobs", {"name": "plain"})
    assert plain["aiMode"] == "auto"
    assert (await alice.call("POST", "/jobs", {"name": "x", "aiMode": "yolo"}))[0] == 422
    assert (await alice.call("PATCH", f"/jobs/{plain['id']}", {"aiMode": None}))[0] == 422
    status, patched = await alice.call("PATCH", f"/jobs/{plain['id']}", {"aiMode": "off"})
    assert (status, patched["aiMode"]) == (200, "off")

    status, ep = await alice.call("POST", f"/jobs/{job['id']}/endpoints", ENDPOINT)
    assert (status, ep["aiMode"]) == (201, "inherit")
    path = f"/jobs/{job['id']}/endpoints/{ep['id']}"
    status, ep = await alice.call("PATCH", path, {"aiMode": "off"})
    assert (status, ep["aiMode"]) == (200, "off")
    status, ep = await alice.call("PATCH", path, {"aiMode": None})
    assert (status, ep["aiMode"]) == (200, "inherit")
    assert (await alice.call("PATCH", path, {"aiMode": "sometimes"}))[0] == 422
    await alice.call("PATCH", path, {"aiMode": "auto"})

    status, doc = await alice.call("GET", "/export")
    assert status == 200
    modes = {j["name"]: (j["aiMode"], [e["aiMode"] for e in j["endpoints"]]) for j in doc["jobs"]}
    assert modes == {"watch": ("suggest", ["auto"]), "plain": ("off", [])}
    status, report = await bob.call("POST", "/import", doc)
    assert status == 200
    status, jobs = await bob.call("GET", "/jobs")
    assert {j["name"]: j["aiMode"] for j in jobs["jobs"]} == {"watch": "suggest", "plain": "off"}
    doc["jobs"][0]["aiMode"] = "auto"
    status, report = await bob.call("POST", "/import", doc)
    changed = [a for a in report["actions"] if a["action"] == "update"]
    assert [(a["name"], a["changes"]) for a in changed] == [("watch", ["aiMode"])]
    status, again = await bob.call("POST", "/import", doc)
    assert again["updated"] == {"jobs": 0, "endpoints": 0}


async def test_usage_reports_the_ai_token_quota(database_url: str, engine: AsyncEngine) -> None:
    settings = load_settings(
        DATABASE_URL=database_url,
        AUTH_SECRET="s" * 40,
        QUOTA_AI_TOKENS_PER_MONTH="50000",
        **NO_RATE_LIMITS,
    )
    app = create_app(Runtime.create(settings, database_url))
    user_id, headers = await credentials(engine, "q@example.com")
    async with serve_app(app) as base, aiohttp.ClientSession() as http:
        status, usage = await Client(base, http, headers, user_id).call(
            "GET", "/subscriptions/usage"
        )
    assert status == 200
    assert (usage["aiCallsLimit"], usage["aiTokensThisMonth"]) == (50000, 0)
