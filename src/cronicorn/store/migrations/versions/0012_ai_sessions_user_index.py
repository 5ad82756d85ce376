"""AI sessions per user in a total order, with their tokens

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 14:00:00

The dashboard's activity timeline pages a user's AI sessions newest first by
`(analyzed_at, id)`, and its charts sum their tokens per bucket. The `(user_id, analyzed_at)`
index gave neither: sessions that share a time (a planner run analyses many endpoints at
once) had to be read and sorted whole before the first page (1,001 rows and 3,000 buffers
for a page of 20 in `bench/web.py`), and each token sum visited the heap. The index now ends
in `id` and carries `token_usage`, so the page reads its 20 entries and the sums and counts
are index-only scans. Same name; `ai_sessions` is locked against writes while it is rebuilt.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

NAME = "ix_ai_sessions_user_id_analyzed_at"


def upgrade() -> None:
    op.execute(f"DROP INDEX {NAME}")
    op.execute(
        f"CREATE INDEX {NAME} ON ai_sessions (user_id, analyzed_at, id) INCLUDE (token_usage)"
    )


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only; restore a backup to go back")
