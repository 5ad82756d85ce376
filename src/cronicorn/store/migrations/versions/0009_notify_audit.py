"""Notifications (channels, outbox, deliveries, notify settings) and the audit log

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 06:00:00

`channels` hold Apprise URLs (encrypted at rest) with their delivery state; `jobs.notify`
and `endpoints.notify` say who hears about what; `notify_outbox` holds one row per (event,
channel), written in the transaction that caused the event (runs: the scheduler's batch
write; pauses by the planner or a rule and a reached run quota: the triggers below);
`notify_deliveries` records each send.

`audit_log` is written by triggers on every audited table, so a change made through the API,
the CLI, an import or psql is recorded alike. The actor comes from the transaction setting
`cronicorn.actor` (JSON, set by the API and the CLI), else from the connection's
`application_name` (planner, scheduler); `cronicorn.request_id` names the request. Each
UPDATE trigger has a WHEN clause over the audited columns only, so the scheduler's hot-path
writes (next run, lease, failure count) never run it. See docs/audit.md.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# entity name, key column, audited columns, secret columns (shown as "[redacted]")
AUDITED: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "users": (
        "user",
        "id",
        ("email", "name", "password_hash", "is_admin", "github_id", "disabled_at"),
        ("password_hash",),
    ),
    "api_keys": (
        "api_key",
        "id",
        ("name", "prefix", "key_hash", "expires_at", "revoked_at"),
        ("key_hash",),
    ),
    "signing_keys": (
        "signing_key",
        "id",
        ("key_encrypted", "key_prefix", "rotated_at", "retire_at"),
        ("key_encrypted",),
    ),
    "jobs": (
        "job",
        "id",
        ("name", "description", "status", "archived_at", "ai_mode", "notify"),
        (),
    ),
    "endpoints": (
        "endpoint",
        "id",
        (
            "job_id",
            "name",
            "description",
            "url",
            "method",
            "headers_json",
            "body_json",
            "timeout_ms",
            "max_execution_time_ms",
            "max_response_size_kb",
            "baseline_cron",
            "baseline_interval_ms",
            "timezone",
            "min_interval_ms",
            "max_interval_ms",
            "hint_interval_ms",
            "hint_interval_expires_at",
            "hint_oneshot_at",
            "hint_oneshot_expires_at",
            "hint_reason",
            "hint_source",
            "paused_until",
            "archived_at",
            "ai_mode",
            "assertions",
            "rules",
            "retry",
            "overlap",
            "max_concurrent",
            "notify",
        ),
        ("headers_json",),
    ),
    "channels": (
        "channel",
        "id",
        ("name", "kind", "url_encrypted", "url_preview"),
        ("url_encrypted",),
    ),
    "backups": (
        "backup",
        "name",
        (
            "location",
            "format",
            "size_bytes",
            "revision",
            "verified_at",
            "verify_ok",
            "offsite_url",
            "kind",
        ),
        (),
    ),
}

TABLES = """
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS notify JSONB;
ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS notify JSONB;

CREATE TABLE channels (
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url_encrypted BYTEA NOT NULL,
    url_preview TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    failing BOOLEAN NOT NULL DEFAULT false,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_success_at TIMESTAMPTZ,
    last_error_at TIMESTAMPTZ,
    last_error TEXT,
    next_send_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    CONSTRAINT pk_channels PRIMARY KEY (id),
    CONSTRAINT fk_channels_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX ix_channels_user_id ON channels (user_id);
CREATE UNIQUE INDEX ux_channels_user_id_name ON channels (user_id, lower(name));

CREATE TABLE notify_outbox (
    id BIGSERIAL NOT NULL,
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    endpoint_id TEXT,
    job_id TEXT,
    run_id TEXT,
    payload JSONB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ,
    CONSTRAINT pk_notify_outbox PRIMARY KEY (id),
    CONSTRAINT fk_notify_outbox_channel_id_channels FOREIGN KEY (channel_id)
        REFERENCES channels (id) ON DELETE CASCADE,
    CONSTRAINT fk_notify_outbox_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT ck_notify_outbox_state CHECK (state IN ('pending', 'sent', 'failed'))
);
CREATE UNIQUE INDEX ux_notify_outbox_dedup_key ON notify_outbox (dedup_key);
CREATE INDEX ix_notify_outbox_pending ON notify_outbox (channel_id, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX ix_notify_outbox_endpoint_id_created_at ON notify_outbox (endpoint_id, created_at);
CREATE INDEX ix_notify_outbox_created_at ON notify_outbox (created_at);

CREATE TABLE notify_deliveries (
    id BIGSERIAL NOT NULL,
    channel_id TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ok BOOLEAN NOT NULL,
    events INTEGER NOT NULL,
    duration_ms INTEGER,
    error TEXT,
    CONSTRAINT pk_notify_deliveries PRIMARY KEY (id),
    CONSTRAINT fk_notify_deliveries_channel_id_channels FOREIGN KEY (channel_id)
        REFERENCES channels (id) ON DELETE CASCADE
);
CREATE INDEX ix_notify_deliveries_channel_id_at ON notify_deliveries (channel_id, at);
CREATE INDEX ix_notify_deliveries_at ON notify_deliveries (at);

CREATE TABLE audit_log (
    id BIGSERIAL NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    user_id TEXT,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    actor_name TEXT,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    changes JSONB NOT NULL,
    request_id TEXT,
    CONSTRAINT pk_audit_log PRIMARY KEY (id),
    CONSTRAINT ck_audit_log_action CHECK (action IN ('create', 'update', 'delete'))
);
CREATE INDEX ix_audit_log_user_id_id ON audit_log (user_id, id);
CREATE INDEX ix_audit_log_entity_entity_id_id ON audit_log (entity, entity_id, id);
CREATE INDEX ix_audit_log_at ON audit_log (at);
"""

FUNCTIONS = r"""
-- Who is changing things: the transaction's `cronicorn.actor` (JSON, set by the API and the
-- CLI), else the role behind the connection (application_name `cronicorn-<role>@host:pid`).
CREATE FUNCTION cronicorn_actor() RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    given text := current_setting('cronicorn.actor', true);
    app text := coalesce(current_setting('application_name', true), '');
BEGIN
    IF given IS NOT NULL AND given <> '' THEN
        RETURN given::jsonb;
    END IF;
    IF app LIKE 'cronicorn-planner%' THEN
        RETURN '{"kind": "planner"}'::jsonb;
    END IF;
    IF app LIKE 'cronicorn-scheduler%' THEN
        RETURN '{"kind": "system", "name": "scheduler"}'::jsonb;
    END IF;
    RETURN jsonb_build_object('kind', 'system', 'name', nullif(split_part(app, '@', 1), ''));
END $$;

-- TG_ARGV: entity, key column, audited columns, secret columns (comma-separated).
CREATE FUNCTION cronicorn_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cols text[] := string_to_array(TG_ARGV[2], ',');
    secret text[] := string_to_array(TG_ARGV[3], ',');
    old_row jsonb;
    new_row jsonb;
    cur jsonb;
    changes jsonb := '{}'::jsonb;
    actor jsonb := cronicorn_actor();
    col text;
    before jsonb;
    after jsonb;
    only_cleared_hints boolean := true;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
    cur := coalesce(new_row, old_row);
    FOREACH col IN ARRAY cols LOOP
        before := nullif(old_row -> col, 'null'::jsonb);
        after := nullif(new_row -> col, 'null'::jsonb);
        CONTINUE WHEN before IS NOT DISTINCT FROM after;
        IF col = ANY(secret) THEN
            before := CASE WHEN before IS NULL THEN NULL ELSE '"[redacted]"'::jsonb END;
            after := CASE WHEN after IS NULL THEN NULL ELSE '"[redacted]"'::jsonb END;
        END IF;
        changes := changes || jsonb_build_object(
            col, jsonb_build_object('from', before, 'to', after));
        IF NOT (col LIKE 'hint%' AND after IS NULL) THEN
            only_cleared_hints := false;
        END IF;
    END LOOP;
    IF changes = '{}'::jsonb THEN
        RETURN NULL;
    END IF;
    IF actor ->> 'kind' = 'system' AND actor ->> 'name' = 'scheduler' THEN
        IF TG_OP = 'UPDATE' AND only_cleared_hints THEN
            RETURN NULL;  -- hints the governor consumed or found expired: nobody's change
        END IF;
        IF TG_ARGV[0] = 'endpoint' AND (new_row ->> 'hint_source' = 'rule'
                                        OR changes ? 'paused_until') THEN
            actor := '{"kind": "rule"}'::jsonb;
        END IF;
    END IF;
    IF actor ->> 'kind' = 'system' AND changes -> 'hint_source' ->> 'to' = 'ai' THEN
        actor := '{"kind": "planner"}'::jsonb;
    END IF;
    INSERT INTO audit_log (user_id, actor_kind, actor_id, actor_name, action, entity,
                           entity_id, changes, request_id)
    VALUES (
        CASE WHEN TG_ARGV[0] = 'user' THEN cur ->> 'id' ELSE cur ->> 'user_id' END,
        coalesce(actor ->> 'kind', 'system'),
        actor ->> 'id',
        actor ->> 'name',
        CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END,
        TG_ARGV[0],
        cur ->> TG_ARGV[1],
        changes,
        nullif(current_setting('cronicorn.request_id', true), ''));
    RETURN NULL;
END $$;

-- One outbox row per subscribed channel of the endpoint (its own settings, else its job's).
CREATE FUNCTION cronicorn_notify_enqueue(
    ep_id text, event text, dedup text, extra jsonb
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO notify_outbox (channel_id, user_id, event, dedup_key, endpoint_id, job_id,
                               payload)
    SELECT c.id, e.user_id, event, dedup || ':' || c.id, e.id, e.job_id,
           jsonb_build_object('event', event, 'endpointId', e.id, 'endpointName', e.name,
                              'jobId', j.id, 'jobName', j.name, 'at', now()) || extra
    FROM endpoints e
    JOIN jobs j ON j.id = e.job_id
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(coalesce(e.notify, j.notify) -> 'channels') = 'array'
             THEN coalesce(e.notify, j.notify) -> 'channels' ELSE '[]'::jsonb END
    ) AS s(value)
    JOIN channels c ON c.id = s.value #>> '{}' AND c.user_id = e.user_id
    WHERE e.id = ep_id AND coalesce(e.notify, j.notify) IS NOT NULL
    ON CONFLICT (dedup_key) DO NOTHING;
$$;

-- Paused or resumed by the planner or a response rule (users know what they did).
CREATE FUNCTION cronicorn_notify_pause() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor jsonb := cronicorn_actor();
    kind text := actor ->> 'kind';
BEGIN
    IF kind = 'system' AND actor ->> 'name' = 'scheduler' THEN
        kind := 'rule';
    END IF;
    IF kind NOT IN ('planner', 'rule') THEN
        RETURN NULL;
    END IF;
    PERFORM cronicorn_notify_enqueue(
        NEW.id,
        CASE WHEN NEW.paused_until IS NULL THEN 'resumed' ELSE 'paused' END,
        'pause:' || NEW.id || ':' || coalesce(NEW.paused_until::text, 'none') || ':'
            || txid_current()::text,
        jsonb_build_object('by', kind, 'pausedUntil', NEW.paused_until));
    RETURN NULL;
EXCEPTION WHEN others THEN  -- a notification never blocks the pause that caused it
    RAISE WARNING 'cronicorn: pause notification not enqueued: %', SQLERRM;
    RETURN NULL;
END $$;

-- A slot moved past this month's run quota (the claim labels it `quota`): once per month.
CREATE FUNCTION cronicorn_notify_quota() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cronicorn_notify_enqueue(
        NEW.id, 'quota',
        'quota:' || NEW.user_id || ':' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'),
        jsonb_build_object('nextRunAt', NEW.next_run_at));
    RETURN NULL;
EXCEPTION WHEN others THEN  -- a notification never blocks the claim that deferred the slot
    RAISE WARNING 'cronicorn: quota notification not enqueued: %', SQLERRM;
    RETURN NULL;
END $$;

-- Run events of one scheduler batch (called by store/outbox.enqueue_run_events inside the
-- batch transaction). PL/pgSQL caches the plan of its statements per session, so the
-- scheduler pays for planning once, and a batch without subscribed endpoints stops after
-- one indexed probe.
CREATE FUNCTION cronicorn_enqueue_run_events(p_facts jsonb, p_now timestamptz)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM endpoints e JOIN jobs j ON j.id = e.job_id
        WHERE e.id = ANY(ARRAY(SELECT jsonb_array_elements(p_facts) ->> 'endpoint_id'))
          AND coalesce(e.notify, j.notify) IS NOT NULL
    ) THEN
        RETURN;
    END IF;
    WITH f AS (
        SELECT * FROM jsonb_to_recordset(p_facts) AS f(
            endpoint_id text, run_id text, status text, before int, after int, duration_ms int,
            status_code int, error text, finished_at timestamptz)
    ), s AS (
        SELECT f.*, e.user_id, e.job_id, e.name AS endpoint_name, j.name AS job_name,
               coalesce(e.notify, j.notify) AS n
        FROM f
        JOIN endpoints e ON e.id = f.endpoint_id
        JOIN jobs j ON j.id = e.job_id
        WHERE e.id = ANY(ARRAY(SELECT endpoint_id FROM f))
          AND coalesce(e.notify, j.notify) IS NOT NULL
    ), p AS (
        -- Settings are read defensively (the API validates them, a hand-made row may not):
        -- a wrong type means the default, never an error that would abort the batch.
        SELECT s.*,
               CASE WHEN jsonb_typeof(s.n -> 'onFailureAfter') = 'number'
                    THEN least(greatest((s.n ->> 'onFailureAfter')::numeric, 1), 1000000)::int
                    ELSE 1 END AS threshold,
               CASE WHEN jsonb_typeof(s.n -> 'onRecovery') = 'boolean'
                    THEN (s.n ->> 'onRecovery')::boolean ELSE true END AS on_recovery,
               CASE WHEN jsonb_typeof(s.n -> 'reminderHours') = 'number'
                    THEN least(greatest((s.n ->> 'reminderHours')::numeric, 0), 100000)::float8
                    ELSE 0 END AS reminder_h,
               CASE WHEN jsonb_typeof(s.n -> 'slowerThanMs') = 'number'
                    THEN least(greatest((s.n ->> 'slowerThanMs')::numeric, 0), 1e15)::bigint
                    END AS slow_ms,
               CASE WHEN jsonb_typeof(s.n -> 'channels') = 'array'
                    THEN s.n -> 'channels' ELSE '[]'::jsonb END AS channel_ids
        FROM s
    ), ev AS (
        SELECT p.*, x.event, x.dedup
        FROM p
        CROSS JOIN LATERAL (VALUES
            (CASE WHEN p.status = 'failed' AND p.before < p.threshold
                       AND p.after >= p.threshold THEN 'failure' END,
             'failure:' || p.endpoint_id || ':' || coalesce(p.run_id, p.after::text)),
            (CASE WHEN p.status = 'success' AND p.before >= p.threshold AND p.on_recovery
                  THEN 'recovery' END,
             'recovery:' || p.endpoint_id || ':' || coalesce(p.run_id, '')),
            (CASE WHEN p.status = 'failed' AND p.before >= p.threshold AND p.reminder_h > 0
                       AND NOT EXISTS (
                           SELECT 1 FROM notify_outbox o
                           WHERE o.endpoint_id = p.endpoint_id
                             AND o.event IN ('failure', 'reminder')
                             AND o.created_at > p_now
                                 - make_interval(secs => p.reminder_h * 3600))
                  THEN 'reminder' END,
             'reminder:' || p.endpoint_id || ':' || coalesce(p.run_id, p.after::text)),
            (CASE WHEN p.slow_ms IS NOT NULL AND p.duration_ms > p.slow_ms THEN 'slow' END,
             'slow:' || p.endpoint_id || ':'
                 || floor(extract(epoch FROM p.finished_at) / 3600)::bigint::text)
        ) AS x(event, dedup)
        WHERE x.event IS NOT NULL
    )
    INSERT INTO notify_outbox (channel_id, user_id, event, dedup_key, endpoint_id, job_id, run_id,
                               payload, created_at, next_attempt_at)
    SELECT c.id, ev.user_id, ev.event, ev.dedup || ':' || c.id, ev.endpoint_id, ev.job_id,
           ev.run_id,
           jsonb_strip_nulls(jsonb_build_object(
               'event', ev.event, 'endpointId', ev.endpoint_id, 'endpointName', ev.endpoint_name,
               'jobId', ev.job_id, 'jobName', ev.job_name, 'runId', ev.run_id,
               'status', ev.status, 'error', ev.error, 'statusCode', ev.status_code,
               'durationMs', ev.duration_ms, 'slowerThanMs', ev.slow_ms,
               'failures', greatest(ev.before, ev.after), 'at', ev.finished_at,
               'since', CASE WHEN ev.event <> 'slow' THEN (
                   SELECT min(r.started_at) FROM (
                       SELECT r.started_at FROM runs r
                       WHERE r.endpoint_id = ev.endpoint_id AND r.status = 'failed'
                       ORDER BY r.started_at DESC
                       LIMIT greatest(ev.before, ev.after, 1)) r) END)),
           p_now, p_now
    FROM ev
    CROSS JOIN LATERAL jsonb_array_elements(ev.channel_ids) AS ch(value)
    JOIN channels c ON c.id = ch.value #>> '{}' AND c.user_id = ev.user_id
    ON CONFLICT (dedup_key) DO NOTHING;
END $fn$;

CREATE TRIGGER endpoints_notify_pause
    AFTER UPDATE OF paused_until ON endpoints
    FOR EACH ROW WHEN (OLD.paused_until IS DISTINCT FROM NEW.paused_until)
    EXECUTE FUNCTION cronicorn_notify_pause();
CREATE TRIGGER endpoints_notify_quota
    AFTER UPDATE OF next_run_source ON endpoints
    FOR EACH ROW WHEN (NEW.next_run_source = 'quota'
                       AND OLD.next_run_source IS DISTINCT FROM 'quota')
    EXECUTE FUNCTION cronicorn_notify_quota();
"""


def audit_triggers() -> str:
    """One INSERT/DELETE trigger and one UPDATE trigger (WHEN an audited column changed) per
    audited table."""
    parts = []
    for table, (entity, key, cols, secret) in AUDITED.items():
        args = f"'{entity}', '{key}', '{','.join(cols)}', '{','.join(secret)}'"
        old = ", ".join(f"OLD.{c}" for c in cols)
        new = ", ".join(f"NEW.{c}" for c in cols)
        parts.append(
            f"""
            CREATE TRIGGER {table}_audit_write
                AFTER INSERT OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION cronicorn_audit({args});
            CREATE TRIGGER {table}_audit_update
                AFTER UPDATE ON {table}
                FOR EACH ROW WHEN (({old}) IS DISTINCT FROM ({new}))
                EXECUTE FUNCTION cronicorn_audit({args});
            """
        )
    return "\n".join(parts)


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(FUNCTIONS)
    op.execute(audit_triggers())


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
