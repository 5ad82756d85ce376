"""Run history pages by cursor over HTTP: `nextCursor` only while there is a next page (absent,
never null, on the last), the original's `limit`/`offset` unchanged, a forged cursor a 422."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import NOW, Served
from cronicorn.schemas.history import RunList

SEED = """
INSERT INTO runs (id, endpoint_id, user_id, status, source, due_at, started_at, finished_at,
                  duration_ms)
SELECT 'r' || lpad(g::text, 2, '0'), :e, :u, 'success', 'baseline-interval',
       :now - g * interval '1 minute', :now - g * interval '1 minute',
       :now - g * interval '1 minute' + interval '1 second', 10
FROM generate_series(1, 7) g
"""


async def test_runs_page_by_cursor_and_by_offset(served: Served, engine: AsyncEngine) -> None:
    a = served.a
    _, job = await a.call("POST", "/jobs", {"name": "nightly"})
    body = {"name": "ping", "url": "https://example.com/ping", "baselineIntervalMs": 60000}
    _, ep = await a.call("POST", f"/jobs/{job['id']}/endpoints", body)
    async with engine.begin() as conn:
        await conn.execute(text(SEED), {"e": ep["id"], "u": a.user_id, "now": NOW})
    path = f"/endpoints/{ep['id']}/runs"

    walked, params, pages = [], {"limit": 3}, []
    while True:
        status, page = await a.call("GET", path, **params)
        assert status == 200, page
        RunList.model_validate(page)
        pages.append(page)
        walked += [run["runId"] for run in page["runs"]]
        if "nextCursor" not in page:
            break
        params = {"limit": 3, "cursor": page["nextCursor"]}
    assert walked == [f"r{g:02d}" for g in range(1, 8)]
    assert [len(p["runs"]) for p in pages] == [3, 3, 1]
    assert all(p["total"] == 7 and p["offset"] == 0 for p in pages)

    # The original's offset paging is unchanged, and offers a cursor to carry on from.
    _, by_offset = await a.call("GET", path, limit=3, offset=3)
    assert [run["runId"] for run in by_offset["runs"]] == walked[3:6]
    _, after = await a.call("GET", path, limit=3, cursor=by_offset["nextCursor"])
    assert [run["runId"] for run in after["runs"]] == walked[6:]
    _, whole = await a.call("GET", path, limit=7)
    assert "nextCursor" not in whole

    for bad in ("nonsense", "!!", "x" * 201):
        status, refusal = await a.call("GET", path, cursor=bad)
        assert status == 422, refusal
        assert refusal["error"]["code"] == "validation_error"
    # Another user's cursor for this endpoint still finds no endpoint of theirs.
    status, _ = await served.b.call("GET", path, cursor=pages[0]["nextCursor"])
    assert status == 404
