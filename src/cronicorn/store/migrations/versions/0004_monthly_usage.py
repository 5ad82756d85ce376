"""monthly_usage: runs per user per UTC month, the meter of the monthly run quota

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 13:00:00

Counting `runs` rows on every claim would cost a scan per batch and would shrink when
endpoints are deleted, so the scheduler and "run now" increment this counter instead. The
upgrade backfills it from the runs that exist, so usage stays right across the upgrade.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS monthly_usage (
            user_id TEXT NOT NULL,
            period_start TIMESTAMP WITH TIME ZONE NOT NULL,
            runs BIGINT DEFAULT 0 NOT NULL,
            CONSTRAINT pk_monthly_usage PRIMARY KEY (user_id, period_start),
            CONSTRAINT fk_monthly_usage_user_id_users FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        """
        INSERT INTO monthly_usage (user_id, period_start, runs)
        SELECT user_id, date_trunc('month', started_at, 'UTC'), count(*)
        FROM runs
        GROUP BY 1, 2
        ON CONFLICT (user_id, period_start) DO UPDATE SET runs = EXCLUDED.runs
        """
    )


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
