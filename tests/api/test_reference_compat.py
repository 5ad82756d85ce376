"""What the reference's clients rely on beyond response shapes: the API reference, API-key
rename, stray ids in bodies, JavaScript dates, and an OpenAPI document that says precisely
which response fields may be absent and which may be null."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from api.api_support import Served


async def test_front_page_is_the_dashboard_and_the_api_reference_stays(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.base}/", allow_redirects=False) as resp:
            assert resp.status == 303  # the web dashboard: sign in first
            assert resp.headers["Location"] == "/login"
        async with http.get(f"{served.base}/api/reference") as resp:
            assert resp.status == 200
            assert "reference/app.js" in await resp.text()
        async with http.get(f"{served.base}/nowhere") as resp:
            assert resp.status == 404


async def test_api_key_rename(served: Served) -> None:
    a, b = served.a, served.b
    status, made = await a.call("POST", "/auth/api-key/create", {"name": "ci"})
    assert status == 200, made
    status, renamed = await a.call(
        "POST", "/auth/api-key/update", {"keyId": made["id"], "name": " deploy "}
    )
    assert (status, renamed["id"], renamed["name"]) == (200, made["id"], "deploy")
    assert "key" not in renamed
    listed = (await a.call("GET", "/auth/api-key/list"))[1]
    assert {k["id"]: k["name"] for k in listed}[made["id"]] == "deploy"
    status, _ = await b.call("POST", "/auth/api-key/update", {"keyId": made["id"], "name": "x"})
    assert status == 404, "another user's key is not found"
    assert (await a.call("POST", "/auth/api-key/delete", {"keyId": made["id"]}))[0] == 200
    status, _ = await a.call("POST", "/auth/api-key/update", {"keyId": made["id"], "name": "y"})
    assert status == 404, "a revoked key cannot be renamed"


async def test_stray_path_ids_in_bodies_are_accepted(served: Served) -> None:
    a = served.a
    _, job = await a.call("POST", "/jobs", {"name": "j"})
    spec = {"name": "e", "url": "https://example.com", "baselineIntervalMs": 60000}
    _, ep = await a.call("POST", f"/jobs/{job['id']}/endpoints", spec)
    ids = {"jobId": job["id"], "id": ep["id"]}
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    status, reply = await a.call(
        "POST", f"/endpoints/{ep['id']}/pause", {**ids, "pausedUntil": until}
    )
    assert status == 204, reply
    detail = (await a.call("GET", f"/jobs/{job['id']}/endpoints/{ep['id']}"))[1]
    assert detail["pausedUntil"] is not None
    status, reply = await a.call("POST", f"/endpoints/{ep['id']}/pause", {"pausedUntil": 3})
    assert status == 422, "the real fields stay strict"
    for path, body in [
        (f"/jobs/{job['id']}/pause", {"id": job["id"]}),
        (f"/jobs/{job['id']}/resume", ids),
        (f"/endpoints/{ep['id']}/reset-failures", {"id": ep["id"]}),
        (f"/jobs/{job['id']}/endpoints/{ep['id']}/archive", ids),
        (f"/jobs/{job['id']}/archive", {"id": job["id"]}),
    ]:
        status, reply = await a.call("POST", path, body)
        assert status in (200, 204), (path, reply)


async def test_dashboard_takes_javascript_dates(served: Served) -> None:
    """`Date.toString()` text, also when its `+` arrives as a space (an unencoded query)."""
    a = served.a
    iso = {"startDate": "2025-03-10T11:00:00Z", "endDate": "2025-03-11T11:00:00Z"}
    status, expected = await a.call("GET", "/dashboard/stats", **iso)
    assert status == 200, expected
    berlin = {
        "startDate": "Mon Mar 10 2025 12:00:00 GMT+0100 (Central European Standard Time)",
        "endDate": "Tue Mar 11 2025 12:00:00 GMT+0100 (Central European Standard Time)",
    }
    assert await a.call("GET", "/dashboard/stats", **berlin) == (200, expected)
    raw = "&".join(f"{k}={v.replace(' ', '%20')}" for k, v in berlin.items())  # `+` unencoded
    url = f"{served.base}/api/dashboard/stats?{raw}"
    async with a.http.get(url, headers=a.headers) as resp:
        assert (resp.status, await resp.json()) == (200, expected)
    new_york = {
        "startDate": "Mon Mar 10 2025 07:00:00 GMT-0400 (Eastern Daylight Time)",
        "endDate": "Tue Mar 11 2025 07:00:00 GMT-0400 (Eastern Daylight Time)",
    }
    status, activity = await a.call("GET", "/dashboard/activity", **new_york)
    assert (status, activity["total"]) == (200, 0)
    for bad in ("Mon Foo 10 2025 12:00:00 GMT+0100", "Mon Feb 30 2025 12:00:00 GMT+0100"):
        status, reply = await a.call("GET", "/dashboard/stats", startDate=bad, endDate="2026-01-01")
        assert (status, reply["error"]["details"][0]["path"]) == (422, "startDate")


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["components"]["schemas"][name]  # type: ignore[no-any-return]


def _nullable(prop: dict[str, Any]) -> bool:
    return {"type": "null"} in prop.get("anyOf", [])


async def test_openapi_says_what_is_absent_and_what_is_null(served: Served) -> None:
    status, doc = await served.a.call("GET", "/doc")
    assert status == 200
    absent = {
        "Job": ["description", "archivedAt"],
        "JobWithCount": ["description", "archivedAt"],
        "Endpoint": [
            "description",
            "baselineCron",
            "baselineIntervalMs",
            "minIntervalMs",
            "maxIntervalMs",
            "lastRunAt",
            "pausedUntil",
            "archivedAt",
            "headersJson",
            "timeoutMs",
            "maxExecutionTimeMs",
            "maxResponseSizeKb",
            "aiHintIntervalMs",
            "aiHintNextRunAt",
            "aiHintExpiresAt",
            "aiHintReason",
        ],
        "RunListItem": ["finishedAt", "durationMs", "errorMessage", "statusCode"],
        "RunDetails": ["finishedAt", "durationMs", "errorMessage", "statusCode"],
        "TestResult": ["errorMessage", "statusCode"],
        "ActivityEvent": ["status", "durationMs", "source", "reasoning", "toolCalls"],
    }
    for name, fields in absent.items():
        schema = _schema(doc, name)
        for field in fields:
            prop = schema["properties"][field]
            assert field not in schema["required"], (name, field)
            assert not _nullable(prop), (name, field, prop)
            assert "default" not in prop, (name, field)
    null = {
        "Health": ["avgDurationMs", "lastRun"],
        "RunDetails": ["responseBody"],
        "TestResult": ["responseBody"],
        "KeyInfo": ["keyPrefix", "createdAt", "rotatedAt"],
        "Device": ["userAgent", "ipAddress"],
        "Session": ["tokenUsage", "durationMs"],
    }
    for name, fields in null.items():
        schema = _schema(doc, name)
        for field in fields:
            assert field in schema["required"], (name, field)
            prop = schema["properties"][field]
            assert _nullable(prop) or prop.get("type") is None, (name, field, prop)
    assert {"id", "name", "failureCount", "nextRunAt"} <= set(_schema(doc, "Endpoint")["required"])
    session = _schema(doc, "Session")["properties"]
    assert session["toolCalls"]["items"]["required"] == ["tool", "args", "result"]
    assert session["warnings"]["items"]["required"] == ["code", "message"]

    paths = doc["paths"]
    assert "/auth/config" in paths
    assert "/auth/api-key/update" in paths
    devices = paths["/devices"]["get"]["responses"]["200"]["content"]["application/json"]
    assert devices["schema"] == {"$ref": "#/components/schemas/DeviceList"}
    config = _schema(doc, "AuthConfig")
    assert set(config["required"]) >= {"hasEmailPassword", "hasGitHubOAuth"}


async def test_oneshot_without_ttl_outlives_its_run(served: Served) -> None:
    """The reference's clients rarely send `ttlMinutes`: a one-shot hours ahead still runs."""
    a = served.a
    _, job = await a.call("POST", "/jobs", {"name": "j"})
    spec = {"name": "e", "url": "https://example.com", "baselineIntervalMs": 86_400_000}
    _, ep = await a.call("POST", f"/jobs/{job['id']}/endpoints", spec)
    later = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    at = later.isoformat().replace("+00:00", "Z")
    hint = f"/endpoints/{ep['id']}/hints/oneshot"
    status, reply = await a.call("POST", hint, {"nextRunAt": at, "ttlMinutes": 60})
    assert status == 422, "an explicit TTL that ends before the run is refused"
    assert reply["error"]["details"][0]["path"] == "ttlMinutes"
    status, reply = await a.call("POST", hint, {"nextRunAt": at})
    assert status == 204, reply
    detail = (await a.call("GET", f"/jobs/{job['id']}/endpoints/{ep['id']}"))[1]
    assert (detail["nextRunAt"], detail["nextRunSource"]) == (
        later.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "ai-oneshot",
    )
    expires = datetime.fromisoformat(detail["aiHintNextRunExpiresAt"])
    assert expires == later + timedelta(minutes=60)
