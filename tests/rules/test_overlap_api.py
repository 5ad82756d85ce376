"""Overlap at the API: validated (422 naming the field), shown, changed by PATCH, carried by
export/import, explained with the retry policy in `preview`, skipped runs listed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import serving
from cronicorn.domain.ids import new_id
from cronicorn.store.tables import runs

BASE = {"name": "e", "url": "https://example.com/x", "baselineIntervalMs": 60000}


async def test_overlap_at_the_api(database_url: str, engine: AsyncEngine) -> None:
    async with serving(database_url, engine) as served:
        a = served.a
        _, job = await a.call("POST", "/jobs", {"name": "o"})
        path = f"/jobs/{job['id']}/endpoints"
        status, plain = await a.call("POST", path, BASE)
        assert status == 201, plain
        assert plain["overlap"] == "skip"
        assert "maxConcurrent" not in plain

        for body, field in (
            ({"overlap": "sometimes"}, "overlap"),
            ({"overlap": "allow", "maxConcurrent": 0}, "maxConcurrent"),
            ({"overlap": "allow", "maxConcurrent": 101}, "maxConcurrent"),
        ):
            status, error = await a.call("POST", path, {**BASE, "name": "bad", **body})
            assert status == 422, error
            assert error["error"]["details"][0]["path"] == field, error

        retry = {"attempts": 3, "backoff": "fixed", "initialDelayMs": 500, "on": ["5xx"]}
        status, wide = await a.call(
            "POST",
            path,
            {**BASE, "name": "wide", "overlap": "allow", "maxConcurrent": 3, "retry": retry},
        )
        assert status == 201, wide
        assert (wide["overlap"], wide["maxConcurrent"]) == ("allow", 3)

        status, preview = await a.call("GET", f"/endpoints/{wide['id']}/preview")
        assert status == 200, preview
        notes = preview["runs"][0]["notes"]
        assert notes[0].startswith("retry: a failed call is tried up to 3 times within its slot")
        assert "500 ms apart" in notes[0]
        assert notes[1].startswith("overlap allow:")
        assert "at most 3 at once" in notes[1]

        status, patched = await a.call("PATCH", f"{path}/{plain['id']}", {"overlap": "queue_one"})
        assert status == 200, patched
        assert patched["overlap"] == "queue_one"
        status, preview = await a.call("GET", f"/endpoints/{plain['id']}/preview")
        assert [n.split(":")[0] for n in preview["runs"][0]["notes"]] == ["overlap queue_one"]
        status, reset = await a.call("PATCH", f"{path}/{plain['id']}", {"overlap": None})
        assert reset["overlap"] == "skip"

        status, doc = await a.call("GET", "/export")
        assert status == 200, doc
        (exported,) = [e for j in doc["jobs"] for e in j["endpoints"] if e["name"] == "wide"]
        assert (exported["overlap"], exported["maxConcurrent"]) == ("allow", 3)
        for j in doc["jobs"]:
            j["name"] = "copy"
        status, report = await a.call("POST", "/import", {"jobs": doc["jobs"]})
        assert status in (200, 201), report
        status, listed = await a.call("GET", "/endpoints?limit=100")
        if status == 200 and isinstance(listed, dict) and "endpoints" in listed:
            copies = [e for e in listed["endpoints"] if e["name"] == "wide"]
            assert all(e["overlap"] == "allow" for e in copies)

        async with engine.begin() as conn:
            await conn.execute(
                insert(runs).values(
                    id=new_id(),
                    endpoint_id=wide["id"],
                    user_id=wide.get("userId") or (await _owner(engine, wide["id"])),
                    status="skipped",
                    source="baseline-interval",
                    due_at=datetime(2026, 1, 1, tzinfo=UTC),
                    started_at=datetime(2026, 1, 1, tzinfo=UTC),
                    finished_at=datetime(2026, 1, 1, tzinfo=UTC),
                    error_message="skipped: the run due at ... was still going (overlap skip)",
                )
            )
        status, listed = await a.call("GET", f"/endpoints/{wide['id']}/runs")
        assert status == 200, listed
        assert [r["status"] for r in listed["runs"]] == ["skipped"], listed
        status, filtered = await a.call("GET", f"/endpoints/{wide['id']}/runs?status=skipped")
        assert status == 200, filtered
        assert len(filtered["runs"]) == 1


async def _owner(engine: AsyncEngine, endpoint_id: str) -> str:
    from sqlalchemy import select

    from cronicorn.store.tables import endpoints

    async with engine.connect() as conn:
        return str(
            (
                await conn.execute(select(endpoints.c.user_id).where(endpoints.c.id == endpoint_id))
            ).scalar_one()
        )
