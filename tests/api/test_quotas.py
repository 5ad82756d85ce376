"""Optional per-user quotas through the API: endpoint count (also under concurrent creates and
imports), the interval floor on every way a schedule is set, the monthly run quota on "run
now", and the usage route reporting the limits. Off by default (other modules run with none)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Client, Served, serving
from cronicorn.domain import Quotas, next_month_start
from cronicorn.schemas.common import iso_ms
from cronicorn.store import endpoints as endpoint_store
from cronicorn.store import jobs as job_store
from cronicorn.store.errors import QuotaExceeded
from cronicorn.store.tables import endpoints
from support import a_session_waits_on_a_lock, serve_app, until

QUOTAS = {
    "QUOTA_MAX_ENDPOINTS": 2,
    "QUOTA_MIN_INTERVAL_MS": 60_000,
    "QUOTA_RUNS_PER_MONTH": 2,
}
MINUTE = {"url": "https://example.com/ping", "baselineIntervalMs": 60_000}


@pytest.fixture
async def limited(database_url: str, engine: AsyncEngine) -> AsyncIterator[Served]:
    async with serving(database_url, engine, **QUOTAS) as served:
        yield served


async def _job(client: Client, name: str = "nightly") -> str:
    status, job = await client.call("POST", "/jobs", {"name": name})
    assert status == 201, job
    return str(job["id"])


async def _create(client: Client, job_id: str, name: str, **fields: Any) -> tuple[int, Any]:
    return await client.call(
        "POST", f"/jobs/{job_id}/endpoints", {**MINUTE, "name": name, **fields}
    )


def _quota_error(body: Any, quota: str, limit: int, used: int) -> dict[str, Any]:
    error = body["error"]
    assert error["code"] == "quota_exceeded", body
    assert error["details"]["quota"] == quota
    assert (error["details"]["limit"], error["details"]["used"]) == (limit, used)
    assert error["requestId"]
    return error  # type: ignore[no-any-return]


def _invalid_at(body: Any, path: str) -> None:
    assert body["error"]["code"] == "validation_error", body
    assert [d["path"] for d in body["error"]["details"]] == [path], body


async def test_the_endpoint_quota_counts_live_endpoints_only(limited: Served) -> None:
    a = limited.a
    job = await _job(a)
    first = (await _create(a, job, "one"))[1]
    assert (await _create(a, job, "two"))[0] == 201
    status, body = await _create(a, job, "three")
    assert status == 403
    assert "Endpoint quota reached" in _quota_error(body, "QUOTA_MAX_ENDPOINTS", 2, 2)["message"]
    _, listed = await a.call("GET", f"/jobs/{job}/endpoints")
    assert [e["name"] for e in listed["endpoints"]] == ["one", "two"], "nothing half-written"

    # An archived endpoint frees its place; an archived job frees all of its endpoints.
    status, _ = await a.call("POST", f"/jobs/{job}/endpoints/{first['id']}/archive")
    assert status == 200
    assert (await _create(a, job, "three"))[0] == 201
    assert (await a.call("DELETE", f"/jobs/{job}"))[0] == 200
    other = await _job(a, "other")
    assert (await _create(a, other, "x"))[0] == 201
    assert (await _create(a, other, "y"))[0] == 201
    _, usage = await a.call("GET", "/subscriptions/usage")
    assert (usage["endpointsUsed"], usage["endpointsLimit"]) == (2, 2)
    # Quotas are per user: bob has his own two places.
    bobs = await _job(limited.b)
    assert (await _create(limited.b, bobs, "b1"))[0] == 201


async def test_concurrent_creates_cannot_pass_the_endpoint_quota(limited: Served) -> None:
    a = limited.a
    job = await _job(a)
    results = await asyncio.gather(*(_create(a, job, f"e{i}") for i in range(6)))
    assert sorted(status for status, _ in results) == [201, 201, 403, 403, 403, 403]
    _, listed = await a.call("GET", f"/jobs/{job}/endpoints")
    assert len(listed["endpoints"]) == 2


async def test_a_create_waits_for_a_concurrent_one_then_counts_it(
    engine: AsyncEngine, alice: str
) -> None:
    """Deterministic form of the race: B's count must see A's endpoint, so B waits for A."""
    quotas = Quotas(max_endpoints=1)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        job_id = (await job_store.create(conn, alice, name="j", description=None, now=now)).id
    config = {"name": "e", "url": MINUTE["url"], "baseline_interval_ms": 60_000}
    async with engine.connect() as a, engine.connect() as b:
        await endpoint_store.create(a, alice, job_id, config, now, quotas=quotas)

        async def second() -> None:
            await endpoint_store.create(b, alice, job_id, config, now, quotas=quotas)

        task = asyncio.create_task(second())

        async def b_waits() -> bool:
            return task.done() or await a_session_waits_on_a_lock(engine)

        await until(b_waits, timeout=10, what="the second create blocked")
        assert not task.done(), "the second create must wait for the first"
        await a.commit()
        with pytest.raises(QuotaExceeded):
            await asyncio.wait_for(task, 10)


async def test_the_interval_floor_holds_on_create_edit_and_hints(limited: Served) -> None:
    a = limited.a
    job = await _job(a)
    status, body = await _create(a, job, "fast", baselineIntervalMs=30_000)
    assert status == 422
    _invalid_at(body, "baselineIntervalMs")
    assert "QUOTA_MIN_INTERVAL_MS" in body["error"]["message"]
    status, body = await _create(a, job, "capped", maxIntervalMs=30_000)
    assert status == 422
    _invalid_at(body, "maxIntervalMs")

    status, cron = await a.call(
        "POST",
        f"/jobs/{job}/endpoints",
        {"name": "cron", "url": MINUTE["url"], "baselineCron": "* * * * *"},
    )
    assert status == 201, cron
    assert cron["minIntervalMs"] == 60_000, "cron endpoints are held to the floor too"
    status, slow = await _create(a, job, "slow", minIntervalMs=120_000, baselineIntervalMs=120_000)
    assert status == 201
    assert slow["minIntervalMs"] == 120_000, "a higher minimum is kept"

    path = f"/jobs/{job}/endpoints/{cron['id']}"
    status, body = await a.call("PATCH", path, {"baselineIntervalMs": 1_000})
    assert status == 422
    _invalid_at(body, "baselineIntervalMs")
    status, body = await a.call("PATCH", path, {"minIntervalMs": None, "timezone": "Europe/Oslo"})
    assert status == 200, body
    assert body["minIntervalMs"] == 60_000, "clearing the minimum restores the floor"
    assert body["baselineCron"] == "* * * * *", "the refused edit left nothing behind"

    hint = f"/endpoints/{cron['id']}/hints/interval"
    status, body = await a.call("POST", hint, {"intervalMs": 30_000})
    assert status == 422
    _invalid_at(body, "intervalMs")
    assert (await a.call("POST", hint, {"intervalMs": 60_000}))[0] == 204
    _, usage = await a.call("GET", "/subscriptions/usage")
    assert usage["minIntervalMs"] == 60_000


async def test_endpoints_from_before_the_quota_change_only_when_rescheduled(
    limited: Served, engine: AsyncEngine
) -> None:
    a = limited.a
    job = await _job(a)
    _, made = await _create(a, job, "old")
    async with engine.begin() as conn:  # as written before QUOTA_MIN_INTERVAL_MS was set
        await conn.execute(
            update(endpoints)
            .where(endpoints.c.id == made["id"])
            .values(baseline_interval_ms=5_000, min_interval_ms=None)
        )
    path = f"/jobs/{job}/endpoints/{made['id']}"
    status, body = await a.call("PATCH", path, {"name": "renamed"})
    assert status == 200, "editing what does not schedule is not refused"
    assert (body["baselineIntervalMs"], body.get("minIntervalMs")) == (5_000, None)
    status, body = await a.call("PATCH", path, {"timezone": "Europe/Oslo"})
    assert status == 422, "a schedule edit must keep to the quota"
    _invalid_at(body, "baselineIntervalMs")


async def test_import_keeps_to_the_quotas_and_stays_idempotent(limited: Served) -> None:
    a = limited.a
    endpoint = {**MINUTE}
    doc = {"version": 1, "jobs": [{"name": "j", "endpoints": [{**endpoint, "name": "n1"}]}]}
    status, report = await a.call("POST", "/import", doc)
    assert status == 200, report
    status, again = await a.call("POST", "/import", doc)
    assert (again["created"]["endpoints"], again["unchanged"]["endpoints"]) == (0, 1)

    three = [{**endpoint, "name": f"m{i}"} for i in range(3)]
    big = {"version": 1, "jobs": [{"name": "k", "endpoints": three}]}
    for params in ({"dryRun": "true"}, {}):
        status, body = await a.call("POST", "/import", big, **params)
        assert status == 403, body
        _quota_error(body, "QUOTA_MAX_ENDPOINTS", 2, 2)
    _, exported = await a.call("GET", "/export")
    assert [j["name"] for j in exported["jobs"]] == ["j"], "all or nothing"


async def test_run_now_stops_at_the_monthly_run_quota(limited: Served) -> None:
    target = FastAPI()

    @target.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    a = limited.a
    async with serve_app(target) as target_base:
        job = await _job(a)
        _, made = await _create(a, job, "local", url=f"{target_base}/ok")
        for _ in range(2):
            status, result = await a.call("POST", f"/endpoints/{made['id']}/test")
            assert (status, result["status"]) == (200, "success"), result
        status, body = await a.call("POST", f"/endpoints/{made['id']}/test")
    assert status == 403
    error = _quota_error(body, "QUOTA_RUNS_PER_MONTH", 2, 2)
    assert error["details"]["resetsAt"] == iso_ms(next_month_start(datetime.now(UTC)))
    _, usage = await a.call("GET", "/subscriptions/usage")
    assert (usage["runsThisMonth"], usage["totalRunsLimit"]) == (2, 2)
    assert usage["periodEnd"] == error["details"]["resetsAt"]
    _, runs = await a.call("GET", f"/endpoints/{made['id']}/runs")
    assert len(runs["runs"]) == 2, "the refused run was not recorded"


async def test_concurrent_run_now_calls_never_pass_the_monthly_quota(limited: Served) -> None:
    """Five calls at once with two places left: the target holds every call it receives until
    all five requests are settled one way or the other, so a quota checked before and counted
    after the call would let all five through."""
    arrived: list[int] = []
    refused: list[int] = []
    release = asyncio.Event()
    target = FastAPI()

    @target.get("/hold")
    async def hold() -> dict[str, bool]:
        arrived.append(1)
        await release.wait()
        return {"ok": True}

    a = limited.a
    async with serve_app(target) as target_base:
        try:
            job = await _job(a)
            _, made = await _create(a, job, "held", url=f"{target_base}/hold")

            async def run_now() -> int:
                status, _ = await a.call("POST", f"/endpoints/{made['id']}/test")
                if status == 403:
                    refused.append(status)
                return status

            calls = [asyncio.create_task(run_now()) for _ in range(5)]
            settled = "all settled"
            await until(lambda: len(arrived) + len(refused) == 5, timeout=20, what=settled)
            release.set()
            statuses = sorted(await asyncio.gather(*calls))
        finally:
            release.set()
    assert (len(arrived), statuses) == (2, [200, 200, 403, 403, 403])
    _, usage = await a.call("GET", "/subscriptions/usage")
    assert usage["runsThisMonth"] == 2
