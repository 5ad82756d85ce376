"""Issue 10 item 8, end to end through the real `cronicorn up`: a target whose body reports
a rising queue depth makes the planner tighten the interval and the scheduler run faster;
when the depth falls it relaxes. In suggest mode nothing changes until the suggestion is
applied over the API. Without a model, health says the planner is disabled.

Speeds are read from the runs' planned slots (`due_at` gaps and `source`), which the
governor sets exactly, so the assertions hold however busy the machine is.

The auto and suggest scenarios share one `up` (and one database): both endpoints are created
when it starts, so the two run side by side and each test waits for its own."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import credentials
from conftest import PgServer
from cronicorn.store.db import make_async_engine
from cronicorn.store.tables import runs
from planner.fake_llm import FakeModel, Reply, call, serving, submit, tools
from support import cli_env, free_port, shared_cli, start_cli, until

pytestmark = pytest.mark.slow

SECRET = "x" * 40
BASELINE_MS, FAST_MS = 3000, 1000


@dataclass
class Target:
    depths: dict[str, int] = field(default_factory=dict)
    base: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.json_response(
            {"queue_depth": self.depths[name], "queue_warning_threshold": 500, "trend": "steady"}
        )


@pytest.fixture(scope="module")
async def target() -> AsyncIterator[Target]:
    state = Target()
    app = web.Application()
    app.router.add_get("/q/{name}", state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        yield state
    finally:
        await runner.cleanup()


def queue_policy(body: dict[str, Any]) -> Reply:
    """A scripted model that follows the description: > 500 tighten to 1 s, < 100 relax."""
    messages = body["messages"]
    if messages[-1]["role"] == "tool":
        return submit("Done.", next_analysis_in_ms=1000)
    prompt = messages[1]["content"]
    recent = prompt.split("## Recent runs", 1)[-1]
    found = re.search(r'"queue_depth":(\d+)', recent)
    depth = int(found.group(1)) if found else None
    hinted = f"interval {FAST_MS} ms" in prompt
    if depth is not None and depth > 500 and not hinted:
        reason = f"queue_depth {depth} > 500"
        return tools(
            call("propose_interval", {"intervalMs": FAST_MS, "ttlMinutes": 30, "reason": reason})
        )
    if depth is not None and depth < 100 and hinted:
        return tools(call("clear_hints", {"reason": f"queue_depth {depth} is normal"}))
    return submit("No change.", next_analysis_in_ms=1000)


@dataclass
class Up:
    base: str
    http: aiohttp.ClientSession
    headers: dict[str, str]

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        kw: dict[str, Any] = {"headers": self.headers}
        if body is not None:
            kw["json"] = body
        async with self.http.request(method, f"{self.base}/api{path}", **kw) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _up_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    return cli_env(
        DATABASE_URL=database_url,
        PORT=str(port),
        HOST="127.0.0.1",
        AUTH_SECRET=SECRET,
        **extra,
    )


async def _health(
    proc: subprocess.Popen[str], client: Up, ready: Callable[[dict[str, Any]], bool], what: str
) -> None:
    """Poll `up`'s health until `ready(body)`; fail at once if the process exits."""

    async def answered() -> bool:
        assert proc.poll() is None, proc.communicate()
        try:
            status, body = await client.call("GET", "/health")
        except aiohttp.ClientError:
            return False
        return status == 200 and ready(body)

    await until(answered, timeout=90, what=what)


@dataclass
class Shared:
    """One `up` with the scripted model, and the endpoints of both scenarios in it."""

    client: Up
    engine: AsyncEngine
    auto: str
    suggest: str


@pytest.fixture(scope="module")
def module_database(pg_server: PgServer) -> Iterator[str]:
    """A migrated database for the module's shared `up`."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(scope="module")
async def shared(
    module_database: str, target: Target, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Shared]:
    engine = make_async_engine(module_database, pool_size=2, max_overflow=2)
    try:
        async with serving(FakeModel(default=queue_policy)) as fake:
            port = free_port()
            env = _up_env(
                module_database,
                port,
                CRONICORN_ALLOW_NETWORKS="127.0.0.0/8",
                OPENAI_BASE_URL=fake.base_url,
                OPENAI_API_KEY="test",
                AI_MODEL="scripted",
                AI_ANALYSIS_INTERVAL_MS="300",
                AI_LOOKBACK_MINUTES="1",
                RATE_LIMIT_READ_RPM="1000000",
                RATE_LIMIT_WRITE_RPM="1000000",
            )
            cwd = tmp_path_factory.mktemp("up")
            with shared_cli("up", env=env, cwd=cwd) as proc:
                _, headers = await credentials(engine, "e2e@example.com")
                async with aiohttp.ClientSession() as http:
                    client = Up(f"http://127.0.0.1:{port}", http, headers)
                    await _health(
                        proc,
                        client,
                        lambda body: body.get("planner", {}).get("status") == "ok",
                        "cronicorn up with the planner",
                    )
                    auto = await _endpoint(client, target, "auto", "auto")
                    suggest = await _endpoint(client, target, "suggest", "suggest")
                    yield Shared(client, engine, auto, suggest)
                assert _stop(proc) == 0
    finally:
        await engine.dispose()


async def _endpoint(up: Up, target: Target, name: str, job_mode: str) -> str:
    status, job = await up.call("POST", "/jobs", {"name": f"queues {name}", "aiMode": job_mode})
    assert status == 201, job
    target.depths[name] = 800
    status, ep = await up.call(
        "POST",
        f"/jobs/{job['id']}/endpoints",
        {
            "name": name,
            "url": f"{target.base}/q/{name}",
            "description": "If queue_depth > queue_warning_threshold poll every second; "
            "below 100 return to baseline.",
            "baselineIntervalMs": BASELINE_MS,
            "minIntervalMs": FAST_MS,
            "maxIntervalMs": 10_000,
        },
    )
    assert status == 201, ep
    return str(ep["id"])


async def _slots(engine: AsyncEngine, endpoint_id: str) -> list[tuple[str, float | None]]:
    """(source, gap to the previous slot in ms) of each scheduled run, oldest first."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(runs.c.source, runs.c.due_at)
                .where(runs.c.endpoint_id == endpoint_id, runs.c.due_at.is_not(None))
                .order_by(runs.c.due_at)
            )
        ).all()
    out: list[tuple[str, float | None]] = []
    for i, row in enumerate(rows):
        gap = (row.due_at - rows[i - 1].due_at).total_seconds() * 1000 if i else None
        out.append((row.source, gap))
    return out


async def _fast_runs(engine: AsyncEngine, ep: str) -> int:
    return sum(
        1 for source, gap in await _slots(engine, ep) if source == "ai-interval" and gap == FAST_MS
    )


@pytest.mark.xdist_group("planner-e2e")  # one worker, one `up` for both scenarios
async def test_auto_mode_tightens_on_a_deep_queue_and_relaxes_when_it_drains(
    shared: Shared, target: Target
) -> None:
    client, engine, ep = shared.client, shared.engine, shared.auto

    async def tightened() -> bool:
        return await _fast_runs(engine, ep) >= 3

    await until(tightened, timeout=90, what="three runs at the tightened 1 s interval")
    _, row = await client.call("GET", f"/jobs/{(await _job_of(client, ep))}/endpoints/{ep}")
    assert row["aiHintIntervalMs"] == FAST_MS
    assert row["aiHintSource"] == "ai"
    fast_before = await _fast_runs(engine, ep)

    target.depths["auto"] = 20

    async def relaxed() -> bool:
        slots = await _slots(engine, ep)
        return len(slots) >= 2 and slots[-1] == ("baseline-interval", BASELINE_MS)

    await until(relaxed, timeout=90, what="back to the 3 s baseline")
    assert await _fast_runs(engine, ep) >= fast_before
    status, sessions = await client.call("GET", f"/endpoints/{ep}/sessions?limit=100")
    assert status == 200, sessions
    outcomes = [s["outcome"] for s in sessions["sessions"]]
    assert outcomes.count("applied") >= 2  # tighten, then relax
    tools_used = {c["tool"] for s in sessions["sessions"] for c in s["toolCalls"]}
    assert {"propose_interval", "clear_hints", "submit_analysis"} <= tools_used
    async with client.http.get(f"{client.base}/metrics") as resp:
        metrics = await resp.text()
    assert 'cronicorn_planner_sessions_total{outcome="applied"}' in metrics
    assert "cronicorn_planner_model_latency_seconds_count" in metrics
    assert 'cronicorn_planner_tokens_total{kind="prompt"}' in metrics


@pytest.mark.xdist_group("planner-e2e")
async def test_suggest_mode_changes_nothing_until_applied(shared: Shared) -> None:
    client, engine, ep = shared.client, shared.engine, shared.suggest

    async def suggested() -> bool:
        _, body = await client.call("GET", f"/endpoints/{ep}/suggestions")
        return any(s["status"] == "pending" for s in body["suggestions"])

    await until(suggested, timeout=90, what="a pending suggestion")
    _, row = await client.call("GET", f"/jobs/{(await _job_of(client, ep))}/endpoints/{ep}")
    assert row.get("aiHintIntervalMs") is None
    assert await _fast_runs(engine, ep) == 0
    assert all(source == "baseline-interval" for source, _ in await _slots(engine, ep))
    _, body = await client.call("GET", f"/endpoints/{ep}/suggestions?status=pending")
    suggestion = body["suggestions"][0]
    assert suggestion["args"]["intervalMs"] == FAST_MS
    status, applied = await client.call("POST", f"/suggestions/{suggestion['id']}/apply")
    assert (status, applied["status"]) == (200, "applied")

    async def faster() -> bool:
        return await _fast_runs(engine, ep) >= 2

    await until(faster, timeout=60, what="runs at the applied interval")


async def _job_of(client: Up, ep: str) -> str:
    _, jobs = await client.call("GET", "/jobs")
    for job in jobs["jobs"]:
        _, listed = await client.call("GET", f"/jobs/{job['id']}/endpoints")
        if any(e["id"] == ep for e in listed["endpoints"]):
            return str(job["id"])
    raise AssertionError("endpoint not found")


async def test_without_a_model_health_reports_the_planner_disabled(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = _up_env(database_url, port, OPENAI_API_KEY="", OPENAI_BASE_URL="")
    proc = start_cli("up", env=env, cwd=tmp_path)
    async with aiohttp.ClientSession() as http:
        client = Up(f"http://127.0.0.1:{port}", http, {})
        await _health(proc, client, lambda body: "planner" in body, "a planner section")
        _, body = await client.call("GET", "/health")
    assert body["planner"] == "disabled"
    assert _stop(proc) == 0


async def test_cronicorn_planner_alone_analyses_and_stops_on_sigterm(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    from planner.planner_support import Clock, Rows

    rows = Rows(engine, Clock(datetime.now(UTC)))
    rows.user_id = await rows.user()
    rows.job_id = await rows.job()
    ep = await rows.endpoint()
    await rows.run(ep, {"queue_depth": 900, "queue_warning_threshold": 500}, ago_s=5)
    async with serving(FakeModel(default=queue_policy)) as fake:
        env = cli_env(
            DATABASE_URL=database_url,
            AUTH_SECRET=SECRET,
            OPENAI_BASE_URL=fake.base_url,
            AI_MODEL="scripted",
            AI_ANALYSIS_INTERVAL_MS="300",
        )
        proc = start_cli("planner", env=env, cwd=tmp_path)

        async def analysed() -> bool:
            assert proc.poll() is None, proc.communicate()
            return any(s["outcome"] == "applied" for s in await rows.sessions(ep))

        await until(analysed, timeout=90, what="a session by the lone planner")
        assert _stop(proc) == 0
    assert (await rows.get(ep)).hint_interval_ms == 15_000  # 1 s asked, clamped to its minimum
