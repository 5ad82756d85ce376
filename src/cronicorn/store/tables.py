"""The whole data model as SQLAlchemy Core tables.

Core (not the ORM) because every hot path is a hand-written statement (claims, batch run
writes, compare-and-set updates) and the repositories want to see exactly what runs.
Alembic migrations must produce exactly this metadata: `tests/store/test_migration_drift.py`
compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TIMESTAMP

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

TZ = TIMESTAMP(timezone=True)
NOW = text("now()")


def _id() -> Column[str]:
    return Column("id", Text, primary_key=True)


def _created() -> Column[object]:
    return Column("created_at", TZ, nullable=False, server_default=NOW)


def _updated() -> Column[object]:
    return Column("updated_at", TZ, nullable=False, server_default=NOW)


def _user_fk(nullable: bool = False) -> Column[str]:
    return Column("user_id", Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=nullable)


users = Table(
    "users",
    metadata,
    _id(),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("password_hash", Text),
    Column("is_admin", Boolean, nullable=False, server_default=text("false")),
    Column("github_id", Text),
    Column("disabled_at", TZ),
    _created(),
    _updated(),
    Index("ux_users_email_lower", text("lower(email)"), unique=True),
    Index("ux_users_github_id", "github_id", unique=True),
)

# Server-side login sessions (browser cookies and device-flow bearer tokens). Only a hash of
# the token is stored, so a leaked table cannot be replayed.
sessions = Table(
    "sessions",
    metadata,
    _id(),
    _user_fk(),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False, server_default="browser"),
    Column("user_agent", Text),
    Column("ip_address", Text),
    _created(),
    Column("last_seen_at", TZ),
    Column("expires_at", TZ, nullable=False),
    Column("revoked_at", TZ),
    CheckConstraint("kind IN ('browser', 'device')", name="kind"),
    Index("ix_sessions_user_id", "user_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    _id(),
    _user_fk(),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    _created(),
    Column("last_used_at", TZ),
    Column("expires_at", TZ),
    Column("revoked_at", TZ),
    Index("ix_api_keys_user_id", "user_id"),
)

# OAuth device authorization grant (RFC 8628) for the CLI and MCP clients.
device_codes = Table(
    "device_codes",
    metadata,
    _id(),
    Column("device_code_hash", Text, nullable=False, unique=True),
    Column("user_code", Text, nullable=False, unique=True),
    Column("client_id", Text, nullable=False),
    Column("scope", Text),
    Column("status", Text, nullable=False, server_default="pending"),
    _user_fk(nullable=True),
    Column("interval_s", Integer, nullable=False, server_default=text("5")),
    Column("last_polled_at", TZ),
    _created(),
    Column("expires_at", TZ, nullable=False),
    CheckConstraint("status IN ('pending', 'approved', 'denied', 'consumed')", name="status"),
)

jobs = Table(
    "jobs",
    metadata,
    _id(),
    _user_fk(),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("status", Text, nullable=False, server_default="active"),
    _created(),
    _updated(),
    Column("archived_at", TZ),
    # The AI planner's default for the job's endpoints (0006): off | suggest | auto.
    Column("ai_mode", Text, nullable=False, server_default="auto"),
    # Notification subscriptions (0009): {channels, onFailureAfter, onRecovery, ...}; NULL: none.
    Column("notify", JSONB),
    CheckConstraint("status IN ('active', 'paused', 'archived')", name="status"),
    CheckConstraint("ai_mode IN ('off', 'suggest', 'auto')", name="ai_mode"),
    Index("ix_jobs_user_id", "user_id"),
)

# The schedulable unit. Hint columns have one expiry per hint kind (the reference shared one
# TTL between both kinds, reference defect 10). `lease_owner`/`lease_until` are only set while
# a run is in flight; whether an endpoint is due is decided by `next_run_at` alone.
endpoints = Table(
    "endpoints",
    metadata,
    _id(),
    Column("job_id", Text, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    _user_fk(),
    Column("name", Text, nullable=False),
    Column("description", Text),
    # request
    Column("url", Text, nullable=False),
    Column("method", Text, nullable=False, server_default="GET"),
    Column("headers_json", JSONB),
    Column("body_json", JSONB),
    Column("timeout_ms", Integer),
    Column("max_execution_time_ms", Integer),
    Column("max_response_size_kb", Integer),
    # baseline schedule
    Column("baseline_cron", Text),
    Column("baseline_interval_ms", BigInteger),
    Column("timezone", Text, nullable=False, server_default="UTC"),
    Column("min_interval_ms", BigInteger),
    Column("max_interval_ms", BigInteger),
    # hints (user, AI planner or rules), each kind with its own expiry
    Column("hint_interval_ms", BigInteger),
    Column("hint_interval_expires_at", TZ),
    Column("hint_oneshot_at", TZ),
    Column("hint_oneshot_expires_at", TZ),
    Column("hint_reason", Text),
    Column("hint_source", Text),
    # state
    Column("paused_until", TZ),
    Column("archived_at", TZ),
    Column("next_run_at", TZ, nullable=False),
    Column("next_run_source", Text, nullable=False, server_default="baseline-interval"),
    Column("last_due_at", TZ),
    Column("last_run_at", TZ),
    Column("failure_count", Integer, nullable=False, server_default=text("0")),
    # Copy of `jobs.status = 'active'`, kept by triggers (migration 0003), so endpoints of a
    # paused or archived job drop out of the claim index instead of being skipped on every scan.
    Column("job_active", Boolean, nullable=False, server_default=text("true")),
    Column("lease_owner", Text),
    Column("lease_until", TZ),
    Column("version", BigInteger, nullable=False, server_default=text("1")),
    _created(),
    _updated(),
    # AI planner mode (0006): inherit (the job's) | off | suggest | auto.
    Column("ai_mode", Text, nullable=False, server_default="inherit"),
    # Responses decide (0007): what `domain.rules` accepted; NULL: 2xx only / no rules.
    Column("assertions", JSONB),
    Column("rules", JSONB),
    Column("retry", JSONB),  # in-run retry policy; NULL: no retries
    Column("notify", JSONB),  # 0009: overrides the job's notify settings; NULL: inherit
    # Overlap policy (0008): skip | queue_one | allow (at most max_concurrent at once);
    # `running` counts an allow endpoint's detached runs (domain/overlap.py).
    Column("overlap", Text, nullable=False, server_default="skip"),
    Column("max_concurrent", Integer),
    Column("running", Integer, nullable=False, server_default=text("0")),
    CheckConstraint("method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD')", name="method"),
    CheckConstraint("ai_mode IN ('inherit', 'off', 'suggest', 'auto')", name="ai_mode"),
    CheckConstraint(
        "(baseline_cron IS NULL) <> (baseline_interval_ms IS NULL)", name="one_baseline"
    ),
    CheckConstraint("failure_count >= 0", name="failure_count"),
    CheckConstraint("overlap IN ('skip', 'queue_one', 'allow')", name="overlap"),
    CheckConstraint("max_concurrent BETWEEN 1 AND 100", name="max_concurrent"),
    CheckConstraint("running >= 0", name="running"),
    Index("ix_endpoints_job_id", "job_id"),
    Index("ix_endpoints_user_id", "user_id"),
    # The claim query: due, not archived, job active, oldest first.
    Index(
        "ix_endpoints_due",
        "next_run_at",
        postgresql_where=text("archived_at IS NULL AND job_active"),
    ),
    # No index on the lease columns (0013): the claim's lease UPDATE stays HOT, with room left
    # on each page for it; the take-over finds lost leases another way (store/claims.py).
    postgresql_with={"fillfactor": 90},
)

runs = Table(
    "runs",
    metadata,
    _id(),
    Column("endpoint_id", Text, ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False),
    _user_fk(),
    Column("status", Text, nullable=False, server_default="running"),
    Column("source", Text, nullable=False),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    # The slot this run served (NULL for manual test runs); unique per endpoint so a due slot
    # can never be executed twice, whatever the number of workers.
    Column("due_at", TZ),
    Column("started_at", TZ, nullable=False),
    Column("finished_at", TZ),
    Column("duration_ms", Integer),
    Column("status_code", Integer),
    Column("response_body", JSONB),
    Column("response_text", Text),
    Column("response_size", Integer),
    Column("response_truncated", Boolean, nullable=False, server_default=text("false")),
    Column("error_message", Text),
    Column("worker", Text),
    Column("rules_fired", JSONB),  # 0007: [{index, name?, action, target?}] after this run
    Column("attempts", JSONB),  # 0007: each call of a retried slot; NULL: one call
    # 0008: the own lease of a detached run (overlap `allow`); NULL: the endpoint's lease
    Column("lease_owner", Text),
    Column("lease_until", TZ),
    CheckConstraint("status IN ('running', 'success', 'failed', 'skipped')", name="status"),
    # 0014: status covered, so a status-filtered history total is an index-only count
    Index(
        "ix_runs_endpoint_id_started_at",
        "endpoint_id",
        "started_at",
        postgresql_include=["status"],
    ),
    Index("ix_runs_user_id_started_at", "user_id", "started_at"),
    Index("ix_runs_started_at", "started_at"),
    Index("ix_runs_running", "started_at", postgresql_where=text("status = 'running'")),
    Index("ux_runs_endpoint_id_due_at", "endpoint_id", "due_at", unique=True),
    Index("ix_runs_lease_until", "lease_until", postgresql_where=text("lease_until IS NOT NULL")),
)

# What the dashboard's per-endpoint sums read, in the (user_id, hour|day) indexes (0011).
_COVERED = ["endpoint_id", "source", "success", "failed"]
# What reads by endpoint (per-endpoint series, endpoint health) sum, in the keys (0015).
_KEY_COVERED = ["success", "failed", "timed", "duration_ms"]

# Finished runs per endpoint, UTC hour of their start and source (0010), kept by triggers on
# `runs` (see the migration); the dashboard's statistics read it. Outlives pruned runs.
runs_hourly = Table(
    "runs_hourly",
    metadata,
    Column("endpoint_id", Text, ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True),
    Column("hour", TZ, primary_key=True),
    Column("source", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    # counts by status; `timed`: runs with a duration, `duration_ms` their sum; `scheduled`:
    # runs with a slot (not skipped), `late_ms` the sum of their lateness, `late_max_ms` its max
    *(
        Column(name, BigInteger, nullable=False, server_default=text("0"))
        for name in ("success", "failed", "skipped", "timed", "duration_ms", "scheduled")
    ),
    Column("late_ms", Double, nullable=False, server_default=text("0")),
    Column("late_max_ms", Double),
    Index("ix_runs_hourly_user_id_hour", "user_id", "hour", postgresql_include=_COVERED),
    Index("ix_runs_hourly_hour", "hour"),
    PrimaryKeyConstraint("endpoint_id", "hour", "source", postgresql_include=_KEY_COVERED),
)

# The same per UTC day (0010, column `day`): totals per endpoint and job over long ranges.
runs_daily = Table(
    "runs_daily",
    metadata,
    Column("endpoint_id", Text, ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True),
    Column("day", TZ, primary_key=True),
    Column("source", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    *(
        Column(name, BigInteger, nullable=False, server_default=text("0"))
        for name in ("success", "failed", "skipped", "timed", "duration_ms", "scheduled")
    ),
    Column("late_ms", Double, nullable=False, server_default=text("0")),
    Column("late_max_ms", Double),
    Index("ix_runs_daily_user_id_day", "user_id", "day", postgresql_include=_COVERED),
    Index("ix_runs_daily_day", "day"),
    PrimaryKeyConstraint("endpoint_id", "day", "source", postgresql_include=_KEY_COVERED),
)

# The same per user (0010), one row per writing session (`writer`: its backend pid), so
# concurrent batches of one user never wait on a shared row; readers sum over writers.
runs_hourly_users = Table(
    "runs_hourly_users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("hour", TZ, primary_key=True),
    Column("source", Text, primary_key=True),
    Column("writer", Integer, primary_key=True),
    *(
        Column(name, BigInteger, nullable=False, server_default=text("0"))
        for name in ("success", "failed", "skipped", "timed", "duration_ms", "scheduled")
    ),
    Column("late_ms", Double, nullable=False, server_default=text("0")),
    Column("late_max_ms", Double),
    Index("ix_runs_hourly_users_hour", "hour"),
)

# Finished runs' successes and failures per job and UTC hour / day (0012), one row per writing
# session, kept by triggers on `runs`: the dashboard's runs per job.
_JOB_COVERED = ["job_id", "success", "failed"]


def _job_rollup(name: str, at: str) -> Table:
    return Table(
        name,
        metadata,
        Column("job_id", Text, primary_key=True),
        Column(at, TZ, primary_key=True),
        Column("writer", Integer, primary_key=True),
        Column("user_id", Text, nullable=False),
        Column("success", BigInteger, nullable=False, server_default=text("0")),
        Column("failed", BigInteger, nullable=False, server_default=text("0")),
        Index(f"ix_{name}_user_id_{at}", "user_id", at, postgresql_include=_JOB_COVERED),
        Index(f"ix_{name}_{at}", at),
    )


runs_jobs_hourly = _job_rollup("runs_jobs_hourly", "hour")
runs_jobs_daily = _job_rollup("runs_jobs_daily", "day")

# AI sessions and their tokens per user and UTC hour of `analyzed_at` (0012), one row per
# writing session like `runs_hourly_users`, kept by triggers on `ai_sessions`.
ai_sessions_hourly = Table(
    "ai_sessions_hourly",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("hour", TZ, primary_key=True),
    Column("writer", Integer, primary_key=True),
    Column("sessions", BigInteger, nullable=False, server_default=text("0")),
    Column("tokens", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_ai_sessions_hourly_hour", "hour"),
)

# Response-rule effects on a sibling endpoint (0008), written with the run that fired them
# and applied (then deleted) by any scheduler (store/rule_writes.py).
rule_effects = Table(
    "rule_effects",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("source_id", Text, nullable=False),
    Column("target_id", Text, nullable=False),  # no FK: see migration 0008
    Column("effect", JSONB, nullable=False),
    _created(),
    Index("ix_rule_effects_target_id", "target_id"),
)

# Runs per user per calendar month (UTC), counted when a run row is created (claim or "run
# now") so a monthly quota is one indexed read, and deleting an endpoint refunds nothing.
monthly_usage = Table(
    "monthly_usage",
    metadata,
    Column("user_id", Text, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("period_start", TZ, primary_key=True),
    Column("runs", BigInteger, nullable=False, server_default=text("0")),
    # AI planner tokens (prompt + completion) this month (0006): QUOTA_AI_TOKENS_PER_MONTH.
    Column("ai_tokens", BigInteger, nullable=False, server_default=text("0")),
)

ai_sessions = Table(
    "ai_sessions",
    metadata,
    _id(),
    Column("endpoint_id", Text, ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False),
    _user_fk(),
    Column("analyzed_at", TZ, nullable=False),
    Column("model", Text),
    Column("tool_calls", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("reasoning", Text),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("token_usage", Integer),
    Column("duration_ms", Integer),
    Column("next_analysis_at", TZ),
    Column("endpoint_failure_count", Integer),
    Column("warnings", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("error", Text),
    # 0006: running | applied | suggested | no_change | failed | abandoned | quota_exceeded |
    # endpoint_gone; and the model's confidence in its submit_analysis (high|medium|low).
    Column("outcome", Text, nullable=False, server_default="running"),
    Column("confidence", Text),
    Index("ix_ai_sessions_endpoint_id_analyzed_at", "endpoint_id", "analyzed_at"),
    # 0012: a total order per user (timeline pages), tokens for index-only sums
    Index(
        "ix_ai_sessions_user_id_analyzed_at",
        "user_id",
        "analyzed_at",
        "id",
        postgresql_include=["token_usage"],
    ),
    Index("ix_ai_sessions_analyzed_at", "analyzed_at"),
)

# The planner's bookkeeping per endpoint (0006), apart from `endpoints` so that a planner
# lease never locks a row the scheduler claims. `lease_owner`/`lease_until` make any number
# of planner processes share the work (claimed with SKIP LOCKED, expiry by the database clock).
endpoint_analysis = Table(
    "endpoint_analysis",
    metadata,
    Column(
        "endpoint_id",
        Text,
        ForeignKey("endpoints.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    _user_fk(),
    Column("next_analysis_at", TZ),
    Column("last_analyzed_at", TZ),
    Column("failure_count_seen", Integer, nullable=False, server_default=text("0")),
    Column("last_status_seen", Text),
    Column("lease_owner", Text),
    Column("lease_until", TZ),
    Index("ix_endpoint_analysis_next_analysis_at", "next_analysis_at"),
)

# What the planner would do in suggest mode (0006), until a user applies or dismisses it.
ai_suggestions = Table(
    "ai_suggestions",
    metadata,
    _id(),
    Column("endpoint_id", Text, ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False),
    _user_fk(),
    Column("session_id", Text, ForeignKey("ai_sessions.id", ondelete="SET NULL")),
    Column("action", Text, nullable=False),
    Column("args", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("reason", Text),
    Column("status", Text, nullable=False, server_default="pending"),
    _created(),
    Column("expires_at", TZ, nullable=False),
    Column("decided_at", TZ),
    Column("error", Text),
    CheckConstraint("action IN ('interval', 'oneshot', 'pause', 'resume', 'clear')", name="action"),
    CheckConstraint(
        "status IN ('pending', 'applied', 'dismissed', 'superseded', 'expired')", name="status"
    ),
    Index("ix_ai_suggestions_endpoint_id_created_at", "endpoint_id", "created_at"),
    Index("ix_ai_suggestions_user_id", "user_id"),
)

# Outbound HMAC keys, encrypted at rest. After a rotation the previous key keeps signing
# until `retire_at` (grace period), so receivers can switch without dropping requests.
signing_keys = Table(
    "signing_keys",
    metadata,
    _id(),
    _user_fk(),
    Column("key_encrypted", LargeBinary, nullable=False),
    Column("key_prefix", Text, nullable=False),
    _created(),
    Column("rotated_at", TZ),
    Column("retire_at", TZ),
    Index("ix_signing_keys_user_id", "user_id"),
    Index(
        "ux_signing_keys_user_id_current",
        "user_id",
        unique=True,
        postgresql_where=text("retire_at IS NULL"),
    ),
)

settings = Table(
    "settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", JSONB, nullable=False),
    _updated(),
)

# Fixed-window request counters shared by every API process.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("bucket", Text, primary_key=True),
    Column("window_start", TZ, primary_key=True),
    Column("count", Integer, nullable=False, server_default=text("0")),
)

# What `cronicorn backup` knows about backups it made or verified.
backups = Table(
    "backups",
    metadata,
    Column("name", Text, primary_key=True),
    Column("location", Text, nullable=False),
    Column("format", Text, nullable=False),
    _created(),
    Column("size_bytes", BigInteger),
    Column("revision", Text),
    Column("verified_at", TZ),
    Column("verify_ok", Boolean),
    Column("verify_report", JSONB),
    Column("offsite_url", Text),
    # manual (an operator), scheduled (BACKUP_SCHEDULE) or safety (taken by a restore); 0002
    Column("kind", Text, nullable=False, server_default="manual"),
    CheckConstraint("kind IN ('manual', 'scheduled', 'safety')", name="kind"),
    Index("ix_backups_created_at", "created_at"),
)


# Notification channels (0009): an Apprise URL per channel, encrypted at rest (it holds
# tokens); delivery state (last success/error, rate-limit gap, the delivering scheduler's
# lease) lives beside it. See docs/notifications.md.
channels = Table(
    "channels",
    metadata,
    _id(),
    _user_fk(),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("url_encrypted", LargeBinary, nullable=False),
    Column("url_preview", Text, nullable=False),
    _created(),
    _updated(),
    Column("failing", Boolean, nullable=False, server_default=text("false")),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("last_success_at", TZ),
    Column("last_error_at", TZ),
    Column("last_error", Text),
    Column("next_send_at", TZ, nullable=False, server_default=NOW),
    Column("lease_owner", Text),
    Column("lease_until", TZ),
    Index("ix_channels_user_id", "user_id"),
    Index("ux_channels_user_id_name", "user_id", text("lower(name)"), unique=True),
)

# One row per (event, channel), written in the transaction that caused the event; any
# scheduler delivers it under the channel's lease. `dedup_key` makes an event at most one row.
notify_outbox = Table(
    "notify_outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("channel_id", Text, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    _user_fk(),
    Column("event", Text, nullable=False),
    Column("dedup_key", Text, nullable=False),
    Column("endpoint_id", Text),
    Column("job_id", Text),
    Column("run_id", Text),
    Column("payload", JSONB, nullable=False),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", TZ, nullable=False, server_default=NOW),
    Column("last_error", Text),
    _created(),
    Column("sent_at", TZ),
    CheckConstraint("state IN ('pending', 'sent', 'failed')", name="state"),
    Index("ux_notify_outbox_dedup_key", "dedup_key", unique=True),
    Index(
        "ix_notify_outbox_pending",
        "channel_id",
        "next_attempt_at",
        postgresql_where=text("state = 'pending'"),
    ),
    Index("ix_notify_outbox_endpoint_id_created_at", "endpoint_id", "created_at"),
    Index("ix_notify_outbox_created_at", "created_at"),
)

# Each send to a channel (one message, possibly grouping several events).
notify_deliveries = Table(
    "notify_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("channel_id", Text, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("at", TZ, nullable=False, server_default=NOW),
    Column("ok", Boolean, nullable=False),
    Column("events", Integer, nullable=False),
    Column("duration_ms", Integer),
    Column("error", Text),
    Index("ix_notify_deliveries_channel_id_at", "channel_id", "at"),
    Index("ix_notify_deliveries_at", "at"),
)

# Every change to audited tables, written by triggers (0009), so no code path can skip it.
# `user_id` is the owner of the changed entity (no foreign key: the log outlives users).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", TZ, nullable=False, server_default=NOW),
    Column("user_id", Text),
    Column("actor_kind", Text, nullable=False),
    Column("actor_id", Text),
    Column("actor_name", Text),
    Column("action", Text, nullable=False),
    Column("entity", Text, nullable=False),
    Column("entity_id", Text, nullable=False),
    Column("changes", JSONB, nullable=False),
    Column("request_id", Text),
    CheckConstraint("action IN ('create', 'update', 'delete')", name="action"),
    Index("ix_audit_log_user_id_id", "user_id", "id"),
    Index("ix_audit_log_entity_entity_id_id", "entity", "entity_id", "id"),
    Index("ix_audit_log_at", "at"),
)
