"""A write is committed before its response is sent: a client that got 201 can rely on it.

FastAPI runs the exit code of yield dependencies AFTER the response unless they are
function-scoped; with that default, a row read right after a 201 was sometimes missing (seen as
foreign-key violations when a test inserted runs for an endpoint it had just created)."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import Served
from cronicorn.store.tables import jobs


async def test_created_rows_are_visible_the_moment_the_response_arrives(
    served: Served, engine: AsyncEngine
) -> None:
    # A deferred constraint trigger runs at COMMIT: it makes the commit take 300 ms, so a
    # response sent before the commit is caught every time, not by luck.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON jobs "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )
        )
    for n in range(3):
        status, job = await served.a.call("POST", "/jobs", {"name": f"job-{n}"})
        assert status == 201
        async with engine.connect() as conn:
            found = await conn.scalar(select(jobs.c.id).where(jobs.c.id == job["id"]))
        assert found == job["id"], f"job {n} was answered 201 before it was committed"
