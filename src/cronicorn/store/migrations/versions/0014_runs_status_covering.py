"""A run's status in its endpoint's history index: filtered totals without heap visits

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 17:00:00

`ix_runs_endpoint_id_started_at` now also carries `status` (INCLUDE), so the run history's
`total` under a status filter (`?status=failed`, the endpoint page's filter) and the failure
streak of endpoint health are index-only scans instead of one heap page per run the endpoint
keeps (at 10M runs, 967 per endpoint: the failed-runs total read 974 buffers, 23-30 with the
covering index; bench/README.md, history at 10M runs, second pass). It adds no index writes:
a run's finish UPDATE was not HOT already (`status` is in `ix_runs_running`'s predicate).
Same name and keys as before: only the INCLUDE list is new. `runs` is locked against writes
while the index is rebuilt (about 25 s for 10M runs on a 2-core machine).
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX ix_runs_endpoint_id_started_at")
    op.execute(
        "CREATE INDEX ix_runs_endpoint_id_started_at ON runs (endpoint_id, started_at)"
        " INCLUDE (status)"
    )


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
