"""endpoints.job_active: keep endpoints of paused or archived jobs out of the claim index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:25:00

Endpoints of a paused job keep their (past) `next_run_at`, so they sat at the front of
`ix_endpoints_due` and every claim walked past them: claim cost grew with the number of paused
endpoints. `job_active` mirrors `jobs.status = 'active'` and joins the index predicate. Two
triggers keep it true whatever writes the job (API, import, a restore, psql by hand): one on
job status changes, one on endpoint inserts and moves between jobs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "endpoints",
        sa.Column("job_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )
    op.execute(
        "UPDATE endpoints e SET job_active = false FROM jobs j "
        "WHERE j.id = e.job_id AND j.status <> 'active'"
    )
    op.drop_index("ix_endpoints_due", table_name="endpoints")
    op.create_index(
        "ix_endpoints_due",
        "endpoints",
        ["next_run_at"],
        postgresql_where=sa.text("archived_at IS NULL AND job_active"),
    )
    op.execute(
        """
        CREATE FUNCTION cronicorn_job_status_to_endpoints() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE endpoints SET job_active = (NEW.status = 'active')
            WHERE job_id = NEW.id AND job_active IS DISTINCT FROM (NEW.status = 'active');
            RETURN NULL;
        END $$;
        CREATE TRIGGER jobs_status_to_endpoints
            AFTER UPDATE OF status ON jobs
            FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
            EXECUTE FUNCTION cronicorn_job_status_to_endpoints();

        CREATE FUNCTION cronicorn_endpoint_job_active() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.job_active := COALESCE(
                (SELECT status = 'active' FROM jobs WHERE id = NEW.job_id), true);
            RETURN NEW;
        END $$;
        CREATE TRIGGER endpoints_job_active
            BEFORE INSERT OR UPDATE OF job_id ON endpoints
            FOR EACH ROW EXECUTE FUNCTION cronicorn_endpoint_job_active();
        """
    )


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
