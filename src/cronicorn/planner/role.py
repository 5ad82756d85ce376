"""The planner as a background role (`cronicorn planner`, and inside `cronicorn up` when a
model is configured).

Every `AI_ANALYSIS_INTERVAL_MS` it leases up to `AI_CONCURRENCY` minus the analyses in
flight (see `store.planner.claim`) and analyses each in its own task, renewing the lease
while the session runs. Nothing here blocks the scheduler: the two share only PostgreSQL.
On stop it waits `SHUTDOWN_TIMEOUT_S` for sessions in flight, then cancels the rest, which
record themselves as abandoned and free their leases. Without a model it idles (and says
so in `/api/health`), and still prunes old sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.logs import get_logger
from cronicorn.planner import metrics
from cronicorn.planner.config import PlannerConfig, planner_config
from cronicorn.planner.llm import ChatModel, OpenAIChat
from cronicorn.planner.session import Result, Session
from cronicorn.runtime import Runtime
from cronicorn.store import planner as planner_store

log = get_logger("cronicorn.planner")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Planner:
    def __init__(
        self,
        config: PlannerConfig,
        engine: AsyncEngine,
        model: ChatModel,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.engine = engine
        self.model = model
        self.clock = clock
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.session = Session(engine, model, config, clock)
        self.last_tick: datetime | None = None
        self.outcomes: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        retention = asyncio.create_task(prune_loop(self.engine, self.config, self.clock, stop))
        try:
            while not stop.is_set():
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.interval_s)
        finally:
            await self.drain()
            retention.cancel()
            await asyncio.gather(retention, return_exceptions=True)

    async def tick(self) -> list[str]:
        """Lease what there is room for and start analysing it."""
        free = self.config.concurrency - len(self.tasks)
        if free <= 0:
            return []
        now = self.clock()
        self.last_tick = now
        try:
            async with self.engine.begin() as conn:
                ids = await planner_store.claim(
                    conn,
                    token=self.token,
                    now=now,
                    since=now - timedelta(seconds=self.config.lookback_s),
                    limit=free,
                    lease_s=self.config.lease_s,
                )
        except (SQLAlchemyError, OSError) as exc:
            log.warning("planner_claim_failed", error=str(exc).strip()[:200])
            return []
        for endpoint_id in ids:
            task = asyncio.create_task(self.analyse(endpoint_id), name=f"analyse:{endpoint_id}")
            self.tasks[endpoint_id] = task
            task.add_done_callback(self._forget(endpoint_id))
        return ids

    def _forget(self, endpoint_id: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self.tasks.pop(endpoint_id, None)

        return done

    async def analyse(self, endpoint_id: str) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(endpoint_id))
        result: Result | None = None
        try:
            result = await self.session.run(endpoint_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ai_session_crashed", endpoint=endpoint_id)
        finally:
            heartbeat.cancel()
            if result is not None:
                self.outcomes[result.outcome] = self.outcomes.get(result.outcome, 0) + 1
            await asyncio.shield(self._release(endpoint_id, result))

    async def _heartbeat(self, endpoint_id: str) -> None:
        while True:
            await asyncio.sleep(self.config.lease_s / 3)
            with contextlib.suppress(SQLAlchemyError, OSError):
                async with self.engine.begin() as conn:
                    await planner_store.renew(
                        conn, token=self.token, endpoint_id=endpoint_id, lease_s=self.config.lease_s
                    )

    async def _release(self, endpoint_id: str, result: Result | None) -> None:
        try:
            async with self.engine.begin() as conn:
                await planner_store.release(
                    conn,
                    token=self.token,
                    endpoint_id=endpoint_id,
                    seen=result.seen if result is not None else None,
                )
        except (SQLAlchemyError, OSError) as exc:  # the lease expires on its own
            log.warning("planner_release_failed", endpoint=endpoint_id, error=str(exc)[:200])

    async def drain(self) -> None:
        """Give sessions in flight SHUTDOWN_TIMEOUT_S to finish, then abandon them."""
        tasks = list(self.tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "model": self.model.name,
            "inFlight": len(self.tasks),
            "lastTickAt": self.last_tick.isoformat() if self.last_tick else None,
            "sessions": dict(self.outcomes),
        }


async def prune_loop(
    engine: AsyncEngine, config: PlannerConfig, clock: Callable[[], datetime], stop: asyncio.Event
) -> None:
    """Retention (AI_SESSION_RETENTION_DAYS), stale `running` sessions, lapsed suggestions."""
    while not stop.is_set():
        with contextlib.suppress(SQLAlchemyError, OSError):
            await prune_once(engine, config, clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), config.retention_every_s)


async def prune_once(engine: AsyncEngine, config: PlannerConfig, now: datetime) -> int:
    deleted = 0
    async with engine.begin() as conn:
        await planner_store.close_stale_sessions(conn, now - timedelta(seconds=2 * config.lease_s))
        await planner_store.lapse_suggestions(conn, now)
    if config.retention_days <= 0:
        return 0
    cutoff = now - timedelta(days=config.retention_days)
    while True:
        async with engine.begin() as conn:
            count = await planner_store.prune_sessions(conn, cutoff)
        metrics.SESSIONS_PRUNED.inc(count)
        deleted += count
        if count < 5000:
            return deleted


async def _disabled() -> dict[str, Any]:
    # /api/health shows `"planner": "disabled"` (a plain string, as documented).
    return cast(dict[str, Any], "disabled")


async def planner_role(runtime: Runtime, stop: asyncio.Event) -> None:
    """Run the planner until `stop`; without a model, idle (prune only) instead of exiting,
    so nothing restarts in a loop."""
    config = planner_config(runtime.settings)
    if config.model is None:
        runtime.health_probes["planner"] = _disabled
        log.info("planner_disabled", hint="set OPENAI_API_KEY or OPENAI_BASE_URL")
        try:
            await prune_loop(runtime.engine, config, utc_now, stop)
        finally:
            runtime.health_probes.pop("planner", None)
        return
    model = OpenAIChat(config.model)
    planner = Planner(config, runtime.engine, model)
    runtime.health_probes["planner"] = planner.health
    log.info("planner_started", model=config.model.model, base_url=config.model.base_url)
    try:
        await planner.run(stop)
    finally:
        runtime.health_probes.pop("planner", None)
        await model.close()
