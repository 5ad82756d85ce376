"""Overlap policy, skipped slots, concurrent runs and durable sibling effects

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 05:00:00

`endpoints.overlap` says what happens to a slot that comes due while a run of the endpoint
is still going: `skip` (the default, as before; now recorded as a `skipped` run),
`queue_one` (one run right after it ends) or `allow` (concurrent runs, at most
`endpoints.max_concurrent`, NULL: the default of `domain.overlap`). `endpoints.running`
counts the runs of an `allow` endpoint that continue after its next slot was planned
(detached runs); such a run holds its own lease (`runs.lease_owner`, `runs.lease_until`),
heartbeated and taken over like an endpoint's. `runs.status` gains `skipped`.

`rule_effects` holds response-rule effects on a sibling endpoint, written in the same
transaction that records the run and applied (then deleted) by any scheduler, so a crash
between the two cannot lose one. No foreign keys: checking one inside the batch would lock
the target's row, which another scheduler's batch may hold (a lock cycle); effects on an
endpoint deleted meanwhile are dropped when applied.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS overlap TEXT NOT NULL DEFAULT 'skip';
        ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS max_concurrent INTEGER;
        ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS running INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE endpoints ADD CONSTRAINT ck_endpoints_overlap
            CHECK (overlap IN ('skip', 'queue_one', 'allow'));
        ALTER TABLE endpoints ADD CONSTRAINT ck_endpoints_max_concurrent
            CHECK (max_concurrent BETWEEN 1 AND 100);
        ALTER TABLE endpoints ADD CONSTRAINT ck_endpoints_running CHECK (running >= 0);
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS lease_owner TEXT;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS lease_until TIMESTAMPTZ;
        CREATE INDEX IF NOT EXISTS ix_runs_lease_until ON runs (lease_until)
            WHERE lease_until IS NOT NULL;
        ALTER TABLE runs DROP CONSTRAINT ck_runs_status;
        ALTER TABLE runs ADD CONSTRAINT ck_runs_status
            CHECK (status IN ('running', 'success', 'failed', 'skipped'));
        CREATE TABLE IF NOT EXISTS rule_effects (
            id BIGSERIAL PRIMARY KEY,
            source_id TEXT NOT NULL,
            target_id TEXT NOT NULL,
            effect JSONB NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS ix_rule_effects_target_id ON rule_effects (target_id);
        """
    )


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
