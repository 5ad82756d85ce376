"""Hourly (and daily) run rollups for the dashboard's statistics

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 08:00:00

`runs_hourly` holds, per endpoint, UTC hour (of `started_at`) and schedule source, how many
finished runs there were (success, failed, skipped), their durations and how late the
scheduled ones started; `runs_hourly_users` the same per user, hour and source, one row per
writing session (`writer`, its backend pid: concurrent batches of one user never wait on a
shared row, nor lock two in opposite orders; readers sum over writers). The dashboard reads
them instead of scanning every run of its range (`store/stats.py`); runs still `running`
are not in them (the dashboard counts those live, from the partial index `ix_runs_running`).
`runs_daily` holds the per-endpoint rows per UTC day, for totals per endpoint and job over
long ranges.

Two statement-level triggers with transition tables keep them exact: every statement that
inserts or updates runs adds its finished rows (and takes back the old version of rows it
rewrote) with one statement of grouped `INSERT ... ON CONFLICT DO UPDATE`s (per statement,
never per run), whoever runs it: the scheduler's batch write, skipped slots, detached runs,
take-overs, run now, psql. A claim (inserts `running` rows) or a lease heartbeat adds
nothing. Deleting runs (retention) does not touch the rollups: they outlive the raw history
(pruned after `ROLLUP_RETENTION_DAYS`, `scheduler/retention.py`), so statistics do not
change when old runs are pruned; deleting an endpoint deletes its `runs_hourly` and
`runs_daily` rows (foreign key). No foreign key to users (its key-share lock would tie the
scheduler's batch writes to a transaction holding a user's row): a deleted user's
`runs_hourly_users` rows are never read again and go with rollup retention. A restore loads
the rows as dumped (pg_dump creates triggers after the data).

The backfill groups the existing finished runs in one statement, inside the migration's
transaction (the triggers exist first, and CREATE TRIGGER holds off concurrent writers).
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MEASURES = "success, failed, skipped, timed, duration_ms, scheduled, late_ms, late_max_ms"

TABLES = """
CREATE TABLE runs_hourly (
    endpoint_id TEXT NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    source TEXT NOT NULL,
    user_id TEXT NOT NULL,
    success BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    timed BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    scheduled BIGINT NOT NULL DEFAULT 0,
    late_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    late_max_ms DOUBLE PRECISION,
    CONSTRAINT pk_runs_hourly PRIMARY KEY (endpoint_id, hour, source),
    CONSTRAINT fk_runs_hourly_endpoint_id_endpoints FOREIGN KEY (endpoint_id)
        REFERENCES endpoints (id) ON DELETE CASCADE
);
CREATE INDEX ix_runs_hourly_user_id_hour ON runs_hourly (user_id, hour);
CREATE INDEX ix_runs_hourly_hour ON runs_hourly (hour);
CREATE TABLE runs_hourly_users (
    user_id TEXT NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    source TEXT NOT NULL,
    writer INTEGER NOT NULL,
    success BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    timed BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    scheduled BIGINT NOT NULL DEFAULT 0,
    late_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    late_max_ms DOUBLE PRECISION,
    CONSTRAINT pk_runs_hourly_users PRIMARY KEY (user_id, hour, source, writer)
);
CREATE INDEX ix_runs_hourly_users_hour ON runs_hourly_users (hour);
CREATE TABLE runs_daily (
    endpoint_id TEXT NOT NULL,
    day TIMESTAMPTZ NOT NULL,
    source TEXT NOT NULL,
    user_id TEXT NOT NULL,
    success BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    timed BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    scheduled BIGINT NOT NULL DEFAULT 0,
    late_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    late_max_ms DOUBLE PRECISION,
    CONSTRAINT pk_runs_daily PRIMARY KEY (endpoint_id, day, source),
    CONSTRAINT fk_runs_daily_endpoint_id_endpoints FOREIGN KEY (endpoint_id)
        REFERENCES endpoints (id) ON DELETE CASCADE
);
CREATE INDEX ix_runs_daily_user_id_day ON runs_daily (user_id, day);
CREATE INDEX ix_runs_daily_day ON runs_daily (day);
"""


def facts(table: str, sign: int) -> str:
    """One run's contribution, `sign` 1 (added) or -1 (its old version taken back). Lateness
    as `store/lateness.py` measured it: start minus slot, early starts 0, skipped slots out."""
    late = "greatest(date_part('epoch', started_at - due_at) * 1000, 0)"
    timely = "due_at IS NOT NULL AND status <> 'skipped'"
    return f"""
    SELECT endpoint_id, date_bin('1 hour', started_at, '1970-01-01 00:00:00+00') AS hour,
           source, user_id,
           {sign} * (status = 'success')::int AS success,
           {sign} * (status = 'failed')::int AS failed,
           {sign} * (status = 'skipped')::int AS skipped,
           {sign} * (duration_ms IS NOT NULL)::int AS timed,
           {sign} * coalesce(duration_ms, 0)::bigint AS duration_ms,
           {sign} * ({timely})::int AS scheduled,
           {sign} * CASE WHEN {timely} THEN {late} ELSE 0 END AS late_ms,
           CASE WHEN {sign} > 0 AND {timely} THEN {late} END AS late_max_ms
    FROM {table} WHERE status <> 'running'"""


_SUMS = (
    "sum(success), sum(failed), sum(skipped), sum(timed), sum(duration_ms), sum(scheduled),"
    " sum(late_ms), max(late_max_ms)"
)
_ADD = """
    SET success = h.success + EXCLUDED.success,
        failed = h.failed + EXCLUDED.failed,
        skipped = h.skipped + EXCLUDED.skipped,
        timed = h.timed + EXCLUDED.timed,
        duration_ms = h.duration_ms + EXCLUDED.duration_ms,
        scheduled = h.scheduled + EXCLUDED.scheduled,
        late_ms = h.late_ms + EXCLUDED.late_ms,
        late_max_ms = greatest(h.late_max_ms, EXCLUDED.late_max_ms)"""


def upsert(rows: str, writer: str = "pg_backend_pid()") -> str:
    """Add grouped facts to their hours and days: per endpoint (rows of endpoints the writer
    holds locked, so writers never wait on each other), and per user and writer (each session
    its own rows: no waits, no lock cycles between concurrent batches of one user). Keys
    in order."""
    return f"""
    WITH f AS MATERIALIZED ({rows}),
    per_endpoint AS (
        INSERT INTO runs_hourly AS h (endpoint_id, hour, source, user_id, {MEASURES})
        SELECT endpoint_id, hour, source, min(user_id), {_SUMS}
        FROM f
        GROUP BY endpoint_id, hour, source
        ORDER BY endpoint_id, hour, source
        ON CONFLICT (endpoint_id, hour, source) DO UPDATE {_ADD}
    ),
    per_day AS (
        INSERT INTO runs_daily AS h (endpoint_id, day, source, user_id, {MEASURES})
        SELECT endpoint_id, date_bin('1 day', hour, '1970-01-01 00:00:00+00'), source,
               min(user_id), {_SUMS}
        FROM f
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        ON CONFLICT (endpoint_id, day, source) DO UPDATE {_ADD}
    )
    INSERT INTO runs_hourly_users AS h (user_id, hour, source, writer, {MEASURES})
    SELECT user_id, hour, source, {writer}, {_SUMS}
    FROM f
    GROUP BY user_id, hour, source
    ORDER BY user_id, hour, source
    ON CONFLICT (user_id, hour, source, writer) DO UPDATE {_ADD}"""


FUNCTION = f"""
CREATE FUNCTION cronicorn_runs_hourly() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- claims (running rows) and lease heartbeats: nothing to count, no upserts to plan
    IF TG_OP = 'INSERT' THEN
        IF EXISTS (SELECT FROM new_runs WHERE status <> 'running') THEN
            {upsert(facts("new_runs", 1))};
        END IF;
    ELSIF EXISTS (SELECT FROM new_runs WHERE status <> 'running')
       OR EXISTS (SELECT FROM old_runs WHERE status <> 'running') THEN
        {upsert(facts("new_runs", 1) + " UNION ALL " + facts("old_runs", -1))};
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_hourly_insert AFTER INSERT ON runs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION cronicorn_runs_hourly();
CREATE TRIGGER runs_hourly_update AFTER UPDATE ON runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION cronicorn_runs_hourly();
"""

BACKFILL = upsert(facts("runs", 1), writer="0")


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(FUNCTION)
    op.execute(BACKFILL)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
