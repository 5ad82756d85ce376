"""`store.revisions` answers what Alembic would, without importing it at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from conftest import PgServer
from cronicorn.backup.loading import known_revision
from cronicorn.store import revisions
from cronicorn.store.db import make_sync_engine
from cronicorn.store.migrate import alembic_config, pending


def test_the_code_head_and_every_revision_are_alembics() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert revisions.code_head() == script.get_current_head()
    assert {rev.revision: rev.down_revision for rev in script.walk_revisions()} == {
        rev.revision: rev.down_revision for rev in revisions.known().values()
    }
    assert known_revision(revisions.code_head())
    assert not known_revision("9999")
    assert not known_revision("00")


def test_the_database_revision_before_and_after_migrating(pg_server: PgServer) -> None:
    empty = make_sync_engine(pg_server.empty_database())
    migrated = make_sync_engine(pg_server.create_database())
    try:
        with empty.connect() as conn:
            assert revisions.database_revision(conn) is None
            assert pending(conn)[0] == "0001"
            assert pending(conn)[-1] == revisions.code_head()
        with migrated.connect() as conn:
            assert revisions.database_revision(conn) == revisions.code_head()
            assert pending(conn) == []
    finally:
        empty.dispose()
        migrated.dispose()


@pytest.mark.parametrize(
    "line",
    ['revision = "0002"\nrevision = "0003"\n', "revision = make_id()\n", "down_revision = None\n"],
)
def test_a_migration_file_it_cannot_read_is_an_error(tmp_path: Path, line: str) -> None:
    (tmp_path / "0001_odd.py").write_text(f'"""odd"""\n{line}')
    with pytest.raises(revisions.UnreadableMigration):
        revisions.read_versions(tmp_path)
