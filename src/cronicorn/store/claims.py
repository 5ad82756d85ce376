"""Claims and leases: how schedulers share endpoints without ever running a slot twice.

A claim is ONE statement: it picks due endpoints (`FOR UPDATE SKIP LOCKED`, so concurrent
workers never wait on each other and never pick the same row), sets a lease on them and
inserts one `running` run per claimed slot, counted on its user's monthly meter
(`monthly_usage`). The run's `due_at` is the claimed `next_run_at`,
unique per endpoint, so a slot that has a run can never be claimed into a second one, even by
a worker that lost its lease. The reference selected and locked in two autocommitted
statements, which let two workers run the same endpoint (reference defect 1).

An endpoint whose overlap policy is `allow` stays claimable while fewer than its cap of
runs are in flight (`endpoints.running`, see `detached_runs`); the unique slot per run
holds all the same.

A lease lives only while a run is in flight: it is renewed by a heartbeat, released by the
statement that writes the next `next_run_at` (see `run_writes`), and an expired one means its
worker died: `take_over_expired` closes the dead worker's run ("worker lost") and hands the
endpoint to the caller, who reschedules it. `lease_owner` holds a token per claim statement
(`lease_token`), not just the worker id, so a write retried after a lost acknowledgement never
touches a later lease of the same worker.

The run row is inserted at claim time (possibly a little before its due time, when the
scheduler claims ahead): its `started_at` is the expected start until the finish write
records the real one. A worker that dies before starting the call therefore leaves a
"worker lost" run and the slot is not retried: at most once per slot, never twice.

Time: `now`/`horizon` come from the scheduler's clock (what "due" means), lease expiry from
the database's `now()` (one clock for every worker, so skewed machines never steal leases).
The SQL is plain psycopg text: this is the hot path and it must be obvious what runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cronicorn.domain import month_start, next_month_start
from cronicorn.domain.ids import new_id
from cronicorn.domain.overlap import DEFAULT_MAX_CONCURRENT

WORKER_LOST = "worker lost"
"""Error message of a run whose worker died (its lease expired) before it finished."""

# `job_active` is `jobs.status = 'active'`, kept by triggers in the transaction that changes
# the job (migration 0003), so the claim reads `endpoints` alone: no lookup of each claimed
# row's job (a third of the pick's buffers), and no plan that joins a scan of every job,
# which grows with the installation while the due rows do not (bench/scale.py).
_CLAIMABLE = """
    e2.archived_at IS NULL
    AND e2.job_active
    AND e2.lease_until IS NULL
    AND (e2.overlap <> 'allow' OR e2.running < coalesce(e2.max_concurrent, %(default_cap)s))
    AND (e2.paused_until IS NULL OR e2.paused_until <= %(now)s)
"""

_PICK = f"""
picked AS (
    SELECT e2.id, e2.ctid, e2.user_id, e2.next_run_at
    FROM endpoints e2
    WHERE e2.next_run_at <= %(horizon)s AND {_CLAIMABLE}
    ORDER BY e2.next_run_at
    LIMIT %(limit)s
    FOR UPDATE OF e2 SKIP LOCKED
)"""

# With a monthly run quota: lock the meters of the users in the batch (waiting for a
# concurrent claim of the same user to commit, then reading its count), rank each user's
# picked slots, and defer those past the quota to the first instant of next month.
_QUOTA = """,
used AS (
    SELECT u.user_id, u.runs FROM monthly_usage u
    WHERE u.period_start = %(month)s AND u.user_id = ANY(ARRAY(SELECT user_id FROM picked))
    ORDER BY u.user_id
    FOR UPDATE OF u
), ranked AS (
    SELECT p.id, p.ctid, coalesce(u.runs, 0)
           + row_number() OVER (PARTITION BY p.user_id ORDER BY p.next_run_at, p.id) AS nth
    FROM picked p LEFT JOIN used u ON u.user_id = p.user_id
), deferred AS (
    UPDATE endpoints e
    SET next_run_at = %(next_month)s, next_run_source = 'quota'
    WHERE e.id = ANY(ARRAY(SELECT id FROM ranked WHERE nth > %(run_quota)s))
    RETURNING e.id
), allowed AS (
    SELECT ctid FROM ranked WHERE nth <= %(run_quota)s
)"""

_NO_QUOTA = """,
allowed AS (SELECT ctid FROM picked)"""

# The lease UPDATE finds its rows by `ctid`, the row versions `picked` locked (a locked row
# cannot move before this statement updates it): a TID scan instead of one descent of the
# primary key per claimed row, a level deeper at 1M endpoints than at 10k.
_START = """,
claimed AS (
    UPDATE endpoints e
    SET lease_owner = %(lease)s,
        lease_until = now() + make_interval(secs => %(lease_s)s)
    WHERE e.ctid = ANY(ARRAY(SELECT ctid FROM allowed))
    RETURNING e.id, e.user_id, e.url, e.method, e.headers_json, e.body_json, e.timeout_ms,
              e.max_response_size_kb, e.baseline_cron, e.timezone, e.next_run_at,
              e.next_run_source, e.failure_count, e.assertions::text AS assertions,
              e.retry::text AS retry, e.overlap
), numbered AS (
    SELECT c.*, row_number() OVER (ORDER BY c.next_run_at, c.id) AS ord FROM claimed c
), started AS (
    INSERT INTO runs (id, endpoint_id, user_id, status, source, attempt, due_at, started_at,
                      worker)
    SELECT u.run_id, n.id, n.user_id, 'running', n.next_run_source, n.failure_count + 1,
           n.next_run_at, greatest(n.next_run_at, %(now)s), %(worker)s
    FROM numbered n
    JOIN unnest(string_to_array(%(run_ids)s, ',')) WITH ORDINALITY AS u(run_id, ord)
      ON u.ord = n.ord
    ON CONFLICT (endpoint_id, due_at) DO NOTHING
    RETURNING id, endpoint_id, user_id, started_at
), counted AS (
    INSERT INTO monthly_usage AS m (user_id, period_start, runs)
    SELECT s.user_id, date_trunc('month', s.started_at, 'UTC') AS period, count(*)
    FROM started s GROUP BY s.user_id, period ORDER BY s.user_id, period
    ON CONFLICT (user_id, period_start) DO UPDATE SET runs = m.runs + EXCLUDED.runs
)
SELECT n.id, n.user_id, n.url, n.method, n.headers_json, n.body_json, n.timeout_ms,
       n.max_response_size_kb, n.baseline_cron, n.timezone, n.next_run_at, n.next_run_source,
       n.failure_count, n.assertions, n.retry, n.overlap, s.id AS run_id
FROM numbered n LEFT JOIN started s ON s.endpoint_id = n.id
ORDER BY n.next_run_at, n.id
"""

CLAIM_SQL = f"WITH {_PICK}{_NO_QUOTA}{_START}"
"""Claim, lease, start runs and count them on the users' monthly meters."""
CLAIM_WITH_QUOTA_SQL = f"WITH {_PICK}{_QUOTA}{_START}"
"""The same, deferring the slots of users whose monthly run quota is used up."""

_CAP = str(DEFAULT_MAX_CONCURRENT)
NEXT_DUE_SQL = f"""
SELECT e2.next_run_at
FROM endpoints e2
WHERE {_CLAIMABLE.replace("%(now)s", "e2.next_run_at").replace("%(default_cap)s", _CAP)}
ORDER BY e2.next_run_at
LIMIT 1
"""
# A paused endpoint is planned at its `paused_until` (the governor's rule), so its
# `next_run_at` is already the instant it becomes claimable; rows paused beyond their
# `next_run_at` (edited by hand) are left to the loop's periodic safety wake-up.

# Statements that lock several endpoints and may wait take the row locks in id order first
# (`_LOCK_IN_ORDER`), like `run_writes.LOCK_SQL` and a job's status trigger: two such
# statements then never wait on each other in a cycle (a deadlock PostgreSQL would break by
# aborting one of them). Claims and take-overs skip locked rows, so they never wait.
_LOCK_IN_ORDER = """locked AS (
    SELECT e2.id FROM endpoints e2
    WHERE e2.id = ANY(%(ids)s::text[])
    ORDER BY e2.id
    FOR UPDATE OF e2
)"""

RENEW_SQL = f"""
WITH {_LOCK_IN_ORDER}
UPDATE endpoints e
SET lease_until = now() + make_interval(secs => %(lease_s)s)
FROM unnest(%(ids)s::text[], %(leases)s::text[]) AS v(id, lease)
WHERE e.id = v.id AND e.lease_owner = v.lease AND e.id = ANY(ARRAY(SELECT id FROM locked))
"""

RELEASE_UNSTARTED_SQL = f"""
WITH {_LOCK_IN_ORDER}, dropped AS (
    DELETE FROM runs
    WHERE id = ANY(%(run_ids)s::text[]) AND status = 'running' AND worker = %(worker)s
    RETURNING endpoint_id, user_id, started_at
), per_meter AS (
    SELECT user_id, date_trunc('month', started_at, 'UTC') AS period, count(*) AS n
    FROM dropped GROUP BY user_id, period
), meters AS (  -- locked in (user, month) order, like the claim does: no deadlock between them
    SELECT m.user_id, m.period_start FROM monthly_usage m
    JOIN per_meter d ON m.user_id = d.user_id AND m.period_start = d.period
    ORDER BY m.user_id, m.period_start
    FOR UPDATE OF m
), refunded AS (
    UPDATE monthly_usage m
    SET runs = greatest(m.runs - d.n, 0)
    FROM per_meter d
    WHERE m.user_id = d.user_id AND m.period_start = d.period
      AND (m.user_id, m.period_start) IN (SELECT user_id, period_start FROM meters)
)
UPDATE endpoints e
SET lease_owner = NULL, lease_until = NULL
FROM unnest(%(ids)s::text[], %(leases)s::text[]) AS v(id, lease)
WHERE e.id = v.id AND e.lease_owner = v.lease AND e.id = ANY(ARRAY(SELECT id FROM locked))
"""

LIVENESS_CLASS = 0x63726F6E  # "cron": first key of every scheduler's liveness lock
"""Schedulers hold `pg_advisory_lock(LIVENESS_CLASS, key)` while alive (`scheduler.liveness`);
the two-int4 form keeps these keys apart from the single-bigint locks of migrations, imports
and backups."""

# A lease is lost when it expired (its worker hung or died without a liveness lock) or, with
# `dead_owners`, when the key in its token (`…@key`, see `lease_token`) is no scheduler's held
# liveness lock: its worker's session is gone. `pg_locks` is read once per statement.
#
# No index holds the lease columns (migration 0013): the lease UPDATE of every claim then
# touches no indexed column and can be HOT (no new entry in any index of `endpoints`). So
# the take-over looks for lost leases where they can be, each through an index and bounded
# by `scan` rows:
# - runs in flight (`ix_runs_running`, oldest first): every claimed slot that started a run,
#   but the caller's own (the worker named in its new `lease`, see `lease_token`: it is
#   alive, and its leases are its to renew; the due front and the walk still see them);
# - the front of the due index (`ix_endpoints_due`, oldest first): a leased endpoint keeps
#   the `next_run_at` it was claimed at, at most `claim_ahead` after the claim, and a lease
#   expires at least `lease_s` after it was taken, so an expired lease with no run in flight
#   (the worker died after claiming a slot that already had a run, or after a take-over,
#   before it rescheduled) sits among the rows due by `now - lease_s` (plus the claim-ahead
#   margin): a few rows, not the backlog of a scheduler running late;
# - `swept`: the leased ids of the last `sweep_leases` chunk, the walk over every endpoint
#   in primary-key order that finds what neither index can (a leased endpoint outside the
#   due index: archived, or its job paused, and one whose `next_run_at` was moved far ahead).
# `candidates` reads plainly; `lost` then locks, skipping rows another statement holds (no
# waiting, so no lock-order cycle), and its conditions are re-checked on the newest version of
# a row updated meanwhile: the owner must still be the one judged dead, or the lease still
# expired. A lease renewed, released, or re-claimed by a live worker after the read is not
# taken.
TAKE_OVER_SQL = """
WITH live AS (
    SELECT l.objid::bigint AS key
    FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid = %(liveness_class)s::bigint::oid
      AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
), in_flight AS (
    SELECT r.endpoint_id AS id FROM runs r
    WHERE r.status = 'running' AND r.lease_owner IS NULL  -- detached runs: their own leases
      AND r.worker IS DISTINCT FROM split_part(%(lease)s, '#', 1)
    ORDER BY r.started_at
    LIMIT %(scan)s
), due_front AS (
    SELECT e2.id FROM endpoints e2
    WHERE e2.next_run_at <= %(now)s::timestamptz - make_interval(secs => %(lease_s)s)
      AND e2.archived_at IS NULL AND e2.job_active
    ORDER BY e2.next_run_at
    LIMIT %(scan)s
), seen AS (
    SELECT id FROM in_flight
    UNION SELECT id FROM due_front
    UNION SELECT unnest(%(swept)s::text[])
), candidates AS (
    SELECT e2.id, e2.lease_owner, o.gone
    FROM endpoints e2,
         LATERAL (SELECT substring(e2.lease_owner FROM '@([0-9]{1,10})$')::bigint AS key) k,
         LATERAL (
             SELECT %(dead_owners)s AND k.key IS NOT NULL AND k.key NOT IN (SELECT key FROM live)
                 AS gone
         ) o
    WHERE e2.id = ANY(ARRAY(SELECT id FROM seen))
      AND e2.lease_until IS NOT NULL AND (e2.lease_until < now() OR o.gone)
    ORDER BY e2.lease_until
    LIMIT %(limit)s
), lost AS (
    SELECT e2.id, e2.lease_owner, c.gone
    FROM endpoints e2
    JOIN candidates c ON c.id = e2.id AND c.lease_owner = e2.lease_owner
    WHERE e2.id = ANY(ARRAY(SELECT id FROM candidates))
      AND (c.gone OR e2.lease_until < now())
    FOR UPDATE OF e2 SKIP LOCKED
), taken AS (
    UPDATE endpoints e
    SET lease_owner = %(lease)s,
        lease_until = now() + make_interval(secs => %(lease_s)s)
    WHERE e.id = ANY(ARRAY(SELECT id FROM lost))
    RETURNING e.id
), closed AS (
    UPDATE runs r
    SET status = 'failed', finished_at = %(now)s, error_message = %(error)s
    WHERE r.endpoint_id = ANY(ARRAY(SELECT id FROM lost)) AND r.status = 'running'
      AND r.lease_owner IS NULL  -- detached runs hold leases of their own (detached_runs)
    RETURNING r.id, r.endpoint_id, r.due_at, r.started_at, r.attempt
)
SELECT t.id AS endpoint_id, l.lease_owner AS dead_lease, l.gone AS owner_gone,
       c.id AS run_id, c.due_at, c.started_at
FROM taken t
JOIN lost l ON l.id = t.id
LEFT JOIN closed c ON c.endpoint_id = t.id
ORDER BY t.id, c.due_at
"""


TAKE_OVER_SCAN = 1000
"""Rows each index source of `TAKE_OVER_SQL` reads at most (oldest first)."""

# One chunk of the walk over every endpoint in primary-key order (`after`: the last id of the
# previous chunk, '' to start over): the chunk's leased ids, for `take_over`'s `swept`. An
# index range scan of `chunk` rows, never the table: at one chunk of 2,000 a second a million
# endpoints are walked in ~8 minutes.
SWEEP_SQL = """
SELECT max(s.id) AS last, count(*) AS n,
       coalesce(array_agg(s.id) FILTER (WHERE s.lease_until IS NOT NULL), '{}') AS leased
FROM (
    SELECT e2.id, e2.lease_until FROM endpoints e2
    WHERE e2.id > %(after)s
    ORDER BY e2.id
    LIMIT %(chunk)s
) s
"""


def lease_token(worker: str, sequence: int, key: int | None = None) -> str:
    """The `lease_owner` of one claim statement: the worker id, a per-claim number and the
    key of the worker's liveness lock (`worker#sequence@key`).

    Unique per claim, so a write retried after a lost acknowledgement can never touch a
    later lease of the same worker on the same endpoint. Peers read the key to see whether
    the owner is alive; a token without one (older versions) is only taken over once its
    lease expires.
    """
    token = f"{worker}#{sequence}"
    return token if key is None else f"{token}@{key}"


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed slot: what to call, and the run row that records it.

    `run_id` is None when the slot already had a run (it must not run again); the caller
    then only reschedules the endpoint.
    """

    endpoint_id: str
    lease: str
    user_id: str
    run_id: str | None
    due_at: datetime
    source: str
    attempt: int
    url: str
    method: str
    headers: dict[str, Any] | None
    body: Any
    timeout_ms: int | None
    max_response_size_kb: int | None
    baseline_cron: str | None
    timezone: str
    assertions: str | None = None  # the endpoint's assertions (jsonb text); None: 2xx only
    retry: str | None = None  # the endpoint's retry policy (jsonb text); None: no retries
    overlap: str = "skip"  # the endpoint's overlap policy (domain.overlap)


@dataclass(frozen=True, slots=True)
class LostRun:
    """An endpoint taken over from a dead worker; `run_id` is its closed run, if any.
    `owner_gone`: taken because its owner's liveness lock was free (else: lease expired)."""

    endpoint_id: str
    lease: str
    dead_lease: str | None
    run_id: str | None
    due_at: datetime | None
    started_at: datetime | None
    owner_gone: bool = False


def claim_params(
    *,
    worker: str,
    lease: str,
    now: datetime,
    horizon: datetime,
    limit: int,
    lease_s: float,
    runs_per_month: int = 0,
) -> dict[str, Any]:
    """The parameters of `CLAIM_SQL` / `CLAIM_WITH_QUOTA_SQL`."""
    return {
        "worker": worker,
        "lease": lease,
        "now": now,
        "horizon": horizon,
        "limit": limit,
        "lease_s": lease_s,
        "run_ids": ",".join(new_id() for _ in range(limit)),
        "month": month_start(now),
        "next_month": next_month_start(now),
        "run_quota": runs_per_month,
        "default_cap": DEFAULT_MAX_CONCURRENT,
    }


OPEN_METERS_SQL = """
INSERT INTO monthly_usage (user_id, period_start, runs)
SELECT DISTINCT e.user_id, %(month)s::timestamptz, 0
FROM endpoints e
WHERE e.archived_at IS NULL
ON CONFLICT (user_id, period_start) DO NOTHING
"""


async def open_meters(conn: AsyncConnection[Any], now: datetime) -> None:
    """Create this month's (empty) meter of every user with a live endpoint. Under a run
    quota the claim locks the meters of the users it claims for; a meter that does not exist
    yet cannot be locked, so two schedulers' first claims of a month could each count a user
    from zero. The scheduler opens the month's meters before its first claim in it (and an
    endpoint create opens its user's), so there is always a row to lock."""
    await conn.execute(OPEN_METERS_SQL, {"month": month_start(now)})


async def claim_due(
    conn: AsyncConnection[Any],
    *,
    worker: str,
    lease: str,
    now: datetime,
    horizon: datetime,
    limit: int,
    lease_s: float,
    runs_per_month: int = 0,
) -> list[Claimed]:
    """Claim up to `limit` endpoints due by `horizon`, oldest first, and start their runs.

    With `runs_per_month` > 0, slots of users who used up their monthly runs are not claimed
    but moved to the first instant of next month (UTC), labelled `quota`.
    """
    params = claim_params(
        worker=worker,
        lease=lease,
        now=now,
        horizon=horizon,
        limit=limit,
        lease_s=lease_s,
        runs_per_month=runs_per_month,
    )
    sql = CLAIM_WITH_QUOTA_SQL if runs_per_month > 0 else CLAIM_SQL
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    return [_claimed(row, lease) for row in rows]


def _claimed(row: dict[str, Any], lease: str) -> Claimed:
    return Claimed(
        endpoint_id=row["id"],
        lease=lease,
        user_id=row["user_id"],
        run_id=row["run_id"],
        due_at=row["next_run_at"],
        source=row["next_run_source"],
        attempt=row["failure_count"] + 1,
        url=row["url"],
        method=row["method"],
        headers=row["headers_json"],
        body=row["body_json"],
        timeout_ms=row["timeout_ms"],
        max_response_size_kb=row["max_response_size_kb"],
        baseline_cron=row["baseline_cron"],
        timezone=row["timezone"],
        assertions=row.get("assertions"),
        retry=row.get("retry"),
        overlap=row.get("overlap") or "skip",
    )


async def next_due_at(conn: AsyncConnection[Any]) -> datetime | None:
    """The earliest `next_run_at` a claim could pick up (None: nothing is scheduled)."""
    cur = await conn.execute(NEXT_DUE_SQL)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def renew_leases(
    conn: AsyncConnection[Any], leases: Sequence[tuple[str, str]], *, lease_s: float
) -> int:
    """Heartbeat: push out the leases still held, given as (endpoint id, lease) pairs."""
    if not leases:
        return 0
    cur = await conn.execute(
        RENEW_SQL,
        {"ids": [i for i, _ in leases], "leases": [t for _, t in leases], "lease_s": lease_s},
    )
    return cur.rowcount


async def release_unstarted(
    conn: AsyncConnection[Any], *, worker: str, claims: Sequence[Claimed]
) -> int:
    """Give back claimed slots that never started (shutdown): their run rows go (and off the
    monthly meter), their leases are cleared and `next_run_at` is untouched, so another
    worker runs the slot."""
    if not claims:
        return 0
    cur = await conn.execute(
        RELEASE_UNSTARTED_SQL,
        {
            "worker": worker,
            "ids": [c.endpoint_id for c in claims],
            "leases": [c.lease for c in claims],
            "run_ids": [c.run_id for c in claims if c.run_id is not None],
        },
    )
    return cur.rowcount


async def take_over(
    conn: AsyncConnection[Any],
    *,
    lease: str,
    now: datetime,
    lease_s: float,
    dead_owners: bool,
    limit: int = 500,
    swept: Sequence[str] = (),
    scan: int = TAKE_OVER_SCAN,
) -> list[LostRun]:
    """Take over endpoints whose worker is gone: lease expired or, with `dead_owners`, owner's
    liveness lock free. Close their running run as failed ("worker lost") and lease the
    endpoint under `lease`; the caller must then reschedule it (and release the lease) like
    after any other run. Looks at runs in flight, the due front and the `swept` ids (see
    `TAKE_OVER_SQL`)."""
    params = {
        "lease": lease,
        "now": now,
        "lease_s": lease_s,
        "limit": limit,
        "scan": scan,
        "swept": list(swept),
        "error": WORKER_LOST,
        "dead_owners": dead_owners,
        "liveness_class": LIVENESS_CLASS,
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(TAKE_OVER_SQL, params)
        rows = await cur.fetchall()
    latest: dict[str, LostRun] = {}
    for row in rows:  # ordered by due_at: the last run of an endpoint wins
        latest[row["endpoint_id"]] = LostRun(
            endpoint_id=row["endpoint_id"],
            lease=lease,
            dead_lease=row["dead_lease"],
            run_id=row["run_id"],
            due_at=row["due_at"],
            started_at=row["started_at"],
            owner_gone=row["owner_gone"],
        )
    return list(latest.values())


async def sweep_leases(
    conn: AsyncConnection[Any], *, after: str, chunk: int
) -> tuple[str, list[str]]:
    """The next chunk of the walk over every endpoint (see `SWEEP_SQL`): where the following
    one starts ('' once the walk reached the end) and the chunk's leased endpoint ids."""
    cur = await conn.execute(SWEEP_SQL, {"after": after, "chunk": chunk})
    row = await cur.fetchone()
    if row is None or not row[1]:
        return "", []
    last, n, leased = row
    return (last if n >= chunk else ""), list(leased)
