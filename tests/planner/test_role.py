"""The planner role: ticks, concurrency, shared work across planners, quota, retention,
shutdown, the database dropping connections mid-session, and idling without a model."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.config import load_settings
from cronicorn.domain.ids import new_id
from cronicorn.planner.llm import OpenAIChat
from cronicorn.planner.role import Planner, planner_role, prune_once
from cronicorn.runtime import Runtime
from cronicorn.store.tables import ai_sessions, ai_suggestions, endpoint_analysis, monthly_usage
from planner.fake_llm import FakeModel, Reply, call, submit, tools
from planner.planner_support import Rows, planner_config
from support import until


def make_planner(engine: AsyncEngine, fake: FakeModel, rows: Rows, **kw: Any) -> Planner:
    config = planner_config(fake, **kw)
    assert config.model is not None
    return Planner(config, engine, OpenAIChat(config.model), clock=rows.clock)


async def session_count(engine: AsyncEngine, **where: Any) -> int:
    query = select(func.count()).select_from(ai_sessions)
    for key, value in where.items():
        query = query.where(ai_sessions.c[key] == value)
    async with engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def test_two_planners_analyse_each_endpoint_once(
    engine: AsyncEngine, fake: FakeModel, rows: Rows
) -> None:
    eps = [await rows.endpoint() for _ in range(6)]
    for ep in eps:
        await rows.run(ep, {"ok": True})
    fake.default = lambda _body: Reply(delay_s=0.2, body=submit().body)
    a = make_planner(engine, fake, rows, concurrency=2)
    b = make_planner(engine, fake, rows, concurrency=2)
    claimed: list[str] = []
    while len(claimed) < len(eps):
        claimed += await a.tick() + await b.tick()
        await asyncio.gather(*a.tasks.values(), *b.tasks.values())
    assert sorted(claimed) == sorted(eps)
    assert len(set(claimed)) == len(claimed)
    assert await session_count(engine) == 6
    assert await session_count(engine, outcome="no_change") == 6
    assert await a.tick() + await b.tick() == []  # nothing new to look at
    await a.model.close()  # type: ignore[attr-defined]
    await b.model.close()  # type: ignore[attr-defined]


async def test_stop_abandons_a_session_in_flight_and_frees_the_lease(
    engine: AsyncEngine, fake: FakeModel, rows: Rows
) -> None:
    ep = await rows.endpoint()
    await rows.run(ep, {"ok": True})
    fake.add(Reply(delay_s=30, body=submit().body))
    planner = make_planner(engine, fake, rows, shutdown_timeout_s=0.5, interval_s=3600)
    stop = asyncio.Event()
    running = asyncio.create_task(planner.run(stop))
    await until(lambda: len(fake.requests) == 1, timeout=20, what="the model is asked")
    stop.set()
    await asyncio.wait_for(running, 20)
    (stored,) = await rows.sessions(ep)
    assert stored["outcome"] == "abandoned"
    assert "stopped" in stored["error"]
    async with engine.connect() as conn:
        lease = (await conn.execute(select(endpoint_analysis))).one()
    assert lease.lease_owner is None
    assert lease.last_analyzed_at is None  # analysed again soon, by any planner
    await planner.model.close()  # type: ignore[attr-defined]


async def test_token_quota_stops_analysis_and_says_so_on_the_session(
    engine: AsyncEngine, fake: FakeModel, rows: Rows
) -> None:
    ep = await rows.endpoint()
    await rows.run(ep, {"ok": True})
    fake.add(tools(call("submit_analysis", {"reasoning": "ok"}), usage=(900, 200)))
    planner = make_planner(engine, fake, rows, ai_tokens_per_month=1000)
    await planner.tick()
    await asyncio.gather(*planner.tasks.values())
    async with engine.connect() as conn:
        used = await conn.scalar(select(monthly_usage.c.ai_tokens))
    assert used == 1100
    rows.clock.now += timedelta(hours=2)
    await rows.run(ep, {"ok": True}, ago_s=10)
    await planner.tick()
    await asyncio.gather(*planner.tasks.values())
    assert len(fake.requests) == 1  # the model was not asked again
    last = (await rows.sessions(ep))[-1]
    assert last["outcome"] == "quota_exceeded"
    assert "QUOTA_AI_TOKENS_PER_MONTH" in last["error"]
    await planner.model.close()  # type: ignore[attr-defined]


async def test_database_dropping_connections_mid_session_is_survived(
    engine: AsyncEngine, fake: FakeModel, rows: Rows, database_url: str
) -> None:
    ep = await rows.endpoint()
    await rows.run(ep, {"queue_depth": 900})

    async def kill_connections(_body: dict[str, Any]) -> Any:
        async with engine.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            await conn.commit()
        return tools(call("propose_interval", {"intervalMs": 30000}))

    fake.add(tools(call("get_latest_response")), kill_connections, submit("tightened"))
    planner = make_planner(engine, fake, rows)
    await planner.tick()
    await asyncio.gather(*planner.tasks.values())
    (stored,) = await rows.sessions(ep)
    assert stored["outcome"] == "applied"
    assert (await rows.get(ep)).hint_interval_ms == 30000
    await planner.model.close()  # type: ignore[attr-defined]


async def test_retention_prunes_old_sessions_closes_stale_ones_and_lapses_suggestions(
    engine: AsyncEngine, fake: FakeModel, rows: Rows
) -> None:
    ep = await rows.endpoint()
    now = rows.clock.now
    async with engine.begin() as conn:
        for days, outcome in ((31, "applied"), (29, "no_change"), (1, "running")):
            await conn.execute(
                insert(ai_sessions).values(
                    id=new_id(),
                    endpoint_id=ep,
                    user_id=rows.user_id,
                    analyzed_at=now - timedelta(days=days),
                    outcome=outcome,
                )
            )
        await conn.execute(
            insert(ai_suggestions).values(
                id=new_id(),
                endpoint_id=ep,
                user_id=rows.user_id,
                action="clear",
                created_at=now - timedelta(hours=2),
                expires_at=now - timedelta(hours=1),
            )
        )
    config = planner_config(fake, retention_days=30)
    assert await prune_once(engine, config, now) == 1
    outcomes = sorted(s["outcome"] for s in await rows.sessions(ep))
    assert outcomes == ["abandoned", "no_change"]
    async with engine.connect() as conn:
        assert await conn.scalar(select(ai_suggestions.c.status)) == "expired"


async def test_without_a_model_the_role_idles_and_health_says_disabled(
    engine: AsyncEngine, database_url: str
) -> None:
    settings = load_settings(OPENAI_API_KEY="", OPENAI_BASE_URL="")
    runtime = Runtime(settings=settings, database_url=database_url, engine=engine)
    stop = asyncio.Event()
    role = asyncio.create_task(planner_role(runtime, stop))
    await until(lambda: "planner" in runtime.health_probes, timeout=10, what="probe")
    assert await runtime.health_probes["planner"]() == "disabled"  # type: ignore[comparison-overlap]
    await asyncio.sleep(0)
    assert not role.done()  # idles, never exits (no restart loop)
    stop.set()
    await asyncio.wait_for(role, 10)
    assert "planner" not in runtime.health_probes
