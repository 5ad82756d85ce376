"""Apply Alembic migrations safely from any number of processes at once.

A session-level advisory lock serialises migrators: the second one waits, then finds nothing
pending and says so. Migrations are forward-only. Alembic itself loads only when something is
pending: a database at the code's head is recognised by `store.revisions` (issue 17: ~10 MB
of RSS in every `cronicorn up`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection

from cronicorn.store import revisions
from cronicorn.store.db import make_sync_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
LOCK_KEY = 0x6372_6F6E_6963  # "cronic": one key for every Cronicorn migrator


@dataclass(frozen=True)
class MigrationResult:
    before: str | None
    after: str | None
    applied: list[str]


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return revisions.code_head()


def current_revision(connection: Connection) -> str | None:
    return revisions.database_revision(connection)


def pending(connection: Connection) -> list[str]:
    """Revisions between the database's and the code's head, oldest first."""
    current = current_revision(connection)
    if current == head_revision():
        return []
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    revs = [rev.revision for rev in script.iterate_revisions("heads", current)]
    return list(reversed(revs))


def upgrade(url: str) -> MigrationResult:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
            conn.commit()
            try:
                before = current_revision(conn)
                todo = pending(conn)
                conn.commit()
                if todo:
                    from alembic import command

                    command.upgrade(alembic_config(conn), "head")
                    conn.commit()
                after = current_revision(conn)
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                conn.commit()
        return MigrationResult(before=before, after=after, applied=todo)
    finally:
        engine.dispose()


def status(url: str) -> tuple[str | None, list[str]]:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            return current_revision(conn), pending(conn)
    finally:
        engine.dispose()
