"""The per-endpoint rollups' primary keys carry the counts: per-endpoint reads without heap visits

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 19:00:00

`pk_runs_hourly` (endpoint_id, hour, source) and `pk_runs_daily` (endpoint_id, day, source)
now also carry `success`, `failed`, `timed` and `duration_ms` (INCLUDE). What reads the
rollups by endpoint reads only those: the dashboard's per-endpoint series (`store/stats.py`,
`Facts.series`: one `runs_hourly` row per endpoint and hour, 20 endpoints x 168 hours of a
week, each a heap page; ~180 buffers at 10M runs) and endpoint health's whole hours and days
(`store/runs.py`). Both become index-only scans. No extra index writes: a rollup row's
update that changes `success` or `failed` was not HOT already (0011 put them in the
`(user_id, hour|day)` indexes), and one that does not (a skipped slot) changes neither
`timed` nor `duration_ms`. The keys are the same; the trigger's `ON CONFLICT` still infers
them. Both tables are locked against writes while their keys are rebuilt, so runs cannot be
written meanwhile: 12-14 s for the 7.4 million hourly rows of ~10 million runs on 2 cores
(docs/self-hosting/upgrading.md). The wider keys add no measurable write cost (WAL per
100-run finish write within noise; bench/README.md, history at 10M runs, third pass).
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COVERED = "success, failed, timed, duration_ms"


def upgrade() -> None:
    for table, at in (("runs_hourly", "hour"), ("runs_daily", "day")):
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table},"
            f" ADD CONSTRAINT pk_{table} PRIMARY KEY (endpoint_id, {at}, source)"
            f" INCLUDE ({COVERED})"
        )


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
