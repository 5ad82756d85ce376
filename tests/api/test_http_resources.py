"""The REST resources over real HTTP: shapes, status codes, validation, the envelope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Client, Served, add_run, add_session
from cronicorn.api.deps import set_clock
from cronicorn.schemas.history import RunList
from cronicorn.signing import verify
from cronicorn.store import signing_keys as key_store
from support import serve_app

ENDPOINT = {"name": "ping", "url": "https://example.com/ping", "baselineIntervalMs": 60000}


async def _job(client: Client, name: str = "nightly") -> dict[str, Any]:
    status, job = await client.call("POST", "/jobs", {"name": name})
    assert status == 201, job
    return job  # type: ignore[no-any-return]


async def _endpoint(client: Client, job_id: str, **fields: Any) -> dict[str, Any]:
    status, endpoint = await client.call(
        "POST", f"/jobs/{job_id}/endpoints", {**ENDPOINT, **fields}
    )
    assert status == 201, endpoint
    return endpoint  # type: ignore[no-any-return]


def _error(body: Any) -> dict[str, Any]:
    assert set(body) == {"error"}, body
    assert {"code", "message", "details", "requestId"} <= set(body["error"])
    return body["error"]  # type: ignore[no-any-return]


async def test_job_lifecycle(served: Served) -> None:
    a = served.a
    job = await _job(a)
    assert job["status"] == "active"
    assert job["userId"] == a.user_id
    assert "description" not in job  # unset optional fields are left out, never null
    assert "archivedAt" not in job
    assert job["createdAt"].endswith("Z")
    assert len(job["createdAt"]) == 24
    await _endpoint(a, job["id"])

    status, listed = await a.call("GET", "/jobs")
    assert status == 200
    assert [(j["id"], j["endpointCount"]) for j in listed["jobs"]] == [(job["id"], 1)]
    status, patched = await a.call("PATCH", f"/jobs/{job['id']}", {"description": "d"})
    assert (status, patched["description"], patched["name"]) == (200, "d", "nightly")
    status, paused = await a.call("POST", f"/jobs/{job['id']}/pause")
    assert (status, paused["status"]) == (200, "paused")
    assert (await a.call("GET", "/jobs", status="active"))[1]["jobs"] == []
    status, archived = await a.call("DELETE", f"/jobs/{job['id']}")
    assert (status, archived["status"]) == (200, "archived")
    assert archived["archivedAt"] is not None
    status, again = await a.call("POST", f"/jobs/{job['id']}/archive")  # idempotent alias
    assert (status, again["archivedAt"]) == (200, archived["archivedAt"])
    for action in ("resume", "pause"):
        status, body = await a.call("POST", f"/jobs/{job['id']}/{action}")
        assert status == 409
        assert _error(body)["code"] == "conflict"


async def test_validation_errors_name_the_field(served: Served) -> None:
    a = served.a
    job = await _job(a)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**ENDPOINT, "baselineCron": "* * * * *"}, "baselineCron"),
        ({"name": "x", "url": "https://example.com"}, "baselineCron"),
        ({**ENDPOINT, "baselineIntervalMs": 10}, "baselineIntervalMs"),
        ({**ENDPOINT, "minIntervalMs": 9000, "maxIntervalMs": 2000}, "minIntervalMs"),
        ({**ENDPOINT, "url": "ftp://example.com"}, "url"),
        ({**ENDPOINT, "timezone": "Nowhere/City"}, "timezone"),
        ({**ENDPOINT, "headersJson": {"bad header": "x"}}, "headersJson"),
        ({**ENDPOINT, "surprise": 1}, "surprise"),
        ({**ENDPOINT, "base_url": "x"}, "base_url"),
    ]
    for body, path in cases:
        status, reply = await a.call("POST", f"/jobs/{job['id']}/endpoints", body)
        assert status == 422, (body, reply)
        error = _error(reply)
        assert error["code"] == "validation_error"
        assert path in [d["path"] for d in error["details"]], (path, error)
    status, reply = await a.call("PATCH", f"/jobs/{job['id']}", {"name": None})
    assert status == 422
    assert _error(reply)["details"][0]["path"] == "name"
    # What PostgreSQL cannot store is a 422, not a database error.
    for body, path in [
        ({"name": "a\u0000b"}, "name"),
        ({"name": "a\ud800b"}, "name"),
    ]:
        status, reply = await a.call("POST", "/jobs", body)
        assert (status, _error(reply)["details"][0]["path"]) == (422, path)
    status, reply = await a.call(
        "POST", f"/jobs/{job['id']}/endpoints", {**ENDPOINT, "bodyJson": {"k\u0000": 1}}
    )
    assert (status, _error(reply)["details"][0]["path"]) == (422, "bodyJson")
    window = {"startDate": "2025-01-01", "endDate": "2025-01-02", "source": "a\u0000"}
    assert (await a.call("GET", "/dashboard/stats", **window))[0] == 422
    ancient = {"startDate": "0001-01-01T00:00:00+00:01", "endDate": "2025-01-01"}
    assert (await a.call("GET", "/dashboard/stats", **ancient))[0] == 422


async def test_malformed_and_unknown_ids_are_404(served: Served) -> None:
    a = served.a
    for bad in ("nope", "a%20b", "x" * 80, "%00", "..%2f"):
        status, body = await a.call("GET", f"/jobs/{bad}")
        assert status == 404, (bad, body)
        assert _error(body)["code"] == "not_found"
        status, _ = await a.call("GET", f"/endpoints/{bad}/runs")
        assert status == 404
        status, _ = await a.call("GET", f"/runs/{bad}")
        assert status == 404


async def test_endpoint_patch_clears_and_switches(served: Served) -> None:
    a = served.a
    job = await _job(a)
    ep = await _endpoint(a, job["id"], maxIntervalMs=600000, description="x")
    assert ep["timezone"] == "UTC"
    assert "aiHintExpiresAt" not in ep
    path = f"/jobs/{job['id']}/endpoints/{ep['id']}"
    status, patched = await a.call(
        "PATCH",
        path,
        {"baselineCron": "0 3 * * *", "timezone": "Europe/Paris", "maxIntervalMs": None},
    )
    assert status == 200, patched
    assert "baselineIntervalMs" not in patched
    assert patched["baselineCron"] == "0 3 * * *"
    assert "maxIntervalMs" not in patched
    assert patched["version"] == ep["version"] + 1
    assert patched["nextRunSource"] == "baseline-cron"
    status, reply = await a.call("PATCH", path, {"baselineCron": None})
    assert status == 422
    assert _error(reply)["details"][0]["path"] == "baselineCron"

    other = await _job(a, "other")
    status, _ = await a.call("GET", f"/jobs/{other['id']}/endpoints/{ep['id']}")
    assert status == 404  # the path's job must be the endpoint's job
    status, _ = await a.call("PATCH", f"/jobs/{other['id']}/endpoints/{ep['id']}", {"name": "z"})
    assert status == 404
    status, archived = await a.call("POST", f"{path}/archive")
    assert (status, archived["archivedAt"] is not None) == (200, True)
    status, listed = await a.call("GET", f"/jobs/{job['id']}/endpoints")
    assert [e["id"] for e in listed["endpoints"]] == [ep["id"]]
    status, _ = await a.call("DELETE", path)
    assert status == 204
    assert (await a.call("GET", path))[0] == 404


async def test_steering_routes(served: Served) -> None:
    a = served.a
    job = await _job(a)
    ep = await _endpoint(a, job["id"], minIntervalMs=5000, maxIntervalMs=3600000)
    base = f"/endpoints/{ep['id']}"
    detail = f"/jobs/{job['id']}/endpoints/{ep['id']}"

    status, body = await a.call("POST", f"{base}/hints/interval", {"intervalMs": 1000})
    assert status == 422
    assert _error(body)["details"][0]["path"] == "intervalMs"
    status, _ = await a.call(
        "POST", f"{base}/hints/interval", {"intervalMs": 30000, "reason": "busy"}
    )
    assert status == 204
    hinted = (await a.call("GET", detail))[1]
    assert hinted["aiHintIntervalMs"] == 30000
    assert hinted["aiHintReason"] == "busy"
    assert hinted["aiHintExpiresAt"] == hinted["aiHintIntervalExpiresAt"]

    status, body = await a.call("POST", f"{base}/hints/oneshot", {"ttlMinutes": 5})
    assert status == 422
    status, _ = await a.call("POST", f"{base}/hints/oneshot", {"nextRunInMs": 2000})
    assert status == 204
    oneshot = (await a.call("GET", detail))[1]
    assert oneshot["nextRunSource"] == "ai-oneshot"
    assert oneshot["nextRunAt"] == oneshot["aiHintNextRunAt"]

    status, preview = await a.call("GET", f"{base}/preview", count=3)
    assert status == 200
    assert len(preview["runs"]) == 3
    assert preview["runs"][0]["source"] == "ai-oneshot"
    assert all(r["reason"] for r in preview["runs"])

    assert (await a.call("DELETE", f"{base}/hints"))[0] == 204
    cleared = (await a.call("GET", detail))[1]
    assert not {"aiHintIntervalMs", "aiHintNextRunAt", "aiHintReason"} & set(cleared)

    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await a.call("POST", f"{base}/pause", {"pausedUntil": until}))[0] == 204
    paused = (await a.call("GET", detail))[1]
    assert paused["nextRunSource"] == "paused"
    assert (await a.call("POST", f"{base}/pause", {"pausedUntil": None}))[0] == 204
    assert "pausedUntil" not in (await a.call("GET", detail))[1]
    assert (await a.call("POST", f"{base}/pause", {}))[0] == 422  # pausedUntil is required
    assert (await a.call("POST", f"{base}/reset-failures"))[0] == 204


async def test_runs_health_sessions_over_http(served: Served, engine: AsyncEngine) -> None:
    a = served.a
    job = await _job(a)
    ep = await _endpoint(a, job["id"])
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        run_ids = [
            await add_run(
                conn,
                user_id=a.user_id,
                endpoint_id=ep["id"],
                started_at=now - timedelta(minutes=i),
                status="failed" if i == 0 else "success",
                response_body={"i": i},
            )
            for i in range(5)
        ]
        session_id = await add_session(
            conn, user_id=a.user_id, endpoint_id=ep["id"], analyzed_at=now
        )
    status, page = await a.call("GET", f"/endpoints/{ep['id']}/runs", limit=2, offset=1)
    assert status == 200
    # The hand-written JSON is exactly what the documented model would write.
    for item in RunList.model_validate(page).runs:
        assert item.model_dump(mode="json", by_alias=True) in page["runs"]
    assert (page["total"], [r["runId"] for r in page["runs"]]) == (5, run_ids[1:3])
    _, failed = await a.call("GET", f"/endpoints/{ep['id']}/runs", status="failed")
    assert failed["total"] == 1
    since = (now - timedelta(minutes=2, seconds=30)).isoformat()
    _, recent = await a.call("GET", f"/endpoints/{ep['id']}/runs", since=since)
    assert recent["total"] == 3
    assert (await a.call("GET", f"/endpoints/{ep['id']}/runs", limit=0))[0] == 422

    status, run = await a.call("GET", f"/runs/{run_ids[0]}")
    assert (status, run["responseBody"], run["endpoint"]["name"]) == (200, {"i": 0}, "ping")
    status, health = await a.call("GET", f"/endpoints/{ep['id']}/health", sinceHours=1)
    assert status == 200
    assert (health["successCount"], health["failureCount"], health["failureStreak"]) == (4, 1, 1)
    assert health["lastRun"]["status"] == "failed"

    status, sessions = await a.call("GET", f"/endpoints/{ep['id']}/sessions")
    assert (status, sessions["total"], sessions["sessions"][0]["id"]) == (200, 1, session_id)
    status, session = await a.call("GET", f"/sessions/{session_id}")
    assert (status, session["endpointName"], session["tokenUsage"]) == (200, "ping", 100)


async def test_dashboard_and_usage(served: Served, engine: AsyncEngine) -> None:
    a = served.a
    job = await _job(a)
    ep = await _endpoint(a, job["id"])
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await add_run(conn, user_id=a.user_id, endpoint_id=ep["id"], started_at=now)
    start, end = (now - timedelta(days=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    status, stats = await a.call("GET", "/dashboard/stats", startDate=start, endDate=end)
    assert status == 200, stats
    assert stats["filteredMetrics"]["totalRuns"] == 1
    assert stats["granularity"] == "hour"
    assert (await a.call("GET", "/dashboard/stats", endDate=end))[0] == 422
    assert (await a.call("GET", "/dashboard/stats", startDate=end, endDate=start))[0] == 422
    status, activity = await a.call(
        "GET", "/dashboard/activity", startDate=start, endDate=end, eventType="runs"
    )
    assert (status, activity["total"], activity["events"][0]["type"]) == (200, 1, "run")
    assert "nextCursor" not in activity  # the last page: absent, never null
    status, bad = await a.call("GET", "/dashboard/activity", startDate=start, cursor="x%y")
    assert (status, bad["error"]["code"]) == (422, "validation_error"), bad
    status, usage = await a.call("GET", "/subscriptions/usage")
    assert status == 200
    assert (usage["endpointsUsed"], usage["runsThisMonth"], usage["endpointsLimit"]) == (1, 1, None)


async def test_export_import_over_http(served: Served) -> None:
    a, b = served.a, served.b
    job = await _job(a, "exported")
    await _endpoint(a, job["id"])
    status, doc = await a.call("GET", "/export")
    assert status == 200
    assert doc["jobs"][0]["endpoints"][0] == ENDPOINT | {
        "method": "GET",
        "timezone": "UTC",
        "aiMode": "inherit",
        "overlap": "skip",
    }
    status, dry = await b.call("POST", "/import?dryRun=true", doc)
    assert (status, dry["dryRun"], dry["created"]) == (200, True, {"jobs": 1, "endpoints": 1})
    assert (await b.call("GET", "/jobs"))[1]["jobs"] == []
    status, done = await b.call("POST", "/import", doc)
    assert (status, done["created"]) == (200, {"jobs": 1, "endpoints": 1})
    doc["jobs"][0]["endpoints"][0]["baselineCron"] = "bad"
    status, body = await b.call("POST", "/import", doc)
    assert status == 422
    assert _error(body)["details"][0]["path"] == "jobs.0.endpoints.0.baselineCron"


async def test_docs_routes(served: Served) -> None:
    a = served.a
    status, doc = await a.call("GET", "/doc")
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    assert "apiKey" in doc["components"]["securitySchemes"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["paths"]["/jobs"]["get"]["security"]
    assert "security" not in doc["paths"]["/health"]["get"]
    async with a.http.get(f"{served.base}/api/reference") as resp:
        assert resp.status == 200
        assert "reference/app.js" in await resp.text()
        assert "script-src 'self'" in resp.headers["content-security-policy"]
    async with a.http.get(f"{served.base}/api/reference/app.js") as resp:
        assert resp.status == 200
        assert 'fetch("doc")' in await resp.text()
    async with a.http.get(f"{served.base}/api/llms.txt") as resp:
        text = await resp.text()
    assert resp.status == 200
    assert "### POST /api/jobs/{jobId}/endpoints" in text
    assert "## Schemas" in text


async def test_unauthenticated_is_401_in_the_envelope(served: Served) -> None:
    async with served.a.http.get(f"{served.base}/api/jobs") as resp:
        assert resp.status == 401
        assert _error(await resp.json())["code"] == "unauthorized"


async def test_signing_keys_rotate_with_grace(served: Served, engine: AsyncEngine) -> None:
    a = served.a
    status, info = await a.call("GET", "/signing-keys")
    assert (status, info["hasKey"], info["keyPrefix"]) == (200, False, None)
    assert (await a.call("POST", "/signing-keys/rotate"))[0] == 404
    status, first = await a.call("POST", "/signing-keys")
    assert status == 201
    assert len(first["rawKey"]) == 64
    assert first["keyPrefix"] == "sk_" + first["rawKey"][:8]
    status, body = await a.call("POST", "/signing-keys")
    assert (status, _error(body)["code"]) == (409, "conflict")
    status, second = await a.call("POST", "/signing-keys/rotate")
    assert status == 200
    assert second["previousKeyRetireAt"] is not None
    status, info = await a.call("GET", "/signing-keys")
    assert (info["hasKey"], info["keyPrefix"]) == (True, second["keyPrefix"])
    assert [k["keyPrefix"] for k in info["graceKeys"]] == [first["keyPrefix"]]
    assert "rawKey" not in info
    async with engine.connect() as conn:
        keys = await key_store.load_signing_keys(
            conn, [a.user_id, served.b.user_id], datetime.now(UTC), "s" * 40
        )
    assert keys == {a.user_id: [bytes.fromhex(second["rawKey"]), bytes.fromhex(first["rawKey"])]}


async def test_run_now_calls_signs_and_records(served: Served) -> None:
    """POST /endpoints/{id}/test calls the target at once, signed, and records a test run
    without touching the schedule."""
    a = served.a
    seen: list[dict[str, str]] = []
    target = FastAPI()

    @target.post("/hook")
    async def hook(request: Request) -> dict[str, Any]:
        seen.append({k.lower(): v for k, v in request.headers.items()} | {"body": ""})
        seen[-1]["body"] = (await request.body()).decode()
        return {"ok": True}

    @target.get("/boom")
    async def boom() -> JSONResponse:
        return JSONResponse({"down": True}, status_code=503)

    _, key = await a.call("POST", "/signing-keys")
    job = await _job(a)
    async with serve_app(target) as target_base:
        ep = await _endpoint(
            a, job["id"], url=f"{target_base}/hook", method="POST", bodyJson={"n": 1}
        )
        status, result = await a.call("POST", f"/endpoints/{ep['id']}/test")
        assert status == 200, result
        assert (result["status"], result["statusCode"], result["responseBody"]) == (
            "success",
            200,
            {"ok": True},
        )
        headers = seen[0]
        assert verify(
            key["rawKey"],
            headers["x-cronicorn-timestamp"],
            headers["body"].encode(),
            headers["x-cronicorn-signature"],
        )
        failing = await _endpoint(a, job["id"], name="boom", url=f"{target_base}/boom")
        status, failed = await a.call("POST", f"/endpoints/{failing['id']}/test")
        assert (status, failed["status"], failed["statusCode"]) == (200, "failed", 503)
    status, run = await a.call("GET", f"/runs/{result['runId']}")
    assert (status, run["source"], run["attempt"], "dueAt" in run) == (200, "test", 1, False)
    after = (await a.call("GET", f"/jobs/{job['id']}/endpoints/{ep['id']}"))[1]
    assert (after["nextRunAt"], after["failureCount"]) == (ep["nextRunAt"], 0)

    status, body = await a.call(
        "POST", f"/jobs/{job['id']}/endpoints", {**ENDPOINT, "url": "http://169.254.169.254/x"}
    )
    assert status == 422
    assert _error(body)["details"][0]["path"] == "url"
    await a.call("POST", f"/jobs/{job['id']}/endpoints/{ep['id']}/archive")
    assert (await a.call("POST", f"/endpoints/{ep['id']}/test"))[0] == 409


async def test_job_resume_after_downtime_runs_once(served: Served) -> None:
    """Driven by the app's clock: a job paused for hours resumes with one catch-up run per
    endpoint (now), then each endpoint is back on its grid."""
    a = served.a
    clock = {"now": datetime(2025, 6, 1, 12, 0, tzinfo=UTC)}
    set_clock(served.app, lambda: clock["now"])
    job = await _job(a)
    ep = await _endpoint(a, job["id"])
    assert ep["nextRunAt"] == "2025-06-01T12:01:00.000Z"
    await a.call("POST", f"/jobs/{job['id']}/pause")
    clock["now"] += timedelta(hours=3)
    status, resumed = await a.call("POST", f"/jobs/{job['id']}/resume")
    assert (status, resumed["status"]) == (200, "active")
    after = (await a.call("GET", f"/jobs/{job['id']}/endpoints/{ep['id']}"))[1]
    assert (after["nextRunAt"], after["nextRunSource"]) == ("2025-06-01T15:00:00.000Z", "misfire")
    status, preview = await a.call("GET", f"/endpoints/{ep['id']}/preview", count=3)
    assert [p["at"] for p in preview["runs"]] == [
        "2025-06-01T15:00:00.000Z",
        "2025-06-01T15:01:00.000Z",
        "2025-06-01T15:02:00.000Z",
    ]
