"""Covering indexes for the dashboard's per-endpoint totals

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 11:40:00

The dashboard's runs per job and busiest endpoints sum a range's `runs_daily` and
`runs_hourly` rows of one user (tens of thousands for 1,000 endpoints over a week). Their
`(user_id, day|hour)` indexes now also carry the columns those sums read (endpoint, source,
success, failed), so the sums are index-only scans instead of one heap visit per row
(`store/stats.py`, `Facts.narrow`). Same names and keys as before: only the INCLUDE list is
new. Each table is locked against writes while its index is rebuilt (the rollups are small
next to `runs`).
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COVERED = "endpoint_id, source, success, failed"


def upgrade() -> None:
    for table, at in (("runs_hourly", "hour"), ("runs_daily", "day")):
        name = f"ix_{table}_user_id_{at}"
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON {table} (user_id, {at}) INCLUDE ({COVERED})")


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
