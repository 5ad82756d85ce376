"""`restore`: safety backup first, drop/recreate, load, counts, migrate forward."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from alembic import command

from backup.backup_support import counts, scalar, seed
from conftest import PgServer, with_database
from cronicorn.backup.context import BackupContext
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.errors import (
    ActiveClients,
    BackupNotFound,
    ConfigExists,
    IncompatibleBackup,
    WrongPassphrase,
)
from cronicorn.backup.layout import scan
from cronicorn.backup.restore import (
    RestoreOptions,
    pending_restore,
    restore_backup,
    restore_config,
)
from cronicorn.backup.verify import verify_backup
from cronicorn.store.db import make_sync_engine
from cronicorn.store.migrate import alembic_config, head_revision


def test_restore_brings_back_the_data_after_a_safety_backup(
    seeded: str, ctx: BackupContext
) -> None:
    before = counts(seeded)
    created = create_backup(ctx)
    with psycopg.connect(seeded) as conn:
        conn.execute("DELETE FROM runs")
        conn.execute("INSERT INTO jobs (id, user_id, name) VALUES ('late', 'u-seed', 'late')")
    changed = counts(seeded)

    done = restore_backup(ctx, created.name)

    assert counts(seeded) == before
    assert done.ok
    assert done.mismatches == []
    assert done.migrations == []
    assert done.revision == head_revision()
    assert done.jobs == 3
    assert done.safety_backup is not None
    assert pending_restore(ctx.backup_dir) is None
    kinds = {e.name: e.manifest.kind for e in scan(ctx.backup_dir) if e.manifest}
    assert kinds == {created.name: "manual", done.safety_backup: "safety"}
    names = scalar(seeded, "SELECT array_agg(name ORDER BY name) FROM backups")
    assert names == sorted(kinds), "the restored database indexes the backups on disk"
    # the safety backup holds the state the restore replaced
    restore_backup(ctx, done.safety_backup, RestoreOptions(safety_backup=False))
    assert counts(seeded) == changed


def test_restore_refuses_while_cronicorn_processes_are_connected(
    seeded: str, ctx: BackupContext
) -> None:
    created = create_backup(ctx)
    with (
        psycopg.connect(seeded, application_name="cronicorn-api@web-1:4242") as live,
        psycopg.connect(seeded, application_name="cronicorn-scheduler:listen") as untagged,
    ):
        backends = [live.info.backend_pid, untagged.info.backend_pid]
        with pytest.raises(ActiveClients) as caught:
            restore_backup(ctx, created.name)
        message = str(caught.value)
        assert "cronicorn-api on web-1 (pid 4242)" in message, "the app, its host and OS pid"
        assert "cronicorn-scheduler:listen (connected from local" in message
        for pid in backends:
            assert f"pid {pid}" not in message, "no server backend pids to kill by mistake"
        assert "--force" in message
        assert live.execute("SELECT count(*) FROM jobs").fetchone() == (3,), "untouched"
        done = restore_backup(ctx, created.name, RestoreOptions(force=True))
        assert done.ok
        assert live.closed or live.broken or _disconnected(live)


def _disconnected(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_an_older_backup_is_upgraded_on_restore(pg_server: PgServer, backup_dir: Path) -> None:
    """A database at revision 0001 (the first release): its backup restores to head."""
    old = pg_server.empty_database()
    try:
        engine = make_sync_engine(old)
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0001")
        engine.dispose()
        seed(old)
        ctx = BackupContext(database_url=old, backup_dir=backup_dir)
        created = create_backup(ctx)
        assert created.manifest.revision == "0001"
        assert not created.recorded, "no `kind` column at 0001: the index is skipped"
        done = restore_backup(ctx, created.name)
        assert done.restored_revision == "0001"
        assert done.migrations[0] == "0002"
        assert done.migrations[-1] == head_revision()
        assert done.revision == head_revision()
        assert counts(old) == {"users": 1, "jobs": 3, "endpoints": 6, "runs": 60}
        assert scalar(old, "SELECT count(*) FROM backups WHERE kind = 'manual'") == 1
    finally:
        pg_server.drop_database(old)


def test_a_backup_from_a_newer_release_is_refused(seeded: str, ctx: BackupContext) -> None:
    with psycopg.connect(seeded) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
    created = create_backup(ctx)
    with psycopg.connect(seeded) as conn:
        conn.execute("DELETE FROM runs")
    with pytest.raises(IncompatibleBackup, match=r"newer Cronicorn .*revision 0999.*upgrade"):
        restore_backup(ctx, created.name)
    assert counts(seeded, "runs") == {"runs": 0}, "nothing was touched"
    report = verify_backup(ctx, created.name)
    assert not report.ok
    revision = next(c for c in report.checks if c.name == "schema revision")
    assert revision.ok is False


def test_restore_into_another_database(seeded: str, ctx: BackupContext) -> None:
    created = create_backup(ctx)
    with psycopg.connect(seeded) as conn:
        conn.execute("DELETE FROM runs")
    target = "restored_copy_" + created.name[-7:-1].lower()
    try:
        done = restore_backup(ctx, created.name, RestoreOptions(target_db=target))
        assert done.database == target
        assert done.safety_backup is None, "nothing there to keep"
        assert counts(with_database(seeded, target))["runs"] == 60
        assert counts(seeded, "runs") == {"runs": 0}, "the configured database is untouched"
    finally:
        with psycopg.connect(with_database(seeded, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


def test_unknown_names_are_reported(ctx: BackupContext) -> None:
    with pytest.raises(BackupNotFound, match="cronicorn backup list"):
        restore_backup(ctx, "cronicorn-20000101T000000Z")
    with pytest.raises(BackupNotFound):
        verify_backup(ctx, "nope")


def test_config_restore_is_explicit_and_needs_the_passphrase(
    seeded: str, ctx: BackupContext, tmp_path: Path
) -> None:
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / ".env").write_text("AUTH_SECRET=original\n")
    (deploy / "docker-compose.override.yml").write_text("services: {}\n")
    created = create_backup(ctx, CreateOptions(config_dir=deploy))
    fresh = tmp_path / "new-machine"
    with pytest.raises(WrongPassphrase):
        restore_config(replace(ctx, passphrase="not the passphrase"), created.name, fresh)
    assert not fresh.exists() or not any(fresh.iterdir())
    done = restore_config(ctx, created.name, fresh)
    assert sorted(p.name for p in done.written) == [".env", "docker-compose.override.yml"]
    (deploy / ".env").write_text("AUTH_SECRET=edited\n")
    with pytest.raises(ConfigExists):
        restore_config(ctx, created.name, deploy)
    assert (deploy / ".env").read_text() == "AUTH_SECRET=edited\n"
    restore_config(ctx, created.name, deploy, overwrite=True)
    assert (deploy / ".env").read_text() == "AUTH_SECRET=original\n"
