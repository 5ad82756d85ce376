"""Alembic environment: always driven programmatically by `cronicorn.store.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from cronicorn.store.tables import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - alembic CLI use is not supported
    raise RuntimeError("run migrations with `cronicorn migrate`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=True,
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
