"""backups: kind (manual, scheduled, safety) and an index on created_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00

`kind` lets retention, health and the API tell a scheduled backup from an operator's manual
one and from the safety backup a restore takes first; listing newest-first and "age of the last
good backup" read `created_at`, hence the index. Idempotent: IF NOT EXISTS everywhere, so a
database that somehow has the column already still upgrades.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE backups ADD COLUMN IF NOT EXISTS kind TEXT NOT NULL DEFAULT 'manual'")
    op.execute(
        "DO $$ BEGIN "
        "IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'ck_backups_kind') THEN "
        "ALTER TABLE backups ADD CONSTRAINT ck_backups_kind "
        "CHECK (kind IN ('manual', 'scheduled', 'safety')); "
        "END IF; END $$"
    )
    op.execute("CREATE INDEX IF NOT EXISTS ix_backups_created_at ON backups (created_at)")


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
