"""The claim's lease write touches no index: ix_endpoints_lease_until dropped

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 16:10:00

Every claim writes `lease_owner`/`lease_until` on the endpoints it takes. With
`ix_endpoints_lease_until` that UPDATE changed an indexed column, so it could never be HOT:
each claimed row got a new entry in all five indexes of `endpoints` (and their WAL, and later
vacuum work), B-trees one level deeper at 1M endpoints than at 10k (bench/scale.py). Without
an index on the lease columns the lease UPDATE is HOT whenever the row's page has room, and
the take-over finds lost leases through runs in flight, the due index and a walk in
primary-key order instead (store/claims.py `TAKE_OVER_SQL`, `SWEEP_SQL`).

`fillfactor` 90 leaves a tenth of each page free for those new row versions: a claimed row
is updated twice per execution (the lease, then the finish write's next slot), and a HOT
update needs its new version on the same page. It applies to pages written from now on.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_endpoints_lease_until")
    op.execute("ALTER TABLE endpoints SET (fillfactor = 90)")


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
