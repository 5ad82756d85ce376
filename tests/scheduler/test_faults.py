"""Bad input and faults: each one fails (or is recorded for) its own endpoint alone, with a
clear run error, while the other endpoints keep running."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler.conftest import Rows, Target, running_scheduler, serve_target, utc
from support import until


async def _trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    for _ in range(50):
        await response.write(b".")
        await asyncio.sleep(0.2)
    return response


async def _big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = 50 * 1024 * 1024
    await response.prepare(request)
    chunk = b"x" * (1024 * 1024)
    try:
        for _ in range(50):
            await response.write(chunk)
    except (ConnectionResetError, RuntimeError):
        pass  # the scheduler stops reading at its cap and drops the connection
    return response


async def _bad_json(request: web.Request) -> web.StreamResponse:
    return web.Response(text="{not json", content_type="application/json")


async def _loop(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(location=str(request.url))


async def _close(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response()


async def _nul(request: web.Request) -> web.StreamResponse:
    if request.query.get("kind") == "json":
        return web.Response(body=b'{"a":"x\\u0000y"}', content_type="application/json")
    if request.query.get("kind") == "surrogate":  # valid JSON that jsonb refuses
        return web.Response(body=b'{"a":"\\ud800"}', content_type="application/json")
    return web.Response(body=b"a\x00b\xff\xfe", content_type="text/plain")


FAULTS: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    "/trickle": _trickle,
    "/big": _big,
    "/badjson": _bad_json,
    "/loop": _loop,
    "/close": _close,
    "/nul": _nul,
}


async def test_faulty_targets_are_recorded_and_the_others_keep_running(
    rows: Rows, database_url: str, engine: AsyncEngine
) -> None:
    async with serve_target(FAULTS) as target:
        good = await rows.endpoint(target.url("/ok/good"), first_at=utc())
        faults = {
            "hang": await rows.endpoint(target.url("/hang/30/x"), timeout_ms=1000),
            "trickle": await rows.endpoint(target.url("/trickle"), timeout_ms=1000),
            "big": await rows.endpoint(target.url("/big")),
            "badjson": await rows.endpoint(target.url("/badjson")),
            "loop": await rows.endpoint(target.url("/loop")),
            "close": await rows.endpoint(target.url("/close")),
            "nul_json": await rows.endpoint(target.url("/nul?kind=json")),
            "nul_text": await rows.endpoint(target.url("/nul?kind=text")),
            "surrogate": await rows.endpoint(target.url("/nul?kind=surrogate")),
            "forbidden": await rows.endpoint("http://169.254.169.254/latest/meta-data"),
        }

        async def all_recorded() -> bool:
            finished = [r for r in await rows.runs() if r["status"] != "running"]
            done = {r["endpoint_id"] for r in finished}
            good_runs = sum(1 for r in finished if r["endpoint_id"] == good)
            return set(faults.values()) <= done and good_runs >= 3

        async with running_scheduler(database_url, engine):
            await until(all_recorded, timeout=30, what="every fault recorded, good ran 3x")

    first = {name: (await rows.runs(eid))[0] for name, eid in faults.items()}
    assert "timed out" in first["hang"]["error_message"]
    assert "timed out" in first["trickle"]["error_message"]
    assert first["big"]["response_truncated"] is True
    assert first["big"]["response_size"] <= 100 * 1024 + 1
    assert first["badjson"]["response_text"] == "{not json"
    assert "redirect" in first["loop"]["error_message"].lower()
    assert first["close"]["status"] == "failed"
    assert first["close"]["error_message"]
    assert first["nul_json"]["status"] == "success"
    assert first["nul_json"]["response_text"] == '{"a":"x\\u0000y"}'  # jsonb refuses it
    assert first["nul_text"]["status"] == "success"
    assert "\x00" not in first["nul_text"]["response_text"]
    assert "not allowed" in first["forbidden"]["error_message"]
    assert first["surrogate"]["response_body"] is None
    assert "response not stored" in first["surrogate"]["error_message"]
    good_runs = await rows.runs(good)
    assert all(r["status"] == "success" for r in good_runs)


async def test_a_broken_stored_schedule_fails_that_endpoint_alone(
    rows: Rows, target: Target, database_url: str, engine: AsyncEngine
) -> None:
    good = await rows.endpoint(target.url("/ok/good"), first_at=utc())
    bad_cron = await rows.endpoint(
        target.url("/ok/cron"), baseline_cron="not a cron", baseline_interval_ms=None
    )
    bad_zone = await rows.endpoint(
        target.url("/ok/zone"), baseline_cron="* * * * *", timezone="Mars/Olympus_Mons"
    )

    async def recorded() -> bool:
        done = {r["endpoint_id"] for r in await rows.runs() if r["status"] == "failed"}
        return {bad_cron, bad_zone} <= done and await rows.run_count(good) >= 3

    async with running_scheduler(database_url, engine):
        await until(recorded, timeout=20, what="failed runs and a healthy neighbour")
    for endpoint, word in ((bad_cron, "cron"), (bad_zone, "timezone")):
        (run,) = await rows.runs(endpoint)  # no retry storm
        assert run["status"] == "failed"
        assert "invalid schedule" in run["error_message"]
        assert word in run["error_message"]
        row = await rows.endpoint_row(endpoint)
        assert row["next_run_at"] > utc(seconds=60), "backed off, not spinning"
        assert row["failure_count"] == 1
        assert row["lease_owner"] is None
    assert target.count("/ok/cron") == 0, "a broken schedule is not called"
    assert target.count("/ok/zone") == 0
