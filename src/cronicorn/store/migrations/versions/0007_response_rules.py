"""Responses decide: assertions and rules per endpoint, the fired rules per run

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 03:00:00

`endpoints.assertions` ({statuses, conditions}; NULL: 2xx only) and
`endpoints.rules` (ordered [{name?, when, then}]; NULL: none) hold what the API
validated with `domain.rules`; `runs.rules_fired` lists the rules that fired after a run
([{index, name?, action, target?}]; NULL: none). `endpoints.retry` is the in-run retry
policy (NULL: no retries) and `runs.attempts` each call of a retried slot
([{attempt, statusCode?, durationMs, error?}]; NULL: a single call).
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS assertions JSONB;
        ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS rules JSONB;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS rules_fired JSONB;
        ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS retry JSONB;
        ALTER TABLE runs ADD COLUMN IF NOT EXISTS attempts JSONB;
        """
    )


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
