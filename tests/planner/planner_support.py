"""Planner test helpers: rows straight into the tables, runs with bodies, a fixed test clock
(the only clock the planner reads), and the planner configured for the scripted model."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.ids import new_id
from cronicorn.planner.config import ModelConfig, PlannerConfig
from cronicorn.store.endpoints import EndpointRow, endpoint_from
from cronicorn.store.tables import ai_sessions, endpoints, jobs, runs, users
from planner.fake_llm import FakeModel

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rows:
    engine: AsyncEngine
    clock: Clock
    user_id: str = ""
    job_id: str = ""
    made: list[str] = field(default_factory=list)

    async def user(self) -> str:
        user_id = new_id()
        async with self.engine.begin() as conn:
            await conn.execute(insert(users).values(id=user_id, email=f"{user_id}@example.com"))
        return user_id

    async def job(self, user_id: str | None = None, **columns: Any) -> str:
        job_id = new_id()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(jobs).values(
                    id=job_id, user_id=user_id or self.user_id, name=f"job {job_id}", **columns
                )
            )
        return job_id

    async def endpoint(self, job_id: str | None = None, **columns: Any) -> str:
        endpoint_id = new_id()
        job = job_id or self.job_id
        async with self.engine.begin() as conn:
            owner = await conn.scalar(select(jobs.c.user_id).where(jobs.c.id == job))
            values: dict[str, Any] = {
                "id": endpoint_id,
                "job_id": job,
                "user_id": owner,
                "name": f"ep {endpoint_id[-6:]}",
                "url": "http://127.0.0.1:9/x",
                "baseline_interval_ms": 300_000,
                "min_interval_ms": 15_000,
                "max_interval_ms": 900_000,
                "next_run_at": self.clock.now + timedelta(minutes=5),
                **columns,
            }
            await conn.execute(insert(endpoints).values(**values))
        return endpoint_id

    async def run(
        self,
        endpoint_id: str,
        body: Any = None,
        *,
        ago_s: float = 60,
        status: str = "success",
        code: int | None = 200,
        error: str | None = None,
        duration_ms: int = 120,
    ) -> str:
        run_id = new_id()
        started = self.clock.now - timedelta(seconds=ago_s)
        async with self.engine.begin() as conn:
            owner = await conn.scalar(
                select(endpoints.c.user_id).where(endpoints.c.id == endpoint_id)
            )
            await conn.execute(
                insert(runs).values(
                    id=run_id,
                    endpoint_id=endpoint_id,
                    user_id=owner,
                    status=status,
                    source="baseline-interval",
                    started_at=started,
                    finished_at=started + timedelta(milliseconds=duration_ms),
                    duration_ms=duration_ms,
                    status_code=code,
                    response_body=body,
                    error_message=error,
                )
            )
            # What the scheduler's batch write keeps on the endpoint when a run finishes.
            await conn.execute(
                update(endpoints)
                .where(endpoints.c.id == endpoint_id)
                .values(
                    last_run_at=func.greatest(
                        func.coalesce(endpoints.c.last_run_at, started), started
                    ),
                    failure_count=0 if status == "success" else endpoints.c.failure_count + 1,
                )
            )
        return run_id

    async def get(self, endpoint_id: str) -> EndpointRow:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(endpoints).where(endpoints.c.id == endpoint_id))).one()
        return endpoint_from(row._mapping)

    async def sessions(self, endpoint_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(ai_sessions)
                .where(ai_sessions.c.endpoint_id == endpoint_id)
                .order_by(ai_sessions.c.analyzed_at)
            )
            return [dict(r._mapping) for r in rows]


def planner_config(fake: FakeModel, **overrides: Any) -> PlannerConfig:
    model = ModelConfig(
        base_url=fake.base_url,
        api_key="test-key",
        model="scripted",
        timeout_s=overrides.pop("timeout_s", 5.0),
        max_retries=overrides.pop("max_retries", 2),
    )
    return PlannerConfig(model=model, **overrides)


@dataclass
class Sleeps:
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
