"""The dashboard's activity timeline pages by cursor: the pages a cursor walks are the pages
the offsets give, in the same order, and a deep page reads what the first one does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from api.api_support import add_session
from cronicorn.store import stats
from cronicorn.store.errors import Invalid
from cronicorn.store.tables import runs
from scheduler.conftest import Rows

AT = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)  # fixed: every time below is given, none read


async def _seed(engine: AsyncEngine) -> tuple[Rows, str]:
    rows = await Rows(engine).setup()
    first, second = await rows.endpoints(["http://x/1", "http://x/2"])
    history = [
        {
            "id": f"r{i:03d}",
            "endpoint_id": (first, second)[i % 2],
            "user_id": rows.user_id,
            "status": ("success", "failed", "running")[i % 3],
            "source": "baseline-interval",
            "started_at": AT + timedelta(seconds=i // 3),  # three runs share each second
        }
        for i in range(60)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(runs), history)
        for i in range(0, 60, 7):  # sessions at the runs' very times
            await add_session(
                conn, user_id=rows.user_id, endpoint_id=first, analyzed_at=AT + timedelta(seconds=i)
            )
    return rows, first


def _key(event: Any) -> tuple[str, str]:
    return (event.kind, event.id)


async def test_walking_by_cursor_gives_the_offsets_pages(engine: AsyncEngine) -> None:
    rows, _ = await _seed(engine)
    end = AT + timedelta(minutes=5)
    async with engine.connect() as conn:
        for kind in ("all", "runs", "sessions"):
            query = stats.ActivityQuery(rows.user_id, AT, end, event_type=kind, limit=7)
            everything = await stats.activity(
                conn, stats.ActivityQuery(rows.user_id, AT, end, event_type=kind, limit=100)
            )
            assert everything.next_cursor is None
            walked: list[Any] = []
            cursor = None
            while True:
                page = await stats.activity(
                    conn, stats.ActivityQuery(**{**query.__dict__, "cursor": cursor})
                )
                by_offset = await stats.activity(
                    conn, stats.ActivityQuery(**{**query.__dict__, "offset": len(walked)})
                )
                assert [_key(e) for e in page.events] == [_key(e) for e in by_offset.events]
                assert page.total == everything.total
                walked += page.events
                if page.next_cursor is None:
                    break
                assert len(page.events) == 7
                cursor = page.next_cursor
            assert [_key(e) for e in walked] == [_key(e) for e in everything.events], kind
            assert len(walked) == {"all": 69, "runs": 60, "sessions": 9}[kind]
            back: list[Any] = []  # and up again from the last page, through the ties
            before = page.prev_cursor
            while before is not None:
                newer = await stats.activity(
                    conn, stats.ActivityQuery(**{**query.__dict__, "before": before})
                )
                assert newer.next_cursor is not None
                assert len(newer.events) == 7
                back = newer.events + back
                before = newer.prev_cursor
            assert [_key(e) for e in back + page.events] == [_key(e) for e in walked], kind
            assert everything.prev_cursor is None  # the newest page has none


async def test_a_deep_page_by_cursor_reads_one_page(engine: AsyncEngine) -> None:
    rows, _ = await _seed(engine)
    end = AT + timedelta(minutes=5)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        captured.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    async with engine.connect() as conn:
        query = stats.ActivityQuery(rows.user_id, AT, end, event_type="runs", limit=5, offset=45)
        deep = await stats.activity(conn, query)
        by_cursor = stats.ActivityQuery(rows.user_id, AT, end, event_type="runs", limit=5)
        page = await stats.activity(conn, by_cursor)
        for _ in range(9):  # to the tenth page: offset 45
            assert page.next_cursor is not None
            cursor = page.next_cursor
            captured.clear()
            page = await stats.activity(
                conn, stats.ActivityQuery(**{**by_cursor.__dict__, "cursor": cursor})
            )
        assert [e.id for e in page.events] == [e.id for e in deep.events]
        older = captured[0]
        captured.clear()
        back = await stats.activity(
            conn, stats.ActivityQuery(**{**by_cursor.__dict__, "before": page.prev_cursor})
        )
        newer = captured[0]
        ninth = await stats.activity(conn, stats.ActivityQuery(**{**query.__dict__, "offset": 40}))
        assert [e.id for e in back.events] == [e.id for e in ninth.events]
        assert back.prev_cursor is not None
        driver: Any = (await conn.get_raw_connection()).driver_connection
        await driver.execute("SET enable_seqscan = off")  # as on a big table: the index
        plans = []
        for statement, params in (older, newer):
            cur = await driver.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params)
            plans.append((await cur.fetchone())[0][0]["Plan"])

    def read(node: dict[str, Any]) -> int:
        own = node.get("Actual Rows", 0) if node.get("Relation Name") == "runs" else 0
        return own + sum(read(child) for child in node.get("Plans", []))

    event.remove(engine.sync_engine, "before_cursor_execute", capture)
    for plan in plans:  # either way: the page, one more, the rows sharing the cursor's second
        assert 6 <= read(plan) <= 6 + 3


@pytest.mark.parametrize("cursor", ["", "%%%", "bm90LWEtY3Vyc29y", "MTIz", "LTEuAA"])
async def test_a_cursor_we_did_not_hand_out_is_refused(engine: AsyncEngine, cursor: str) -> None:
    async with engine.connect() as conn:
        query = stats.ActivityQuery("u", AT, AT + timedelta(hours=1), cursor=cursor)
        with pytest.raises(Invalid):
            await stats.activity(conn, query)
