"""Assertions end to end: validated at the API (422 naming the field), kept through
import/export, and deciding success for "run now" and for the scheduler, whose failed
assertions back off like any failure."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Client, serving
from scheduler.conftest import Rows, running_scheduler, serve_target, utc
from support import until

ENDPOINT = {"name": "ping", "url": "https://example.com/ping", "baselineIntervalMs": 60000}
OK_ASSERTIONS = {
    "statuses": ["2xx"],
    "conditions": [{"jsonPath": "$.status", "op": "==", "value": "ok"}],
}


async def _job(client: Client, name: str = "rules") -> str:
    status, job = await client.call("POST", "/jobs", {"name": name})
    assert status == 201, job
    return str(job["id"])


async def _create(client: Client, job_id: str, **fields: Any) -> tuple[int, Any]:
    return await client.call("POST", f"/jobs/{job_id}/endpoints", {**ENDPOINT, **fields})


def _detail(body: Any) -> tuple[str, str]:
    detail = body["error"]["details"][0]
    return detail["path"], detail["message"]


async def _health(request: web.Request) -> web.StreamResponse:
    state = request.match_info["state"]
    code = int(request.query.get("code", "200"))
    return web.json_response({"status": state}, status=code)


async def test_assertions_are_validated_stored_and_exported(
    database_url: str, engine: AsyncEngine
) -> None:
    async with serving(database_url, engine) as served:
        a = served.a
        job = await _job(a)
        status, ep = await _create(a, job, assertions=OK_ASSERTIONS)
        assert status == 201, ep
        assert ep["assertions"] == OK_ASSERTIONS
        status, plain = await _create(a, job, name="plain")
        assert "assertions" not in plain
        assert "rules" not in plain

        bad = {"statuses": ["2xx"], "conditions": [{"jsonPath": "$.[", "op": "exists"}]}
        status, body = await _create(a, job, name="bad", assertions=bad)
        assert status == 422, body
        path, message = _detail(body)
        assert path == "assertions"
        assert "assertions.conditions[0].jsonPath: invalid JSON path" in message
        status, body = await _create(
            a, job, name="bad2", assertions={"conditions": [{"regex": "(a)\\1"}]}
        )
        assert status == 422, body
        assert "assertions.conditions[0].regex" in _detail(body)[1]

        status, patched = await a.call(
            "PATCH",
            f"/jobs/{job}/endpoints/{plain['id']}",
            {"assertions": {"statuses": [200, 304]}},
        )
        assert status == 200, patched
        assert patched["assertions"] == {"statuses": [200, 304], "conditions": []}
        status, cleared = await a.call(
            "PATCH", f"/jobs/{job}/endpoints/{plain['id']}", {"assertions": None}
        )
        assert status == 200
        assert "assertions" not in cleared

        status, doc = await a.call("GET", "/export")
        assert status == 200
        exported = {e["name"]: e for e in doc["jobs"][0]["endpoints"]}
        assert exported["ping"]["assertions"] == OK_ASSERTIONS
        status, report = await a.call("POST", "/import", {"jobs": doc["jobs"]}, dryRun="true")
        assert status == 200, report
        assert report["unchanged"]["endpoints"] == 2, report
        doc["jobs"][0]["endpoints"][0]["assertions"] = {"statuses": ["9xx"]}
        status, body = await a.call("POST", "/import", {"jobs": doc["jobs"]})
        assert status == 422, body
        assert "assertions.statuses[0]" in _detail(body)[1]


async def test_run_now_follows_the_assertions(database_url: str, engine: AsyncEngine) -> None:
    async with (
        serve_target({"/health/{state}": _health}) as target,
        serving(database_url, engine) as served,
    ):
        a = served.a
        job = await _job(a)
        _, degraded = await _create(
            a, job, url=target.url("/health/degraded"), assertions=OK_ASSERTIONS
        )
        status, result = await a.call("POST", f"/endpoints/{degraded['id']}/test")
        assert status == 200, result
        assert result["status"] == "failed"
        assert result["errorMessage"] == 'assertion failed: $.status was "degraded", expected "ok"'
        status, run = await a.call("GET", f"/runs/{result['runId']}")
        assert (run["status"], run["errorMessage"]) == ("failed", result["errorMessage"])

        _, healthy = await _create(
            a, job, name="healthy", url=target.url("/health/ok"), assertions=OK_ASSERTIONS
        )
        assert (await a.call("POST", f"/endpoints/{healthy['id']}/test"))[1]["status"] == "success"

        _, moved = await _create(
            a,
            job,
            name="not-modified",
            url=target.url("/health/ok?code=304"),
            assertions={"statuses": ["2xx", 304]},
        )
        result = (await a.call("POST", f"/endpoints/{moved['id']}/test"))[1]
        assert (result["status"], result["statusCode"]) == ("success", 304)
        assert "errorMessage" not in result

        _, down = await _create(
            a,
            job,
            name="down",
            url=target.url("/health/ok?code=503"),
            assertions={"statuses": [200]},
        )
        result = (await a.call("POST", f"/endpoints/{down['id']}/test"))[1]
        assert result["errorMessage"] == "assertion failed: status 503, expected 200"


async def test_the_scheduler_fails_runs_whose_assertions_fail_and_backs_off(
    database_url: str, engine: AsyncEngine
) -> None:
    rows = await Rows(engine).setup()
    async with serve_target({"/health/{state}": _health}) as target:
        degraded = await rows.endpoint(target.url("/health/degraded"), assertions=OK_ASSERTIONS)
        healthy = await rows.endpoint(target.url("/health/ok"), assertions=OK_ASSERTIONS)
        expected_503 = await rows.endpoint(
            target.url("/health/busy?code=503"), assertions={"statuses": [503]}
        )
        plain_text = await rows.endpoint(
            target.url("/plain"), assertions={"conditions": [{"jsonPath": "$.ok", "op": "exists"}]}
        )

        async def each_ran_twice() -> bool:
            counts = [
                await rows.run_count(e) for e in (degraded, healthy, expected_503, plain_text)
            ]
            finished = await rows.run_count(status="running")
            return min(counts) >= 2 and finished == 0

        async with running_scheduler(database_url, engine):
            await until(each_ran_twice, timeout=30, what="two runs of each endpoint")

    for run in await rows.runs(degraded):
        assert (run["status"], run["status_code"]) == ("failed", 200)
        assert run["error_message"] == 'assertion failed: $.status was "degraded", expected "ok"'
        assert run["response_body"] == {"status": "degraded"}
    assert (await rows.endpoint_row(degraded))["failure_count"] >= 2  # counted for backoff
    assert {r["status"] for r in await rows.runs(healthy)} == {"success"}
    assert {r["status"] for r in await rows.runs(expected_503)} == {"success"}
    assert (await rows.endpoint_row(healthy))["failure_count"] == 0
    plain_runs = await rows.runs(plain_text)  # 404 text: the status fails first
    assert {r["error_message"] for r in plain_runs} == {
        "assertion failed: status 404, expected 2xx"
    }
    assert utc() > plain_runs[0]["started_at"]
