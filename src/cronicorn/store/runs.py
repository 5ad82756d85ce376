"""Reading run history (the scheduler writes runs; the API records only manual test runs).

Every read first checks that the endpoint (or run) belongs to the caller, so another user's
endpoint id is a 404 rather than an empty list (reference §2.7 returned 200-empty).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import TextClause, insert, literal_column, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store import cursors
from cronicorn.store.errors import NotFound
from cronicorn.store.json_sql import JsonField, json_object
from cronicorn.store.read_pool import ReadPool, ReadStatement, compiled
from cronicorn.store.tables import endpoints, runs
from cronicorn.store.wakeups import endpoint_changed

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RunStatus = Literal["running", "success", "failed", "skipped"]  # skipped: overlap (0008)
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)


@dataclass(frozen=True)
class RunSummary:
    id: str
    endpoint_id: str
    status: str
    source: str
    attempt: int
    due_at: datetime | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    status_code: int | None
    error_message: str | None


@dataclass(frozen=True)
class RunDetail(RunSummary):
    response_body: Any
    response_text: str | None
    response_size: int | None
    response_truncated: bool
    worker: str | None
    endpoint_name: str
    endpoint_url: str
    endpoint_method: str
    rules_fired: Any = None  # response rules that fired after this run
    attempts: Any = None  # each call of a retried slot


_SUMMARY_COLUMNS = (
    runs.c.id,
    runs.c.endpoint_id,
    runs.c.status,
    runs.c.source,
    runs.c.attempt,
    runs.c.due_at,
    runs.c.started_at,
    runs.c.finished_at,
    runs.c.duration_ms,
    runs.c.status_code,
    runs.c.error_message,
)


@dataclass(frozen=True)
class RunPage:
    items: list[RunSummary]
    total: int  # every run matching the filters, whatever the page
    next_cursor: str | None  # where the next page starts; None on the last page
    # Where the page before (newer runs) ends, as `before`; None on the newest page.
    prev_cursor: str | None = None


def encode_cursor(run: RunSummary) -> str:
    """An opaque position after `run` in the newest-first order (`store.cursors`)."""
    return cursors.encode(run.started_at, run.id)


async def page_for_endpoint(
    conn: AsyncConnection,
    user_id: str,
    endpoint_id: str,
    *,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    cursor: str | None = None,
    before: str | None = None,
) -> RunPage:
    """A page of the endpoint's runs, newest first, the total matching the filters, and the
    cursors of the pages after and before it. With a `cursor` the page starts just after the
    run it names (keyset on `ix_runs_endpoint_id_started_at`: a deep page costs what the
    first does; `offset` then skips from there); without one, `offset` counts from the newest
    run. With `before` (a page's `prev_cursor`) it is the `limit` runs just newer than the
    run it names, read upwards from it: going back is as cheap as going on.

    One explicit statement (ownership, count and page in one round trip; this is the hottest
    read of the API, and as text it costs a third of the Core version's Python time). Runs
    are matched through the owned endpoint's id, never by `user_id`, so the count is an
    index-only scan of (endpoint_id, …)."""
    params, shape = _page_params(
        user_id, endpoint_id, status, since, until, limit, offset, cursor, before
    )
    rows = (await conn.execute(_list_statement(*shape), params)).all()
    if before is not None:
        return _newer_page_of(rows, limit)
    return _page_of(rows, limit, newer=cursor is not None or offset > 0)


@dataclass(frozen=True)
class RunPageJson:
    items: list[str]  # each run's JSON object (`store.json_sql`)
    total: int
    next_cursor: str | None


async def page_json_for_endpoint(
    pool: ReadPool,
    user_id: str,
    endpoint_id: str,
    fields: tuple[JsonField, ...],
    *,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    cursor: str | None = None,
) -> RunPageJson:
    """`page_for_endpoint` on the driver (`store.read_pool`: the API's hot route), each run
    written as JSON by PostgreSQL (`fields` naming `RunSummary`'s columns); the same
    statement, compiled once per combination of filters."""
    params, shape = _page_params(user_id, endpoint_id, status, since, until, limit, offset, cursor)
    rows = await pool.fetch(_json_statement(*shape, fields), params)
    page, total, more = _page_rows(rows, limit)  # runs as (started_at, id, json)
    after = cursors.encode(page[-1][2], page[-1][3]) if more else None
    return RunPageJson([row[4] for row in page], total, after)


def _page_params(
    user_id: str,
    endpoint_id: str,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
    cursor: str | None,
    before: str | None = None,
) -> tuple[dict[str, Any], tuple[bool, bool, bool, bool, bool]]:
    """A page's parameters, and its statement's shape (which filters it has)."""
    after = cursors.decode(cursor) if cursor is not None else (None, None)
    upto = cursors.decode(before) if before is not None else (None, None)
    params: dict[str, Any] = {
        "endpoint_id": endpoint_id,
        "user_id": user_id,
        "status": status,
        "since": since,
        "until": until,
        "after_at": after[0],
        "after_id": after[1],
        "before_at": upto[0],
        "before_id": upto[1],
        "fetch": limit + 1,  # one more than the page: is there a next page?
        "offset": offset,
    }
    shape = (
        status is not None,
        since is not None,
        until is not None,
        cursor is not None,
        before is not None,
    )
    return params, shape


@functools.cache
def _json_statement(
    by_status: bool,
    by_since: bool,
    by_until: bool,
    by_cursor: bool,
    by_before: bool,
    fields: tuple[JsonField, ...],
) -> ReadStatement:
    run = json_object(fields, lambda name: literal_column(f"page.{name}"))
    run_sql = str(run.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    page = f"page.started_at, page.id, {run_sql}"
    return compiled(_list_statement(by_status, by_since, by_until, by_cursor, by_before, page))


def _page_of(rows: Sequence[Sequence[Any]], limit: int, *, newer: bool) -> RunPage:
    page, total, more = _page_rows(rows, limit)
    items = [RunSummary(*row[2:]) for row in page]
    after = encode_cursor(items[-1]) if more else None
    return RunPage(items, total, after, encode_cursor(items[0]) if newer and items else None)


def _newer_page_of(rows: Sequence[Sequence[Any]], limit: int) -> RunPage:
    """A `before` page: the statement read `limit` + 1 runs upwards from the cursor, so the
    extra one (is there a newer page?) is the newest, not the oldest. The runs the cursor
    came from are older, so the page always has a next one."""
    page, total, _ = _page_rows(rows, len(rows))  # every run read, newest first
    more = len(page) > limit
    items = [RunSummary(*row[2:]) for row in page[-limit:]]
    after = encode_cursor(items[-1]) if items else None
    return RunPage(items, total, after, encode_cursor(items[0]) if more and items else None)


def _page_rows(
    rows: Sequence[Sequence[Any]], limit: int
) -> tuple[Sequence[Sequence[Any]], int, bool]:
    """Rows of `_LIST_SQL` (owned, total, then a run or NULLs): the page's rows, the total,
    and whether a next page follows (the statement fetches one run more than the page)."""
    if not rows or rows[0][0] is None:
        raise NotFound("Endpoint")
    page = [row for row in rows if row[2] is not None]
    return page[:limit], int(rows[0][1]), len(page) > limit


_LIST_SQL = """
WITH owned AS (SELECT id FROM endpoints WHERE id = :endpoint_id AND user_id = :user_id)
SELECT (SELECT id FROM owned) AS owned,
       (SELECT count(*) FROM runs WHERE {where}) AS total,
       {page}
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT id, endpoint_id, status, source, attempt, due_at, started_at, finished_at,
           duration_ms, status_code, error_message
    FROM runs WHERE {where}{after}
    {order}
    LIMIT :fetch OFFSET :offset
) AS page ON true
ORDER BY page.started_at DESC, page.id DESC
"""
# Rows after a cursor's (started_at, id) in the newest-first order, spelt so that the first
# condition is an index bound on (endpoint_id, started_at) and the second a cheap recheck.
_AFTER = " AND started_at <= :after_at AND (started_at < :after_at OR id < :after_id)"
# Rows before one (newer), read upwards from it: the same index, scanned forwards.
_BEFORE = " AND started_at >= :before_at AND (started_at > :before_at OR id > :before_id)"


@functools.cache
def _list_statement(
    by_status: bool,
    by_since: bool,
    by_until: bool,
    by_cursor: bool,
    by_before: bool = False,
    page: str = "page.*",
) -> TextClause:
    """The list query for one combination of filters (static SQL fragments only), selecting
    `page` of each run."""
    where = ["endpoint_id = (SELECT id FROM owned)"]
    if by_status:
        where.append("status = :status")
    if by_since:
        where.append("started_at >= :since")
    if by_until:
        where.append("started_at < :until")
    after = (_AFTER if by_cursor else "") + (_BEFORE if by_before else "")
    order = "ORDER BY started_at, id" if by_before else "ORDER BY started_at DESC, id DESC"
    return text(_LIST_SQL.format(where=" AND ".join(where), after=after, order=order, page=page))


async def get_detail(conn: AsyncConnection, user_id: str, run_id: str) -> RunDetail:
    row = (
        await conn.execute(
            select(
                *_SUMMARY_COLUMNS,
                runs.c.response_body,
                runs.c.response_text,
                runs.c.response_size,
                runs.c.response_truncated,
                runs.c.worker,
                runs.c.rules_fired,
                runs.c.attempts,
                endpoints.c.name.label("endpoint_name"),
                endpoints.c.url.label("endpoint_url"),
                endpoints.c.method.label("endpoint_method"),
            )
            .join(endpoints, endpoints.c.id == runs.c.endpoint_id)
            .where(runs.c.id == run_id, runs.c.user_id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound("Run")
    m = row._mapping
    return RunDetail(**{key: m[key] for key in m.keys()})  # noqa: SIM118 - RowMapping


@dataclass(frozen=True)
class HealthSummary:
    success_count: int
    failure_count: int
    avg_duration_ms: float | None
    last_status: str | None
    last_at: datetime | None
    failure_streak: int


async def health(
    conn: AsyncConnection, user_id: str, endpoint_id: str, since: datetime
) -> HealthSummary:
    """Counts over the window, the latest run, and the current streak of failed runs
    (failures since the last success, whatever the window), in one statement.

    The window's counts and mean duration come from the per-endpoint rollups (migration
    0010, exact per hour and day, kept in the writers' transactions) for its whole hours,
    and from `runs` only for the partial hour at its start (`health_spans`): a window costs
    a few rollup rows, not one heap page per run in it (24 h of a busy endpoint were ~30
    runs, a week ~200). Like the dashboard's, these counts include runs retention pruned
    (windows past `RUN_RETENTION_DAYS` or an endpoint's kept runs). The latest run and the
    streak are index ranges of `ix_runs_endpoint_id_started_at` (the newest run, the runs
    after the last success), never the endpoint's whole history."""
    row = (
        await conn.execute(
            _HEALTH_SQL,
            {"endpoint_id": endpoint_id, "user_id": user_id, **health_spans(since)},
        )
    ).one()
    if row.owned is None:
        raise NotFound("Endpoint")
    return HealthSummary(
        success_count=int(row.success),
        failure_count=int(row.failed),
        avg_duration_ms=float(row.avg_ms) if row.avg_ms is not None else None,
        last_status=row.last_status,
        last_at=row.last_at,
        failure_streak=int(row.streak or 0),
    )


HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _ceil(at: datetime, size: timedelta) -> datetime:
    """`at` rounded up to a multiple of `size` since the epoch (UTC hours and days)."""
    rest = (at - EPOCH) % size
    return at if not rest else at + (size - rest)


def health_spans(since: datetime) -> dict[str, datetime | int]:
    """Where the window `[since, ...)` is counted: `runs` in `[since, h0)` (the partial
    hour), `runs_daily` from `day`, and `runs_hourly` in `[ha, hb)` times `sign`: either
    the hours before the first whole day added (+1), or that day's row added with the hours
    of it before `h0` taken back (-1), whichever reads fewer rows (at most 12)."""
    h0 = _ceil(since, HOUR)
    d0 = _ceil(h0, DAY)
    first = d0 - DAY
    if h0 - first < d0 - h0:  # fewer hours before h0 in its day than after it
        return {"since": since, "h0": h0, "day": first, "ha": first, "hb": h0, "sign": -1}
    return {"since": since, "h0": h0, "day": d0, "ha": h0, "hb": d0, "sign": 1}


# Counts by status; the mean duration as avg() computes it (numeric sum / count of runs with
# one), over finished runs: the rollups hold exactly those (`running` runs are not in them).
_HEALTH_SQL = text(
    """
WITH owned AS (SELECT id FROM endpoints WHERE id = :endpoint_id AND user_id = :user_id),
f AS (
    SELECT (status = 'success')::int AS success, (status = 'failed')::int AS failed,
           (duration_ms IS NOT NULL)::int AS timed, coalesce(duration_ms, 0) AS duration_ms
    FROM runs
    WHERE endpoint_id = (SELECT id FROM owned) AND started_at >= :since AND started_at < :h0
      AND status <> 'running'
    UNION ALL
    SELECT success, failed, timed, duration_ms FROM runs_daily
    WHERE endpoint_id = (SELECT id FROM owned) AND day >= :day
    UNION ALL
    SELECT :sign * success, :sign * failed, :sign * timed, :sign * duration_ms FROM runs_hourly
    WHERE endpoint_id = (SELECT id FROM owned) AND hour >= :ha AND hour < :hb
)
SELECT (SELECT id FROM owned) AS owned, c.success, c.failed, c.avg_ms,
       l.status AS last_status, l.started_at AS last_at,
       (SELECT count(*) FROM runs
        WHERE endpoint_id = (SELECT id FROM owned) AND status = 'failed'
          AND started_at > coalesce(
              (SELECT max(started_at) FROM runs
               WHERE endpoint_id = (SELECT id FROM owned) AND status = 'success'),
              '-infinity')) AS streak
FROM (
    SELECT coalesce(sum(success), 0) AS success, coalesce(sum(failed), 0) AS failed,
           sum(duration_ms)::numeric / nullif(sum(timed), 0)::numeric AS avg_ms
    FROM f
) AS c
LEFT JOIN LATERAL (
    SELECT status, started_at FROM runs WHERE endpoint_id = (SELECT id FROM owned)
    ORDER BY started_at DESC, id DESC LIMIT 1
) AS l ON true
"""
)


async def record_test_run(
    conn: AsyncConnection,
    *,
    user_id: str,
    endpoint_id: str,
    started_at: datetime,
    finished_at: datetime,
    outcome: dict[str, Any],
    worker: str = "api",
) -> str:
    """Store a finished manual run (`source='test'`, no due slot, attempt 1). `outcome` holds
    the result columns: status, duration_ms, status_code, response_body, response_text,
    response_size, response_truncated, error_message. The caller counted the run on the
    monthly meter before the call (`quotas.reserve_run`)."""
    run_id = new_id()
    await conn.execute(
        insert(runs).values(
            id=run_id,
            endpoint_id=endpoint_id,
            user_id=user_id,
            source="test",
            attempt=1,
            due_at=None,
            started_at=started_at,
            finished_at=finished_at,
            worker=worker,
            **outcome,
        )
    )
    await endpoint_changed(conn, user_id, endpoint_id)
    return run_id
