"""Reading run history (the scheduler writes runs; the API records only manual test runs).

Every read first checks that the endpoint (or run) belongs to the caller, so another user's
endpoint id is a 404 rather than an empty list (reference §2.7 returned 200-empty).
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import TextClause, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.ids import new_id
from cronicorn.store.errors import Invalid, NotFound
from cronicorn.store.tables import endpoints, runs
from cronicorn.store.wakeups import endpoint_changed

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RUN_STATUSES = ("running", "success", "failed", "skipped")  # skipped: overlap (0008)


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


def encode_cursor(run: RunSummary) -> str:
    """An opaque position after `run` in the newest-first order: its (started_at, id)."""
    micros = (run.started_at - EPOCH) // timedelta(microseconds=1)
    raw = f"{micros}.{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (started_at, id) a cursor names; `Invalid` for anything we did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, run_id = raw.split(".", 1)
        at = EPOCH + timedelta(microseconds=int(micros))
    except (ValueError, OverflowError, UnicodeDecodeError):  # binascii.Error is a ValueError
        raise Invalid("cursor", "Not a cursor from a previous page (nextCursor)") from None
    if not run_id or not micros.lstrip("-").isdigit() or "\x00" in run_id:
        raise Invalid("cursor", "Not a cursor from a previous page (nextCursor)")
    return at, run_id


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
) -> RunPage:
    """A page of the endpoint's runs, newest first, the total matching the filters, and the
    cursor of the next page. With a `cursor` the page starts just after the run it names
    (keyset on `ix_runs_endpoint_id_started_at`: a deep page costs what the first does;
    `offset` then skips from there); without one, `offset` counts from the newest run.

    One explicit statement (ownership, count and page in one round trip; this is the hottest
    read of the API, and as text it costs a third of the Core version's Python time). Runs
    are matched through the owned endpoint's id, never by `user_id`, so the count is an
    index-only scan of (endpoint_id, …)."""
    after = decode_cursor(cursor) if cursor is not None else (None, None)
    params: dict[str, Any] = {
        "endpoint_id": endpoint_id,
        "user_id": user_id,
        "status": status,
        "since": since,
        "until": until,
        "after_at": after[0],
        "after_id": after[1],
        "fetch": limit + 1,  # one more than the page: is there a next page?
        "offset": offset,
    }
    statement = _list_statement(
        status is not None, since is not None, until is not None, cursor is not None
    )
    rows = (await conn.execute(statement, params)).all()
    if not rows or rows[0].owned is None:
        raise NotFound("Endpoint")
    items = [RunSummary(*row[2:]) for row in rows if row.id is not None]
    more = len(items) > limit
    items = items[:limit]
    return RunPage(items, int(rows[0].total), encode_cursor(items[-1]) if more else None)


_LIST_SQL = """
WITH owned AS (SELECT id FROM endpoints WHERE id = :endpoint_id AND user_id = :user_id)
SELECT (SELECT id FROM owned) AS owned,
       (SELECT count(*) FROM runs WHERE {where}) AS total,
       page.*
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT id, endpoint_id, status, source, attempt, due_at, started_at, finished_at,
           duration_ms, status_code, error_message
    FROM runs WHERE {where}{after}
    ORDER BY started_at DESC, id DESC
    LIMIT :fetch OFFSET :offset
) AS page ON true
ORDER BY page.started_at DESC, page.id DESC
"""
# Rows after a cursor's (started_at, id) in the newest-first order, spelt so that the first
# condition is an index bound on (endpoint_id, started_at) and the second a cheap recheck.
_AFTER = " AND started_at <= :after_at AND (started_at < :after_at OR id < :after_id)"


@functools.cache
def _list_statement(by_status: bool, by_since: bool, by_until: bool, by_cursor: bool) -> TextClause:
    """The list query for one combination of filters (static SQL fragments only)."""
    where = ["endpoint_id = (SELECT id FROM owned)"]
    if by_status:
        where.append("status = :status")
    if by_since:
        where.append("started_at >= :since")
    if by_until:
        where.append("started_at < :until")
    return text(_LIST_SQL.format(where=" AND ".join(where), after=_AFTER if by_cursor else ""))


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
    (failures since the last success, whatever the window), in one statement: each part is
    an index range of `ix_runs_endpoint_id_started_at` (the window, the newest run, the runs
    after the last success), never the endpoint's whole history."""
    row = (
        await conn.execute(
            _HEALTH_SQL, {"endpoint_id": endpoint_id, "user_id": user_id, "since": since}
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


_HEALTH_SQL = text(
    """
WITH owned AS (SELECT id FROM endpoints WHERE id = :endpoint_id AND user_id = :user_id)
SELECT (SELECT id FROM owned) AS owned, c.success, c.failed, c.avg_ms,
       l.status AS last_status, l.started_at AS last_at,
       (SELECT count(*) FROM runs
        WHERE endpoint_id = (SELECT id FROM owned) AND status = 'failed'
          AND started_at > coalesce(
              (SELECT max(started_at) FROM runs
               WHERE endpoint_id = (SELECT id FROM owned) AND status = 'success'),
              '-infinity')) AS streak
FROM (
    SELECT count(*) FILTER (WHERE status = 'success') AS success,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           avg(duration_ms) FILTER (WHERE status <> 'running') AS avg_ms
    FROM runs WHERE endpoint_id = (SELECT id FROM owned) AND started_at >= :since
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
