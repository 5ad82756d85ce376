"""The AI planner: modes, per-endpoint analysis leases, suggestions, the token meter

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 02:00:00

`jobs.ai_mode` (off | suggest | auto, default auto) is the job's default and
`endpoints.ai_mode` (inherit | off | suggest | auto) overrides it. `endpoint_analysis` holds
the planner's bookkeeping apart from `endpoints`, so its leases never lock rows the scheduler
claims. `ai_suggestions` holds what the planner would do in suggest mode. `monthly_usage`
gains the AI token meter; `ai_sessions` records each session's outcome and confidence.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE jobs ADD COLUMN IF NOT EXISTS ai_mode TEXT DEFAULT 'auto' NOT NULL;
        ALTER TABLE jobs DROP CONSTRAINT IF EXISTS ck_jobs_ai_mode;
        ALTER TABLE jobs ADD CONSTRAINT ck_jobs_ai_mode
            CHECK (ai_mode IN ('off', 'suggest', 'auto'));
        ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS ai_mode TEXT DEFAULT 'inherit' NOT NULL;
        ALTER TABLE endpoints DROP CONSTRAINT IF EXISTS ck_endpoints_ai_mode;
        ALTER TABLE endpoints ADD CONSTRAINT ck_endpoints_ai_mode
            CHECK (ai_mode IN ('inherit', 'off', 'suggest', 'auto'));
        ALTER TABLE monthly_usage ADD COLUMN IF NOT EXISTS ai_tokens BIGINT DEFAULT 0 NOT NULL;
        ALTER TABLE ai_sessions ADD COLUMN IF NOT EXISTS outcome TEXT DEFAULT 'running' NOT NULL;
        ALTER TABLE ai_sessions ADD COLUMN IF NOT EXISTS confidence TEXT;
        CREATE INDEX IF NOT EXISTS ix_ai_sessions_analyzed_at ON ai_sessions (analyzed_at);
        """
    )
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS endpoint_analysis (
            endpoint_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            next_analysis_at TIMESTAMP WITH TIME ZONE,
            last_analyzed_at TIMESTAMP WITH TIME ZONE,
            failure_count_seen INTEGER DEFAULT 0 NOT NULL,
            last_status_seen TEXT,
            lease_owner TEXT,
            lease_until TIMESTAMP WITH TIME ZONE,
            CONSTRAINT pk_endpoint_analysis PRIMARY KEY (endpoint_id),
            CONSTRAINT fk_endpoint_analysis_endpoint_id_endpoints FOREIGN KEY (endpoint_id)
                REFERENCES endpoints (id) ON DELETE CASCADE,
            CONSTRAINT fk_endpoint_analysis_user_id_users FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE
        );
        CREATE INDEX IF NOT EXISTS ix_endpoint_analysis_next_analysis_at
            ON endpoint_analysis (next_analysis_at);
        """
    )
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS ai_suggestions (
            id TEXT NOT NULL,
            endpoint_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            session_id TEXT,
            action TEXT NOT NULL,
            args JSONB DEFAULT '{}'::jsonb NOT NULL,
            reason TEXT,
            status TEXT DEFAULT 'pending' NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
            decided_at TIMESTAMP WITH TIME ZONE,
            error TEXT,
            CONSTRAINT pk_ai_suggestions PRIMARY KEY (id),
            CONSTRAINT fk_ai_suggestions_endpoint_id_endpoints FOREIGN KEY (endpoint_id)
                REFERENCES endpoints (id) ON DELETE CASCADE,
            CONSTRAINT fk_ai_suggestions_user_id_users FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE,
            CONSTRAINT fk_ai_suggestions_session_id_ai_sessions FOREIGN KEY (session_id)
                REFERENCES ai_sessions (id) ON DELETE SET NULL,
            CONSTRAINT ck_ai_suggestions_action
                CHECK (action IN ('interval', 'oneshot', 'pause', 'resume', 'clear')),
            CONSTRAINT ck_ai_suggestions_status
                CHECK (status IN ('pending', 'applied', 'dismissed', 'superseded', 'expired'))
        );
        CREATE INDEX IF NOT EXISTS ix_ai_suggestions_endpoint_id_created_at
            ON ai_suggestions (endpoint_id, created_at);
        CREATE INDEX IF NOT EXISTS ix_ai_suggestions_user_id ON ai_suggestions (user_id);
        """
    )


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
