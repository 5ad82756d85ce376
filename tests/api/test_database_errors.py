"""Database errors that are nobody's mistake are a 503 with Retry-After, not a 500.

A deadlock or serialization failure means PostgreSQL aborted the request's transaction, so
nothing was written and the same request will go through when retried. A trigger raises the
real SQLSTATE inside the route's transaction, as PostgreSQL would."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Served
from cronicorn.store.tables import jobs


async def _fail_job_inserts_with(engine: AsyncEngine, sqlstate: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse_job() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse_job BEFORE INSERT ON jobs "
                "FOR EACH ROW EXECUTE FUNCTION refuse_job()"
            )
        )


async def _stop_failing(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse_job ON jobs"))
        await conn.execute(text("DROP FUNCTION refuse_job()"))


@pytest.mark.parametrize(
    ("sqlstate", "code"),
    [("40P01", "busy"), ("40001", "busy"), ("57P01", "unavailable")],
    ids=["deadlock", "serialization", "admin-shutdown"],
)
async def test_transient_database_errors_are_503_and_write_nothing(
    served: Served, engine: AsyncEngine, sqlstate: str, code: str
) -> None:
    await _fail_job_inserts_with(engine, sqlstate)
    client = served.a
    url = f"{client.base}/api/jobs"
    async with client.http.post(url, json={"name": "j"}, headers=client.headers) as resp:
        status, body, retry_after = resp.status, await resp.json(), resp.headers["Retry-After"]
    assert (status, body["error"]["code"], retry_after) == (503, code, "1")
    assert body["error"]["requestId"]
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(jobs)) == 0
    await _stop_failing(engine)
    status, _ = await served.a.call("POST", "/jobs", {"name": "j"})
    assert status == 201, "the same request goes through once the cause is gone"


async def test_other_database_errors_stay_500(served: Served, engine: AsyncEngine) -> None:
    await _fail_job_inserts_with(engine, "XX000")  # internal_error: a bug, not a retry
    status, body = await served.a.call("POST", "/jobs", {"name": "j"})
    assert (status, body["error"]["code"]) == (500, "internal_error")
