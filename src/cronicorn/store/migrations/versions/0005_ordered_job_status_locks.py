"""A job's status change locks its endpoints in id order

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 14:30:00

The trigger of migration 0003 updated a job's endpoints in whatever order the scan met them,
while a scheduler finishing a batch locks the same rows in id order (`run_writes.LOCK_SQL`):
pausing a job while its endpoints were being written could deadlock, and PostgreSQL then
aborted one of the two (a failed API request or a lost batch write). The trigger now takes
the row locks in id order first, like every other multi-row lock in the store.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION cronicorn_job_status_to_endpoints() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM endpoints
            WHERE job_id = NEW.id AND job_active IS DISTINCT FROM (NEW.status = 'active')
            ORDER BY id
            FOR UPDATE;
            UPDATE endpoints SET job_active = (NEW.status = 'active')
            WHERE job_id = NEW.id AND job_active IS DISTINCT FROM (NEW.status = 'active');
            RETURN NULL;
        END $$;
        """
    )


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
