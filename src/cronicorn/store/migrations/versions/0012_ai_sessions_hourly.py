"""Runs per job and hour/day, AI sessions per user and hour, sessions in a total order

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 14:00:00

The dashboard charts AI sessions and their tokens per bucket and counts the range's sessions
for its timeline. Both read every session of the range (19,000 rows for 30 days of 1,000
endpoints analysed every 36 hours in `bench/web.py`). `ai_sessions_hourly` holds, per user,
UTC hour of `analyzed_at` and writing session (`writer`, its backend pid, as in
`runs_hourly_users`: concurrent planners never wait on a shared row), how many sessions and
tokens there were; the dashboard reads whole hours from it and the partial hours at a range's
edges from `ai_sessions` (`store/stats.py`). A statement-level trigger keeps it exact for
every writer (the planner, the API's session rows, psql): inserted sessions are added, an
update adds the new version and takes back the old one. Deleting sessions (retention, a
deleted endpoint) does not touch it: tokens spent stay spent, as runs stay counted in
`runs_hourly_users` (pruned with the other rollups after `ROLLUP_RETENTION_DAYS`).

The dashboard's runs per job summed a range's per-endpoint rollups (`runs_daily`, and
`runs_hourly` for its partial days): 24,500 rows for 7 days of 1,000 endpoints, 60,000 for
30, most of its database time. `runs_jobs_hourly` and `runs_jobs_daily` hold, per job, UTC
hour (day) and writing session, the finished runs' successes and failures, kept by a second
pair of statement triggers on `runs` (the same rules as migration 0010's: every writer, per
statement, never per run; a writer's own rows, so concurrent batches never wait on each
other). An endpoint never changes its job, so the job is read from `endpoints` as the rows
are added. Rows of a deleted endpoint stay (the per-user totals keep them too); a deleted
job's rows are never read again and go with rollup retention.

The timeline pages a user's sessions newest first by `(analyzed_at, id)`: the
`(user_id, analyzed_at)` index now ends in `id` (sessions that share a time, a planner run
analysing many endpoints at once, were read and sorted whole before the first page: 1,001
rows for a page of 20) and carries `token_usage` (index-only sums at the edges).
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

INDEX = "ix_ai_sessions_user_id_analyzed_at"

TABLE = """
CREATE TABLE ai_sessions_hourly (
    user_id TEXT NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    writer INTEGER NOT NULL,
    sessions BIGINT NOT NULL DEFAULT 0,
    tokens BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT pk_ai_sessions_hourly PRIMARY KEY (user_id, hour, writer)
);
CREATE INDEX ix_ai_sessions_hourly_hour ON ai_sessions_hourly (hour);
"""


def job_table(name: str, at: str) -> str:
    """A per-job rollup: `runs_jobs_hourly` (at `hour`) or `runs_jobs_daily` (at `day`)."""
    return f"""
CREATE TABLE {name} (
    job_id TEXT NOT NULL,
    {at} TIMESTAMPTZ NOT NULL,
    writer INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    success BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT pk_{name} PRIMARY KEY (job_id, {at}, writer)
);
CREATE INDEX ix_{name}_user_id_{at} ON {name} (user_id, {at})
    INCLUDE (job_id, success, failed);
CREATE INDEX ix_{name}_{at} ON {name} ({at});
"""


JOB_TABLES = job_table("runs_jobs_hourly", "hour") + job_table("runs_jobs_daily", "day")


def job_facts(table: str, sign: int) -> str:
    """A finished run's success or failure, with its endpoint's job (skipped slots and
    running runs add nothing)."""
    return f"""
    SELECT e.job_id, r.user_id,
           date_bin('1 hour', r.started_at, '1970-01-01 00:00:00+00') AS hour,
           {sign} * (r.status = 'success')::int AS success,
           {sign} * (r.status = 'failed')::int AS failed
    FROM {table} r JOIN endpoints e ON e.id = r.endpoint_id
    WHERE r.status IN ('success', 'failed')"""


def job_upsert(rows: str, writer: str = "pg_backend_pid()") -> str:
    add = "SET success = h.success + EXCLUDED.success, failed = h.failed + EXCLUDED.failed"
    return f"""
    WITH f AS MATERIALIZED ({rows}),
    per_hour AS (
        INSERT INTO runs_jobs_hourly AS h (job_id, hour, writer, user_id, success, failed)
        SELECT job_id, hour, {writer}, min(user_id), sum(success), sum(failed)
        FROM f GROUP BY job_id, hour ORDER BY job_id, hour
        ON CONFLICT (job_id, hour, writer) DO UPDATE {add}
    )
    INSERT INTO runs_jobs_daily AS h (job_id, day, writer, user_id, success, failed)
    SELECT job_id, date_bin('1 day', hour, '1970-01-01 00:00:00+00'), {writer}, min(user_id),
           sum(success), sum(failed)
    FROM f GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (job_id, day, writer) DO UPDATE {add}"""


JOB_FUNCTION = f"""
CREATE FUNCTION cronicorn_runs_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF EXISTS (SELECT FROM new_runs WHERE status IN ('success', 'failed')) THEN
            {job_upsert(job_facts("new_runs", 1))};
        END IF;
    ELSIF EXISTS (SELECT FROM new_runs WHERE status IN ('success', 'failed'))
       OR EXISTS (SELECT FROM old_runs WHERE status IN ('success', 'failed')) THEN
        {job_upsert(job_facts("new_runs", 1) + " UNION ALL " + job_facts("old_runs", -1))};
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_jobs_insert AFTER INSERT ON runs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION cronicorn_runs_jobs();
CREATE TRIGGER runs_jobs_update AFTER UPDATE ON runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION cronicorn_runs_jobs();
"""


def facts(table: str, sign: int) -> str:
    return f"""
    SELECT user_id, date_bin('1 hour', analyzed_at, '1970-01-01 00:00:00+00') AS hour,
           {sign} AS sessions, {sign} * coalesce(token_usage, 0)::bigint AS tokens
    FROM {table}"""


def upsert(rows: str, writer: str = "pg_backend_pid()") -> str:
    return f"""
    INSERT INTO ai_sessions_hourly AS h (user_id, hour, writer, sessions, tokens)
    SELECT user_id, hour, {writer}, sum(sessions), sum(tokens)
    FROM ({rows}) f
    GROUP BY user_id, hour
    ORDER BY user_id, hour
    ON CONFLICT (user_id, hour, writer) DO UPDATE
    SET sessions = h.sessions + EXCLUDED.sessions, tokens = h.tokens + EXCLUDED.tokens"""


FUNCTION = f"""
CREATE FUNCTION cronicorn_ai_sessions_hourly() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {upsert(facts("new_sessions", 1))};
    ELSE
        {upsert(facts("new_sessions", 1) + " UNION ALL " + facts("old_sessions", -1))};
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ai_sessions_hourly_insert AFTER INSERT ON ai_sessions
    REFERENCING NEW TABLE AS new_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION cronicorn_ai_sessions_hourly();
CREATE TRIGGER ai_sessions_hourly_update AFTER UPDATE ON ai_sessions
    REFERENCING OLD TABLE AS old_sessions NEW TABLE AS new_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION cronicorn_ai_sessions_hourly();
"""


def upgrade() -> None:
    op.execute(f"DROP INDEX {INDEX}")
    op.execute(
        f"CREATE INDEX {INDEX} ON ai_sessions (user_id, analyzed_at, id) INCLUDE (token_usage)"
    )
    op.execute(TABLE)
    op.execute(FUNCTION)
    op.execute(upsert(facts("ai_sessions", 1), writer="0"))
    op.execute(JOB_TABLES)
    op.execute(JOB_FUNCTION)
    op.execute(job_upsert(job_facts("runs", 1), writer="0"))


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
