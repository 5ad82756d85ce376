"""Aggregates for the dashboard and the usage meter. All scoped by user, all bucketed in UTC
(the reference aligned hourly buckets to the server's local time).

Run counts come from the hourly rollups (migration 0010: `runs_hourly` per endpoint,
`runs_hourly_users` per user), exact for every whole hour of a range; only the partial hours
at its two edges and the runs still `running` are read from `runs` (`Facts`). So the cost of
a range is its number of hours, not of runs, and pruned runs still count. Skipped slots
(overlap) are not runs in the totals, rates, series or job health; the activity timeline
lists them and counts them in its total.

Results are typed (`Dashboard`, `Activity`, `MonthUsage`): the store returns numbers and
datetimes; each face formats them (`schemas.dashboard` builds the REST/MCP JSON with its
camelCase names, date labels and chart headroom; `web.home` its charts).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from sqlalchemy import (
    Integer,
    Text,
    and_,
    bindparam,
    func,
    literal,
    select,
    text,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from cronicorn.domain import month_start
from cronicorn.store import cursors
from cronicorn.store.quotas import LIVE_ENDPOINTS, live_endpoints, meter
from cronicorn.store.tables import ai_sessions, endpoints, jobs, runs

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
TARGET_POINTS = 24
HOURLY_SIZES = (1, 2, 3, 4, 6, 8, 12)
DAILY_SIZES = (1, 2, 3, 7, 14)


# -- buckets --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Buckets:
    size: timedelta
    hourly: bool
    starts: list[datetime]


def choose_buckets(start: datetime, end: datetime) -> Buckets:
    """About 24 UTC-aligned points: hourly sizes up to 14 days, daily sizes beyond."""
    span = end - start
    hourly = span <= timedelta(days=14)
    unit = timedelta(hours=1) if hourly else timedelta(days=1)
    sizes = HOURLY_SIZES if hourly else DAILY_SIZES
    size = unit * sizes[-1]
    for n in sizes:
        if span / (unit * n) <= TARGET_POINTS:
            size = unit * n
            break
    first = floor_to(start, size)
    starts = []
    at = first
    while at < end:
        starts.append(at)
        at += size
    return Buckets(size=size, hourly=hourly, starts=starts)


def floor_to(at: datetime, size: timedelta) -> datetime:
    return EPOCH + ((at - EPOCH) // size) * size


def _bin(size: timedelta, column: Any) -> Any:
    return func.date_bin(size, column, literal(EPOCH))


def success_pct(success: int, failure: int) -> float:
    """Successes among finished runs, in percent to one decimal (0.0 when none finished)."""
    done = success + failure
    return round(100.0 * success / done, 1) if done else 0.0


# -- dashboard stats ------------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    total: int
    active: int
    paused: int


@dataclass(frozen=True)
class SuccessRate:
    overall: float  # percent, see `success_pct`
    trend: Literal["up", "down", "stable"]  # against the range just before, same length


@dataclass(frozen=True)
class Recent:
    """The 24 hours before now, whatever the range."""

    runs: int
    success: int
    failed: int


@dataclass(frozen=True)
class JobRuns:
    job_id: str
    job_name: str
    success: int
    failed: int


@dataclass(frozen=True)
class Totals:
    runs: int
    success: int
    failed: int
    avg_duration_ms: float | None  # None when no run of the range has a duration


@dataclass(frozen=True)
class SourceCount:
    source: str
    count: int


@dataclass(frozen=True)
class RunPoint:
    bucket: datetime
    success: int
    failed: int


@dataclass(frozen=True)
class EndpointPoint:
    bucket: datetime
    endpoint_id: str
    endpoint_name: str
    success: int
    failed: int
    duration_ms: int


@dataclass(frozen=True)
class SessionPoint:
    bucket: datetime
    endpoint_id: str
    endpoint_name: str
    sessions: int
    tokens: int


@dataclass(frozen=True)
class SessionTotal:
    bucket: datetime
    sessions: int
    tokens: int


@dataclass(frozen=True)
class LatenessPoint:
    """Scheduled runs of a bucket (skipped slots left out) and how late they started."""

    bucket: datetime
    runs: int
    avg_ms: float
    max_ms: float


@dataclass(frozen=True)
class Dashboard:
    """A range's numbers. `runs` has a point for every bucket of `buckets`; the other series
    only the buckets (and endpoints) with something in them. `endpoint_series` and
    `session_series` are empty unless the query asked for `series`; `session_totals` and
    `lateness` (all sources, like `sources`) are always there."""

    buckets: Buckets
    jobs: Counts
    endpoints: Counts
    success_rate: SuccessRate
    recent: Recent
    job_health: list[JobRuns]
    totals: Totals
    sources: list[SourceCount]
    runs: list[RunPoint]
    endpoint_series: list[EndpointPoint]
    session_series: list[SessionPoint]
    session_totals: list[SessionTotal]
    lateness: list[LatenessPoint]
    all_runs: int  # every run of the range, skipped slots too (the timeline's total of runs)


@dataclass(frozen=True)
class StatsQuery:
    user_id: str
    start: datetime
    end: datetime
    now: datetime
    job_id: str | None = None
    source: str | None = None
    endpoint_limit: int = 20
    series: bool = True  # per-endpoint series (the API's); the web page shows only totals


def _ceil(at: datetime, size: timedelta) -> datetime:
    floor = floor_to(at, size)
    return floor if floor == at else floor + size


@dataclass(frozen=True)
class Facts:
    """Where a range's runs are counted: the whole hours in `[lo, hi)` from the rollups
    (finished runs; `running` ones live from the partial index `ix_runs_running`), the
    partial hours at either edge from `runs` itself (at most two hours of it). Scoped by
    user, or by a job's endpoints, or by a list of endpoints; `per_endpoint` reads the
    per-endpoint rollups (an endpoint id on every row) instead of the per-user ones.

    `daily` reads whole UTC days from `runs_daily`, and a partial day either as its hours
    or as the whole day minus the hours outside the range, whichever has fewer rows (hours
    after `now` have none). Its rows stand for a day and the worst lateness is not kept:
    for sums over the whole range only, never for buckets."""

    user_id: str
    start: datetime
    end: datetime
    job_id: str | None = None
    endpoint_ids: tuple[str, ...] | None = None
    per_endpoint: bool = False
    daily: bool = False
    now: datetime | None = None
    narrow: bool = False  # only endpoint_id, source, success, failed, running (see `sql`)
    series: bool = False  # only endpoint_id, hour, source, success, failed, duration_ms

    @property
    def _open_ended(self) -> bool:
        """The range runs to now: its last, partial hour holds every run started in that
        hour so far, so the rollup row of the hour is exactly its finished runs (`running`
        ones are read live), and the edge costs one row instead of every run of the hour."""
        return self.now is not None and self.end >= self.now

    def _hours(self) -> tuple[datetime, datetime]:
        lo = _ceil(self.start, HOUR)
        hi = _ceil(self.end, HOUR) if self._open_ended else floor_to(self.end, HOUR)
        return (lo, hi) if lo <= hi else (self.end, self.end)  # within one hour: all raw

    def _parts(self) -> list[tuple[str, int, datetime, datetime]]:
        """(table, sign, from, to) of the rollup rows to add (1) or take back (-1)."""
        lo, hi = self._hours()
        by_endpoint = self.per_endpoint or self.job_id is not None or self.endpoint_ids
        if not by_endpoint:
            return [("runs_hourly_users", 1, lo, hi)]
        lo_day, hi_day = _ceil(lo, DAY), floor_to(hi, DAY)
        if not self.daily or lo_day > hi_day:
            return [("runs_hourly", 1, lo, hi)]
        parts = []
        if lo < lo_day:
            first = lo_day - DAY
            if lo - first < lo_day - lo:
                parts += [("runs_daily", 1, first, lo_day), ("runs_hourly", -1, first, lo)]
            else:
                parts.append(("runs_hourly", 1, lo, lo_day))
        if lo_day < hi_day:
            parts.append(("runs_daily", 1, lo_day, hi_day))
        if hi_day < hi:
            last = hi_day + DAY
            filled = last if self.now is None else min(last, _ceil(self.now, HOUR) + HOUR)
            if max(filled - hi, timedelta(0)) < hi - hi_day:
                parts += [("runs_daily", 1, hi_day, last), ("runs_hourly", -1, hi, last)]
            else:
                parts.append(("runs_hourly", 1, hi_day, hi))
        return parts

    def params(self) -> dict[str, Any]:
        lo, hi = self._hours()
        spans: dict[str, datetime] = {}
        for i, (_, _, a, b) in enumerate(self._parts()):
            spans |= {f"a{i}": a, f"b{i}": b}
        return {
            "user": self.user_id,
            "job": self.job_id,
            "ids": list(self.endpoint_ids or ()),
            "start": self.start,
            "lo": lo,
            "hi": hi,
            "end": self.end,
            "epoch": EPOCH,
            **spans,
        }

    def _whose(self, alias: str) -> str:
        if self.endpoint_ids is not None:
            return f"{alias}.endpoint_id = ANY(CAST(:ids AS text[]))"
        if self.job_id is not None:
            return (
                f"{alias}.endpoint_id = ANY(ARRAY(SELECT id FROM endpoints"
                " WHERE job_id = :job AND user_id = :user))"
            )
        return f"{alias}.user_id = :user"

    def _rolled(self, i: int, table: str, sign: int) -> str:
        at = "day" if table == "runs_daily" else "hour"
        endpoint = "NULL" if table == "runs_hourly_users" else "h.endpoint_id"
        m = "" if sign > 0 else "-"
        if self.narrow:
            return (
                f"SELECT {endpoint} AS endpoint_id, h.source, {m}h.success AS success,"
                f" {m}h.failed AS failed, 0 AS running FROM {table} h"
                f" WHERE {self._whose('h')} AND h.{at} >= :a{i} AND h.{at} < :b{i}"
            )
        if self.series:
            return (
                f"SELECT {endpoint} AS endpoint_id, h.{at} AS hour, h.source, {m}h.success,"
                f" {m}h.failed, {m}h.duration_ms FROM {table} h"
                f" WHERE {self._whose('h')} AND h.{at} >= :a{i} AND h.{at} < :b{i}"
            )
        return (
            f"SELECT {endpoint} AS endpoint_id, h.{at} AS hour, h.source, {m}h.success,"
            f" {m}h.failed, {m}h.skipped, 0 AS running, {m}h.timed, {m}h.duration_ms,"
            f" {m}h.scheduled, {m}h.late_ms,"
            f" {'h.late_max_ms' if sign > 0 else 'NULL'} FROM {table} h"
            f" WHERE {self._whose('h')} AND h.{at} >= :a{i} AND h.{at} < :b{i}"
        )

    def sql(self) -> str:
        """A SELECT of rows (endpoint_id, hour, source, success, failed, skipped, running,
        timed, duration_ms, scheduled, late_ms, late_max_ms) to sum; `narrow`: only
        (endpoint_id, source, success, failed, running), which the rollups' covering indexes
        hold (migration 0011), so the per-endpoint totals are index-only scans; `series`:
        only (endpoint_id, hour, source, success, failed, duration_ms), which the primary keys
        of `runs_hourly`/`runs_daily` hold (migration 0015): the per-endpoint series is an
        index-only scan of its endpoints' hours."""
        rolled = [
            self._rolled(i, table, sign) for i, (table, sign, _, _) in enumerate(self._parts())
        ]
        shape = _RAW_NARROW if self.narrow else _RAW_SERIES if self.series else _RAW
        whose = self._whose("r")
        if self.endpoint_ids is not None or self.job_id is not None:
            whose = f"r.user_id = :user AND {whose}"  # the user's runs of the hour, not all
        edges = [("start", "lo")] if self._open_ended else [("start", "lo"), ("hi", "end")]
        raw = [shape.format(whose=whose, a=a, b=b, only="") for a, b in edges]
        running = shape.format(whose=whose, a="lo", b="hi", only=" AND r.status = 'running'")
        return "\nUNION ALL\n".join([*rolled, *raw, running])


_LATE = "greatest(date_part('epoch', r.started_at - r.due_at) * 1000, 0)"
_TIMELY = "r.due_at IS NOT NULL AND r.status <> 'skipped'"
_RAW = f"""SELECT r.endpoint_id, date_bin('1 hour', r.started_at, :epoch) AS hour, r.source,
       (r.status = 'success')::int AS success, (r.status = 'failed')::int AS failed,
       (r.status = 'skipped')::int AS skipped, (r.status = 'running')::int AS running,
       (r.duration_ms IS NOT NULL)::int AS timed, coalesce(r.duration_ms, 0) AS duration_ms,
       ({_TIMELY})::int AS scheduled,
       CASE WHEN {_TIMELY} THEN {_LATE} ELSE 0 END AS late_ms,
       CASE WHEN {_TIMELY} THEN {_LATE} END AS late_max_ms
FROM runs r
WHERE {{whose}} AND r.started_at >= :{{a}} AND r.started_at < :{{b}}{{only}}"""

_RAW_NARROW = """SELECT r.endpoint_id, r.source, (r.status = 'success')::int AS success,
       (r.status = 'failed')::int AS failed, (r.status = 'running')::int AS running
FROM runs r
WHERE {whose} AND r.started_at >= :{a} AND r.started_at < :{b}{only}"""

_RAW_SERIES = """SELECT r.endpoint_id, date_bin('1 hour', r.started_at, :epoch) AS hour, r.source,
       (r.status = 'success')::int AS success, (r.status = 'failed')::int AS failed,
       coalesce(r.duration_ms, 0) AS duration_ms
FROM runs r
WHERE {whose} AND r.started_at >= :{a} AND r.started_at < :{b}{only}"""

_IDS = bindparam("ids", type_=ARRAY(Text))


@functools.lru_cache(maxsize=512)
def _statement(sql: str, with_ids: bool) -> TextClause:
    """One statement object per SQL text: SQLAlchemy memoizes the cache key on the object, so
    a page does not re-parse and re-key its dozen statements on every request."""
    statement = text(sql)
    return statement.bindparams(_IDS) if with_ids else statement


async def _rows(conn: AsyncConnection, facts: Facts, select_sql: str, **extra: Any) -> Any:
    """`select_sql` over the facts (the CTE `f`); returns the result rows."""
    sql = f"WITH f AS ({facts.sql()})\n{select_sql}"
    statement = _statement(sql, facts.endpoint_ids is not None)
    return (await conn.execute(statement, {**facts.params(), **extra})).all()


@dataclass(frozen=True)
class Cell:
    """Sums over one (bucket, source) of a range."""

    bucket: datetime
    source: str
    success: int
    failed: int
    skipped: int
    running: int
    timed: int
    duration_ms: int
    scheduled: int
    late_ms: float
    late_max_ms: float | None

    @property
    def runs(self) -> int:  # skipped slots are not runs
        return self.success + self.failed + self.running


_CELLS_SQL = """SELECT date_bin(:size, f.hour, :epoch) AS bucket, f.source,
       sum(f.success), sum(f.failed), sum(f.skipped), sum(f.running), sum(f.timed),
       sum(f.duration_ms), sum(f.scheduled), sum(f.late_ms), max(f.late_max_ms)
FROM f GROUP BY 1, 2"""


async def cells(conn: AsyncConnection, facts: Facts, size: timedelta) -> list[Cell]:
    """The range's runs summed per (bucket of `size`, a whole number of hours) and source."""
    rows = await _rows(conn, facts, _CELLS_SQL, size=size)
    return [
        Cell(
            r[0],
            r[1],
            int(r[2]),
            int(r[3]),
            int(r[4]),
            int(r[5]),
            int(r[6]),
            int(r[7]),
            int(r[8]),
            float(r[9]),
            None if r[10] is None else float(r[10]),
        )
        for r in rows
    ]


def _lateness(found: list[Cell]) -> list[LatenessPoint]:
    """Per bucket with scheduled runs: how many, and their average and worst lateness."""
    per: dict[datetime, list[float]] = {}
    for c in found:
        if c.scheduled:
            acc = per.setdefault(c.bucket, [0, 0.0, 0.0])
            acc[0] += c.scheduled
            acc[1] += c.late_ms
            acc[2] = max(acc[2], c.late_max_ms or 0.0)
    return [LatenessPoint(at, int(a[0]), a[1] / a[0], a[2]) for at, a in sorted(per.items())]


def _facts(q: StatsQuery, **changes: Any) -> Facts:
    scope = {"user_id": q.user_id, "start": q.start, "end": q.end, "job_id": q.job_id}
    return Facts(**{**scope, "now": q.now, **changes})


def _chosen(q: StatsQuery, found: list[Cell]) -> list[Cell]:
    return [c for c in found if q.source is None or c.source == q.source]


@functools.cache
def _counts_statement() -> Any:
    """Jobs by status and live endpoints (paused ones apart), one round trip."""
    user: Any = bindparam("user", type_=Text)
    paused_until = endpoints.c.paused_until
    paused = and_(paused_until.is_not(None), paused_until > bindparam("now"))
    job_counts = (
        select(
            func.count().filter(jobs.c.status != "archived").label("jobs"),
            func.count().filter(jobs.c.status == "active").label("active"),
            func.count().filter(jobs.c.status == "paused").label("paused"),
        )
        .where(jobs.c.user_id == user)
        .subquery()
    )
    endpoint_counts = (
        select(
            func.count().label("endpoints"),
            func.count().filter(paused).label("endpoints_paused"),
        )
        .select_from(LIVE_ENDPOINTS)
        .where(live_endpoints(user))
        .subquery()
    )
    return select(job_counts, endpoint_counts).select_from(job_counts.join(endpoint_counts, true()))


async def _counts(conn: AsyncConnection, user_id: str, now: datetime) -> tuple[Counts, Counts]:
    row = (await conn.execute(_counts_statement(), {"user": user_id, "now": now})).one()
    jobs_n, active, paused, endpoints_n, endpoints_paused = (int(v) for v in row)
    live = Counts(endpoints_n, endpoints_n - endpoints_paused, endpoints_paused)
    return Counts(jobs_n, active, paused), live


_RATE_SQL = "SELECT coalesce(sum(f.success), 0), coalesce(sum(f.failed), 0) FROM f"


async def _previous(conn: AsyncConnection, q: StatsQuery) -> tuple[int, int]:
    """Successes and failures in the range just before this one, of the same length."""
    span = q.end - q.start
    before = _facts(q, start=q.start - span, end=q.start)
    sql = _RATE_SQL + (" WHERE f.source = :source" if q.source is not None else "")
    row = (await _rows(conn, before, sql, source=q.source))[0]
    return int(row[0]), int(row[1])


def _success_rate(now_cells: list[Cell], before: tuple[int, int]) -> SuccessRate:
    """Overall rate over the range, and its trend against the range just before it of the
    same length (more than 2 points apart is up or down)."""
    ok = sum(c.success for c in now_cells)
    bad = sum(c.failed for c in now_cells)
    prev_ok, prev_bad = before
    overall, previous = success_pct(ok, bad), success_pct(prev_ok, prev_bad)
    if ok + bad and prev_ok + prev_bad and abs(overall - previous) > 2:
        return SuccessRate(overall, "up" if overall > previous else "down")
    return SuccessRate(overall, "stable")


_RECENT_SQL = """SELECT coalesce(sum(f.success + f.failed + f.running), 0),
       coalesce(sum(f.success), 0), coalesce(sum(f.failed), 0) FROM f"""


async def _recent(conn: AsyncConnection, user_id: str, now: datetime) -> Recent:
    facts = Facts(user_id, now - timedelta(hours=24), now, now=now)
    row = (await _rows(conn, facts, _RECENT_SQL))[0]
    return Recent(int(row[0]), int(row[1]), int(row[2]))


# One source's runs per job, from the per-endpoint rollups: each endpoint's job from one scan
# of the user's endpoints, summed per job before the jobs' names are read (a primary-key
# lookup per endpoint with runs, then per job, was ~3 buffers each).
_PER_JOB_SQL = """SELECT j.id, j.name, x.success, x.failed
FROM (SELECT e.job_id, sum(p.success) AS success, sum(p.failed) AS failed
      FROM (SELECT f.endpoint_id, sum(f.success) AS success, sum(f.failed) AS failed,
                   sum(f.success + f.failed + f.running) AS runs
            FROM f {where} GROUP BY f.endpoint_id) p
      JOIN (SELECT id, job_id FROM endpoints WHERE user_id = :user) e ON e.id = p.endpoint_id
      GROUP BY e.job_id HAVING sum(p.runs) > 0) x
JOIN jobs j ON j.id = x.job_id"""
# The busiest endpoints' names are looked up after the LIMIT: one primary-key descent per
# endpoint shown, not per endpoint with runs (100 endpoints were ~300 of its ~320 buffers).
_TOP_SQL = """SELECT t.endpoint_id, e.name
FROM (SELECT f.endpoint_id, sum(f.success + f.failed + f.running) AS runs
      FROM f {where} GROUP BY f.endpoint_id
      HAVING sum(f.success + f.failed + f.running) > 0
      ORDER BY 2 DESC, f.endpoint_id COLLATE "C" LIMIT :top) t
JOIN endpoints e ON e.id = t.endpoint_id
ORDER BY t.runs DESC, t.endpoint_id COLLATE "C"
"""


def _endpoint_facts(q: StatsQuery) -> Facts:
    """Per-endpoint totals of the range: whole days from `runs_daily` (`Facts.daily`)."""
    return _facts(q, per_endpoint=True, daily=True, narrow=True)


_JOB_TABLES = {"runs_hourly": "runs_jobs_hourly", "runs_daily": "runs_jobs_daily"}
_RAW_JOBS = """SELECT r.endpoint_id, (r.status = 'success')::int, (r.status = 'failed')::int,
       (r.status = 'running')::int
FROM runs r
WHERE r.user_id = :user AND r.started_at >= :{a} AND r.started_at < :{b}{only}"""
# The raw runs are summed per endpoint first, then given their job by a hash join with the
# user's endpoints (one range of `ix_endpoints_user_id`): joined per run, each of the ~100
# runs of a busy user's partial hour cost a primary-key descent into `endpoints`.
_JOBS_SQL = """SELECT j.id, j.name, sum(f.success), sum(f.failed)
FROM ({rolled}
UNION ALL
SELECT e.job_id, x.success, x.failed, x.running
FROM (SELECT x.endpoint_id, sum(x.success) AS success, sum(x.failed) AS failed,
             sum(x.running) AS running
      FROM ({raw}) x (endpoint_id, success, failed, running)
      GROUP BY x.endpoint_id) x
JOIN (SELECT id, job_id FROM endpoints WHERE user_id = :user{job}) e ON e.id = x.endpoint_id
) f (job_id, success, failed, running)
JOIN jobs j ON j.id = f.job_id
GROUP BY j.id, j.name HAVING sum(f.success + f.failed + f.running) > 0"""


def _per_job_sql(facts: Facts) -> str:
    """Runs per job from the per-job rollups (migration 0012), over the same whole days and
    hours as the per-endpoint `facts` would read, and the edges and running runs from `runs`
    (with their endpoints' job)."""
    job = " AND h.job_id = :job" if facts.job_id is not None else ""
    parts = []
    for i, (table, sign, _, _) in enumerate(facts._parts()):
        at = "day" if table == "runs_daily" else "hour"
        m = "" if sign > 0 else "-"
        parts.append(
            f"SELECT h.job_id, {m}h.success, {m}h.failed, 0 FROM {_JOB_TABLES[table]} h"
            f" WHERE h.user_id = :user{job} AND h.{at} >= :a{i} AND h.{at} < :b{i}"
        )
    edges = [("start", "lo")] if facts._open_ended else [("start", "lo"), ("hi", "end")]
    raw = [_RAW_JOBS.format(a=a, b=b, only="") for a, b in edges]
    raw.append(_RAW_JOBS.format(a="lo", b="hi", only=" AND r.status = 'running'"))
    return _JOBS_SQL.format(
        rolled="\nUNION ALL\n".join(parts),
        raw="\nUNION ALL\n".join(raw),
        job=" AND job_id = :job" if facts.job_id is not None else "",
    )


async def _job_health(conn: AsyncConnection, q: StatsQuery) -> list[JobRuns]:
    """Jobs with runs in the range (running ones count), by name then id: from the per-job
    rollups, or from the per-endpoint ones for one schedule source (kept per source)."""
    facts = _endpoint_facts(q)
    if q.source is None:
        sql = _per_job_sql(facts)
        rows = (await conn.execute(_statement(sql, False), facts.params())).all()
    else:
        sql = _PER_JOB_SQL.format(where="WHERE f.source = :source")
        rows = await _rows(conn, facts, sql, source=q.source)
    found = sorted((r[1], r[0], int(r[2]), int(r[3])) for r in rows)
    return [JobRuns(job_id, name, ok, bad) for name, job_id, ok, bad in found]


def _totals(chosen: list[Cell]) -> Totals:
    timed = sum(c.timed for c in chosen)
    return Totals(
        runs=sum(c.runs for c in chosen),
        success=sum(c.success for c in chosen),
        failed=sum(c.failed for c in chosen),
        avg_duration_ms=round(sum(c.duration_ms for c in chosen) / timed, 1) if timed else None,
    )


def _sources(found: list[Cell]) -> list[SourceCount]:
    per: dict[str, int] = {}
    for c in found:
        if c.runs:
            per[c.source] = per.get(c.source, 0) + c.runs
    ranked = sorted(per.items(), key=lambda item: (-item[1], item[0]))
    return [SourceCount(source, count) for source, count in ranked]


def _run_series(chosen: list[Cell], b: Buckets) -> list[RunPoint]:
    found: dict[datetime, tuple[int, int]] = {}
    for c in chosen:
        ok, bad = found.get(c.bucket, (0, 0))
        found[c.bucket] = (ok + c.success, bad + c.failed)
    return [RunPoint(at, *found.get(at, (0, 0))) for at in b.starts]


_SERIES_SQL = """SELECT date_bin(:size, f.hour, :epoch) AS bucket, f.endpoint_id,
       sum(f.success), sum(f.failed), sum(f.duration_ms)
FROM f {where} GROUP BY 1, 2"""


async def _endpoint_series(conn: AsyncConnection, q: StatsQuery, b: Buckets) -> list[EndpointPoint]:
    """The busiest endpoints of the range (most runs, then id), bucketed."""
    where = "WHERE f.source = :source" if q.source is not None else ""
    top_sql = _TOP_SQL.format(where=where)
    top = await _rows(conn, _endpoint_facts(q), top_sql, source=q.source, top=q.endpoint_limit)
    names: dict[str, str] = {r[0]: r[1] for r in top}
    if not names:
        return []
    facts = _facts(q, endpoint_ids=tuple(names), series=True)
    rows = await _rows(conn, facts, _SERIES_SQL.format(where=where), size=b.size, source=q.source)
    return [
        EndpointPoint(r[0], r[1], names[r[1]], int(r[2]), int(r[3]), int(r[4]))
        for r in sorted(rows, key=lambda r: (r[0], names[r[1]], r[1]))
    ]


def _session_conditions(q: StatsQuery) -> list[Any]:
    conditions = [
        ai_sessions.c.user_id == q.user_id,
        ai_sessions.c.analyzed_at >= q.start,
        ai_sessions.c.analyzed_at < q.end,
    ]
    if q.job_id is not None:
        conditions.append(endpoints.c.job_id == q.job_id)
    return conditions


async def _session_series(conn: AsyncConnection, q: StatsQuery, b: Buckets) -> list[SessionPoint]:
    bucket = _bin(b.size, ai_sessions.c.analyzed_at).label("bucket")
    conditions = _session_conditions(q)
    rows = await conn.execute(
        select(
            bucket,
            ai_sessions.c.endpoint_id,
            endpoints.c.name,
            func.count(),
            func.coalesce(func.sum(ai_sessions.c.token_usage), 0),
        )
        .select_from(ai_sessions.join(endpoints, endpoints.c.id == ai_sessions.c.endpoint_id))
        .where(*conditions)
        .group_by(bucket, ai_sessions.c.endpoint_id, endpoints.c.name)
        .order_by(bucket, endpoints.c.name, ai_sessions.c.endpoint_id)
    )
    return [SessionPoint(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]


def _session_totals(series: list[SessionPoint]) -> list[SessionTotal]:
    per: dict[datetime, tuple[int, int]] = {}
    for p in series:
        n, tokens = per.get(p.bucket, (0, 0))
        per[p.bucket] = (n + p.sessions, tokens + p.tokens)
    return [SessionTotal(at, n, tokens) for at, (n, tokens) in sorted(per.items())]


_SESSIONS_SQL = """SELECT date_bin(:size, f.hour, :epoch) AS bucket, sum(f.sessions), sum(f.tokens)
FROM (
    SELECT h.hour, h.sessions, h.tokens FROM ai_sessions_hourly h
    WHERE h.user_id = :user AND h.hour >= :lo AND h.hour < :hi
    UNION ALL
    SELECT date_bin('1 hour', s.analyzed_at, :epoch), 1, coalesce(s.token_usage, 0)
    FROM ai_sessions s
    WHERE s.user_id = :user AND ((s.analyzed_at >= :start AND s.analyzed_at < :lo)
                                 OR (s.analyzed_at >= :hi AND s.analyzed_at < :end))
) f
GROUP BY 1 HAVING sum(f.sessions) <> 0 OR sum(f.tokens) <> 0 ORDER BY 1"""


async def _sessions_per_bucket(
    conn: AsyncConnection, q: StatsQuery, b: Buckets
) -> list[SessionTotal]:
    """AI sessions and tokens per bucket, without the per-endpoint rows: a user's whole hours
    from `ai_sessions_hourly` (migration 0012; it keeps counting pruned sessions, like the
    run rollups), the partial hours at the edges and a job's sessions from `ai_sessions`."""
    if q.job_id is None:
        lo, hi = Facts(q.user_id, q.start, q.end)._hours()
        params = {"user": q.user_id, "start": q.start, "end": q.end, "lo": lo, "hi": hi}
        found = await conn.execute(
            _statement(_SESSIONS_SQL, False), {**params, "size": b.size, "epoch": EPOCH}
        )
        return [SessionTotal(r[0], int(r[1]), int(r[2])) for r in found]
    bucket = _bin(b.size, ai_sessions.c.analyzed_at).label("bucket")
    rows = await conn.execute(
        select(bucket, func.count(), func.coalesce(func.sum(ai_sessions.c.token_usage), 0))
        .select_from(ai_sessions.join(endpoints, endpoints.c.id == ai_sessions.c.endpoint_id))
        .where(*_session_conditions(q))
        .group_by(bucket)
        .order_by(bucket)
    )
    return [SessionTotal(r[0], int(r[1]), int(r[2])) for r in rows]


async def dashboard(
    conn: AsyncConnection, q: StatsQuery, *, side: AsyncConnection | None = None
) -> Dashboard:
    """Everything the dashboard shows. Runs are counted from the hourly rollups (`Facts`);
    skipped slots (overlap) are not runs here. With a `side` connection
    (`store.side_reads`), the statements that do not need the range's cells (runs per job,
    the busiest endpoints, the 24 hours before now, the range before this one) run on it
    while the others are read on `conn`."""
    b = choose_buckets(q.start, q.end)
    if side is None:
        beside = await _beside(conn, q, b)
        found, sessions, counts = await _overview(conn, q, b)
    else:
        beside, (found, sessions, counts) = await asyncio.gather(
            _beside(side, q, b), _overview(conn, q, b)
        )
    chosen = _chosen(q, found)
    session_series, session_totals = sessions
    return Dashboard(
        buckets=b,
        jobs=counts[0],
        endpoints=counts[1],
        success_rate=_success_rate(chosen, beside.before),
        recent=beside.recent,
        job_health=beside.job_health,
        totals=_totals(chosen),
        sources=_sources(found),
        runs=_run_series(chosen, b),
        endpoint_series=beside.endpoint_series,
        session_series=session_series,
        session_totals=session_totals,
        lateness=_lateness(found),
        all_runs=sum(c.success + c.failed + c.skipped + c.running for c in found),
    )


@dataclass(frozen=True)
class _Beside:
    """What the dashboard reads without the range's cells (the side lane)."""

    job_health: list[JobRuns]
    endpoint_series: list[EndpointPoint]
    recent: Recent
    before: tuple[int, int]  # successes and failures of the range before


async def _beside(conn: AsyncConnection, q: StatsQuery, b: Buckets) -> _Beside:
    series = await _endpoint_series(conn, q, b) if q.series else []
    return _Beside(
        job_health=await _job_health(conn, q),
        endpoint_series=series,
        recent=await _recent(conn, q.user_id, q.now),
        before=await _previous(conn, q),
    )


async def _overview(
    conn: AsyncConnection, q: StatsQuery, b: Buckets
) -> tuple[list[Cell], tuple[list[SessionPoint], list[SessionTotal]], tuple[Counts, Counts]]:
    """The range's cells, its AI sessions (per endpoint when asked, and per bucket), and the
    jobs and endpoints counted now."""
    found = await cells(conn, _facts(q), b.size)
    session_series: list[SessionPoint] = []
    if q.series:
        session_series = await _session_series(conn, q, b)
        session_totals = _session_totals(session_series)
    else:
        session_totals = await _sessions_per_bucket(conn, q, b)
    counts = await _counts(conn, q.user_id, q.now)
    return found, (session_series, session_totals), counts


@dataclass(frozen=True)
class JobChoice:
    id: str
    name: str
    status: str


_JOB_CHOICES = (
    select(jobs.c.id, jobs.c.name, jobs.c.status)
    .where(jobs.c.user_id == bindparam("user"))
    .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
)


async def job_choices(conn: AsyncConnection, user_id: str) -> list[JobChoice]:
    """The user's jobs to filter by, newest first (no endpoint counts: a page's selector)."""
    rows = await conn.execute(_JOB_CHOICES, {"user": user_id})
    return [JobChoice(r[0], r[1], r[2]) for r in rows]


# -- activity timeline ----------------------------------------------------------------------
@dataclass(frozen=True)
class ActivityQuery:
    user_id: str
    start: datetime
    end: datetime
    job_id: str | None = None
    event_type: str = "all"
    limit: int = 50
    offset: int = 0  # from the newest event, or from the cursor's position
    cursor: str | None = None  # `Activity.next_cursor` of the page before
    before: str | None = None  # `Activity.prev_cursor` of the page after: the newer page


def _runs_join() -> Any:
    return runs.join(endpoints, endpoints.c.id == runs.c.endpoint_id)


# The timeline's statements are built once per shape (event kinds, job filter, cursor) with
# bound parameters: SQLAlchemy then neither rebuilds nor re-keys them on every page.
Keyset = Literal["", "older", "newer"]  # no cursor; rows after it (older); before it (newer)


def _beyond_cursor(at: Any, row_id: Any, keyset: Keyset) -> Any:
    """Rows past the cursor's in the page's direction (the index gives the bound on `at`)."""
    mark = tuple_(bindparam("cursor_at"), bindparam("cursor_id"))
    return tuple_(at, row_id) < mark if keyset == "older" else tuple_(at, row_id) > mark


def _run_events(with_job: bool, keyset: Keyset) -> Any:
    conditions = [
        runs.c.user_id == bindparam("user"),
        runs.c.started_at >= bindparam("start"),
        runs.c.started_at < bindparam("end"),
    ]
    if keyset:
        conditions.append(_beyond_cursor(runs.c.started_at, runs.c.id, keyset))
    if with_job:
        conditions.append(endpoints.c.job_id == bindparam("job"))
    return (
        select(
            literal("run").label("type"),
            runs.c.id,
            runs.c.endpoint_id,
            endpoints.c.name.label("endpoint_name"),
            runs.c.started_at.label("ts"),
            runs.c.status,
            runs.c.duration_ms,
            runs.c.source,
            literal(None).label("reasoning"),
            literal(None, type_=ai_sessions.c.tool_calls.type).label("tool_calls"),
            literal(None, type_=ai_sessions.c.token_usage.type).label("token_usage"),
            literal(None, type_=ai_sessions.c.warnings.type).label("warnings"),
        )
        .select_from(_runs_join())
        .where(*conditions)
    )


def _session_events(with_job: bool, keyset: Keyset) -> Any:
    conditions = [
        ai_sessions.c.user_id == bindparam("user"),
        ai_sessions.c.analyzed_at >= bindparam("start"),
        ai_sessions.c.analyzed_at < bindparam("end"),
    ]
    if keyset:
        conditions.append(_beyond_cursor(ai_sessions.c.analyzed_at, ai_sessions.c.id, keyset))
    if with_job:
        conditions.append(endpoints.c.job_id == bindparam("job"))
    return (
        select(
            literal("session").label("type"),
            ai_sessions.c.id,
            ai_sessions.c.endpoint_id,
            endpoints.c.name.label("endpoint_name"),
            ai_sessions.c.analyzed_at.label("ts"),
            literal(None).label("status"),
            ai_sessions.c.duration_ms,
            literal(None).label("source"),
            ai_sessions.c.reasoning,
            ai_sessions.c.tool_calls,
            ai_sessions.c.token_usage,
            ai_sessions.c.warnings,
        )
        .select_from(ai_sessions.join(endpoints, endpoints.c.id == ai_sessions.c.endpoint_id))
        .where(*conditions)
    )


@dataclass(frozen=True)
class RunEvent:
    kind: ClassVar[Literal["run"]] = "run"
    id: str
    endpoint_id: str
    endpoint_name: str
    at: datetime
    status: str
    duration_ms: int | None
    source: str


@dataclass(frozen=True)
class SessionEvent:
    kind: ClassVar[Literal["session"]] = "session"
    id: str
    endpoint_id: str
    endpoint_name: str
    at: datetime
    reasoning: str | None
    tool_calls: list[Any]
    token_usage: int | None
    warnings: list[Any]


Event = RunEvent | SessionEvent


@dataclass(frozen=True)
class Activity:
    """One page of events, newest first, how many the range holds in all, where the next
    page starts (None on the last page) and where the newer page before it ends (None on
    the newest page)."""

    events: list[Event]
    total: int
    next_cursor: str | None = None
    prev_cursor: str | None = None

    @property
    def runs(self) -> list[RunEvent]:
        return [e for e in self.events if isinstance(e, RunEvent)]


@functools.lru_cache(maxsize=24)
def _timeline(event_type: str, with_job: bool, keyset: Keyset) -> Any:
    """Each kind's newest `depth` rows (after the cursor's) along its index, merged, one page
    of them; for the newer page, each kind's oldest rows before the cursor's, oldest first."""
    parts = []
    depth = bindparam("depth", type_=Integer)
    up = keyset == "newer"
    if event_type in {"all", "runs"}:
        order = _order(up, runs.c.started_at, runs.c.id)
        parts.append(_run_events(with_job, keyset).order_by(*order).limit(depth))
    if event_type in {"all", "sessions"}:
        order = _order(up, ai_sessions.c.analyzed_at, ai_sessions.c.id)
        parts.append(_session_events(with_job, keyset).order_by(*order).limit(depth))
    merged = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    return (
        select(merged)
        .order_by(*_order(up, merged.c.ts, merged.c.id))
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


def _order(up: bool, at: Any, row_id: Any) -> tuple[Any, Any]:
    return (at.asc(), row_id.asc()) if up else (at.desc(), row_id.desc())


@functools.lru_cache(maxsize=2)
def _session_count(with_job: bool) -> Any:
    """Sessions in the range: an index-only count unless a job filter needs the endpoints."""
    conditions = [
        ai_sessions.c.user_id == bindparam("user"),
        ai_sessions.c.analyzed_at >= bindparam("start"),
        ai_sessions.c.analyzed_at < bindparam("end"),
    ]
    source: Any = ai_sessions
    if with_job:
        source = ai_sessions.join(endpoints, endpoints.c.id == ai_sessions.c.endpoint_id)
        conditions.append(endpoints.c.job_id == bindparam("job"))
    return select(func.count()).select_from(source).where(*conditions)


def _event(m: Any) -> Event:
    if m["type"] == "run":
        return RunEvent(
            m["id"],
            m["endpoint_id"],
            m["endpoint_name"],
            m["ts"],
            status=m["status"],
            duration_ms=m["duration_ms"],
            source=m["source"],
        )
    return SessionEvent(
        m["id"],
        m["endpoint_id"],
        m["endpoint_name"],
        m["ts"],
        reasoning=m["reasoning"],
        tool_calls=m["tool_calls"] or [],
        token_usage=m["token_usage"],
        warnings=m["warnings"] or [],
    )


_ALL_RUNS_SQL = "SELECT coalesce(sum(f.success + f.failed + f.skipped + f.running), 0) FROM f"


async def activity(
    conn: AsyncConnection, q: ActivityQuery, *, counted: Dashboard | None = None
) -> Activity:
    """Runs and AI sessions merged newest first, paged in SQL (one UNION ALL of each kind's
    newest `offset + limit + 1` after the cursor, read backwards along its index: with the
    cursor a deep page costs what the first does; `before` reads forwards from its cursor,
    as cheaply); the total from the rollups, or from `counted`, the dashboard of the same
    range and job, which has summed them."""
    with_job = q.job_id is not None
    keyset: Keyset = "older" if q.cursor is not None else "newer" if q.before is not None else ""
    mark = q.cursor if q.cursor is not None else q.before
    at, row_id = cursors.decode(mark) if mark is not None else (None, None)
    offset = 0 if keyset == "newer" else q.offset
    params = {
        "user": q.user_id,
        "start": q.start,
        "end": q.end,
        "job": q.job_id,
        "cursor_at": at,
        "cursor_id": row_id,
        "depth": offset + q.limit + 1,  # one more than the page: is there a page beyond?
        "limit": q.limit + 1,
        "offset": offset,
    }
    statement = _timeline(q.event_type, with_job, keyset)
    events = [_event(r._mapping) for r in await conn.execute(statement, params)]
    beyond = len(events) > q.limit
    events = events[: q.limit]
    if keyset == "newer":  # read upwards from the cursor: the older events came before
        events.reverse()
        following = cursors.encode(events[-1].at, events[-1].id) if events else None
        newer = beyond
    else:
        following = cursors.encode(events[-1].at, events[-1].id) if beyond else None
        newer = keyset == "older" or offset > 0
    preceding = cursors.encode(events[0].at, events[0].id) if newer and events else None
    total = 0
    if q.event_type in {"all", "runs"} and counted is not None:
        total += counted.all_runs
    elif q.event_type in {"all", "runs"}:  # skipped slots included: the timeline lists them
        facts = Facts(q.user_id, q.start, q.end, job_id=q.job_id)
        total += int((await _rows(conn, facts, _ALL_RUNS_SQL))[0][0])
    if q.event_type in {"all", "sessions"} and counted is not None:
        total += sum(point.sessions for point in counted.session_totals)
    elif q.event_type in {"all", "sessions"}:
        total += int(await conn.scalar(_session_count(with_job), params) or 0)
    return Activity(events, total, following, preceding)


# -- usage ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MonthUsage:
    period_start: datetime
    endpoints: int  # live: not archived, in jobs not archived
    runs: int
    ai_tokens: int


async def usage(conn: AsyncConnection, user_id: str, now: datetime) -> MonthUsage:
    """What the user has this calendar month (UTC): live endpoints, and the month's meter:
    runs started (scheduled and test runs, including runs of endpoints deleted since) and AI
    tokens (the planner counts them as it goes, so pruned sessions still count)."""
    _, live = await _counts(conn, user_id, now)
    runs_used, tokens = await meter(conn, user_id, now)
    return MonthUsage(month_start(now), live.total, runs_used, tokens)
