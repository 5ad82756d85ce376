"""Retries within a run: the policy as a pure value, and in the scheduler: one run per slot,
every call recorded on it, the same run id sent each time, only listed failures retried."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import serving
from cronicorn.domain.errors import RuleError
from cronicorn.domain.retry import NO_RETRY, parse_retry, retry_to_json
from scheduler.conftest import Rows, running_scheduler, serve_target
from support import until


def test_policy_delays_and_what_is_retried() -> None:
    assert parse_retry(None) == NO_RETRY
    assert NO_RETRY.attempts == 1
    policy = parse_retry(
        {"attempts": 5, "initialDelayMs": 500, "maxDelayMs": 3000, "on": ["5xx", 429, "timeout"]}
    )
    assert [policy.delay_ms(n) for n in range(1, 6)] == [500, 1000, 2000, 3000, 3000]
    fixed = parse_retry({"attempts": 3, "backoff": "fixed", "initialDelayMs": 250})
    assert [fixed.delay_ms(n) for n in (1, 2)] == [250, 250]
    assert policy.retries(503, None)
    assert policy.retries(429, None)
    assert not policy.retries(404, None)
    assert policy.retries(None, "timeout")
    assert not policy.retries(None, "connection")
    assert not policy.retries(None, "refused")
    assert parse_retry(retry_to_json(policy)) == policy


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "retry: expected an object"),
        ({"attempts": 0}, "retry.attempts"),
        ({"attempts": 11}, "retry.attempts"),
        ({"attempts": True}, "retry.attempts"),
        ({"backoff": "linear"}, "retry.backoff"),
        ({"initialDelayMs": 5000, "maxDelayMs": 10}, "retry.maxDelayMs"),
        ({"on": []}, "retry.on"),
        ({"on": ["7xx"]}, "retry.on"),
        ({"tries": 3}, "retry.tries: unknown field"),
    ],
)
def test_bad_policies_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_retry(raw)
    assert str(info.value).startswith(message), str(info.value)


def flaky(failures: int, code: int = 503) -> Any:
    """Answers `code` to the first `failures` calls of each path, then 200."""
    seen: dict[str, int] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        seen[request.path] = seen.get(request.path, 0) + 1
        if seen[request.path] <= failures:
            return web.json_response({"busy": True}, status=code)
        return web.json_response({"ok": True})

    return handler


async def test_a_slot_is_retried_within_one_run(database_url: str, engine: AsyncEngine) -> None:
    rows = await Rows(engine).setup()
    fast = {"attempts": 3, "backoff": "fixed", "initialDelayMs": 50, "on": ["5xx"]}
    async with serve_target({"/flaky/{name}": flaky(2), "/gone/{name}": flaky(99, 404)}) as target:
        recovers = await rows.endpoint(
            target.url("/flaky/recovers"), baseline_interval_ms=3_600_000, retry=fast
        )
        gives_up = await rows.endpoint(
            target.url("/flaky/gives-up"),
            baseline_interval_ms=3_600_000,
            retry={**fast, "attempts": 2},
        )
        not_listed = await rows.endpoint(
            target.url("/gone/x"), baseline_interval_ms=3_600_000, retry=fast
        )

        async def all_done() -> bool:
            counts = [await rows.run_count(e) for e in (recovers, gives_up, not_listed)]
            return min(counts) >= 1 and await rows.run_count(status="running") == 0

        async with running_scheduler(database_url, engine):
            await until(all_done, timeout=30, what="one finished run each")

        hits = {path: [h for h in target.hits if h.path == path] for path in ("/flaky/recovers",)}
    [run] = await rows.runs(recovers)
    assert (run["status"], run["status_code"]) == ("success", 200)
    assert [(a["attempt"], a["statusCode"]) for a in run["attempts"]] == [
        (1, 503),
        (2, 503),
        (3, 200),
    ]
    assert {h.run_id for h in hits["/flaky/recovers"]} == {run["id"]}  # one idempotency key
    assert len(hits["/flaky/recovers"]) == 3
    [failed] = await rows.runs(gives_up)
    assert failed["status"] == "failed"
    assert [a["statusCode"] for a in failed["attempts"]] == [503, 503]
    assert (await rows.endpoint_row(gives_up))["failure_count"] == 1  # one slot, one failure
    [gone] = await rows.runs(not_listed)
    assert gone["status"] == "failed"
    assert [a["statusCode"] for a in gone["attempts"]] == [404]  # not listed: not retried


async def test_retry_at_the_api(database_url: str, engine: AsyncEngine) -> None:
    async with serving(database_url, engine) as served:
        a = served.a
        _, job = await a.call("POST", "/jobs", {"name": "r"})
        base = {"name": "e", "url": "https://example.com/x", "baselineIntervalMs": 60000}
        status, body = await a.call(
            "POST", f"/jobs/{job['id']}/endpoints", {**base, "retry": {"attempts": 3}}
        )
        assert status == 201, body
        assert body["retry"] == {
            "attempts": 3,
            "backoff": "exponential",
            "initialDelayMs": 1000,
            "maxDelayMs": 30000,
            "on": ["5xx", "timeout", "connection"],
        }
        status, body = await a.call(
            "POST",
            f"/jobs/{job['id']}/endpoints",
            {**base, "name": "f", "retry": {"attempts": 30}},
        )
        assert status == 422, body
        detail = body["error"]["details"][0]
        assert detail["path"] == "retry"
        assert "retry.attempts" in detail["message"]
