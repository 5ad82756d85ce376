"""Apply Alembic migrations safely from any number of processes at once.

A session-level advisory lock serialises migrators: the second one waits, then finds nothing
pending and says so. Migrations are forward-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from cronicorn.store.db import make_sync_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
LOCK_KEY = 0x6372_6F6E_6963  # "cronic": one key for every Cronicorn migrator


@dataclass(frozen=True)
class MigrationResult:
    before: str | None
    after: str | None
    applied: list[str]


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def pending(connection: Connection) -> list[str]:
    """Revisions between the database's and the code's head, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    current = current_revision(connection)
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
