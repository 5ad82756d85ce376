"""`create` and `verify` against a real PostgreSQL with the real pg_dump/pg_restore/psql."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backup.backup_support import counts, manifest_json, scalar, seed
from conftest import PgServer
from cronicorn import __version__
from cronicorn.backup import catalog
from cronicorn.backup.context import BackupContext
from cronicorn.backup.create import CreateOptions, create_backup
from cronicorn.backup.errors import PassphraseRequired
from cronicorn.backup.layout import scan
from cronicorn.backup.tools import bundled_bin_dir
from cronicorn.backup.verify import verify_backup
from cronicorn.store.migrate import head_revision


def test_custom_backup_manifest_describes_the_dump(seeded: str, ctx: BackupContext) -> None:
    created = create_backup(ctx)
    m = manifest_json(created.path)
    assert created.path.name.startswith("cronicorn-")
    assert created.path.name.endswith("Z")
    assert sorted(p.name for p in created.path.iterdir()) == ["db.dump", "manifest.json"]
    assert m["app_version"] == __version__
    assert m["revision"] == head_revision()
    assert m["format"] == "custom"
    assert m["server_version"].startswith("18")
    assert m["pg_dump_version"].startswith("18")
    assert m["database"] == seeded.split("?")[0].rsplit("/", 1)[1]
    assert m["created_at"].endswith("Z"), "UTC"
    expected = counts(seeded, "users", "jobs", "endpoints", "runs", "alembic_version")
    assert {k: m["row_counts"][k] for k in expected} == expected
    [dump] = m["files"]
    assert dump["size"] == (created.path / "db.dump").stat().st_size
    assert (created.path / "db.dump").read_bytes()[:5] == b"PGDMP"
    assert created.recorded
    assert scalar(seeded, "SELECT kind FROM backups WHERE name = %s", created.name) == "manual"


def test_counts_come_from_the_dumps_own_snapshot(seeded: str, ctx: BackupContext) -> None:
    """Rows inserted while the backup runs: the manifest's counts still equal what a restore
    of that very dump contains (verify compares them exactly)."""
    seed(seeded, jobs=2, endpoints=4, runs=20_000, tag="big-")
    stop = threading.Event()

    def writer() -> None:
        with psycopg.connect(seeded, autocommit=True) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                conn.execute(
                    "INSERT INTO jobs (id, user_id, name) VALUES (%s, 'u-seed', 'live')",
                    (f"live-{n}",),
                )

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        created = create_backup(ctx)
    finally:
        stop.set()
        thread.join()
    assert counts(seeded, "jobs")["jobs"] > created.manifest.row_counts["jobs"] >= 5
    report = verify_backup(ctx, created.name)
    assert report.ok, report.checks


def test_sql_gz_is_the_seeds_plain_dump_restorable_with_psql(
    seeded: str, ctx: BackupContext, pg_server: PgServer
) -> None:
    created = create_backup(ctx, CreateOptions(fmt="sql-gz"))
    text = gzip.decompress((created.path / "db.sql.gz").read_bytes()).decode()
    assert "CREATE TABLE public.jobs" in text
    assert "OWNER TO" not in text, "--no-owner"
    assert "GRANT " not in text, "--no-acl"
    target = pg_server.empty_database()
    try:
        psql = bundled_bin_dir() / "psql"  # type: ignore[operator]
        result = subprocess.run(
            [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert counts(target) == counts(seeded)
    finally:
        pg_server.drop_database(target)


def test_config_is_encrypted_or_refused(seeded: str, ctx: BackupContext, tmp_path: Path) -> None:
    config_dir = tmp_path / "deploy"
    config_dir.mkdir()
    (config_dir / ".env").write_text("AUTH_SECRET=super-secret-value-0123456789abcdef\n")
    created = create_backup(ctx, CreateOptions(config_dir=config_dir))
    assert created.manifest.config_files == [".env"]
    blob = (created.path / "config.enc").read_bytes()
    assert b"super-secret-value" not in blob
    no_pass = BackupContext(database_url=seeded, backup_dir=ctx.backup_dir)
    with pytest.raises(PassphraseRequired, match="--no-config"):
        create_backup(no_pass, CreateOptions(config_dir=config_dir))
    assert len(scan(ctx.backup_dir)) == 1, "the refused backup left nothing"
    quiet = create_backup(no_pass, CreateOptions(config_dir=config_dir, require_config=False))
    assert quiet.manifest.config_files == []
    assert "BACKUP_PASSPHRASE is not set" in quiet.manifest.notes[0]


def test_verify_restores_into_a_scratch_database_and_records_it(
    seeded: str, ctx: BackupContext, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("A=1\n")
    created = create_backup(ctx, CreateOptions(config_dir=tmp_path))
    report = verify_backup(ctx, created.name)
    assert report.ok
    by_name = {c.name: c for c in report.checks}
    assert by_name["row counts"].ok
    assert by_name["SELECT count(*) FROM jobs"].detail == "3 jobs"
    assert by_name["configuration"].ok
    assert by_name["restored revision"].detail == head_revision()
    recorded = manifest_json(created.path)["verification"]
    assert recorded["ok"] is True
    assert scalar(seeded, "SELECT verify_ok FROM backups WHERE name = %s", created.name) is True
    leftovers = scalar(
        seeded, "SELECT count(*) FROM pg_database WHERE datname LIKE 'cronicorn_verify_%%'"
    )
    assert leftovers == 0, "the scratch database is dropped"


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_damaged_backups_fail_verification_clearly(
    seeded: str, ctx: BackupContext, damage: str
) -> None:
    created = create_backup(ctx)
    dump = created.path / "db.dump"
    if damage == "flip":
        data = bytearray(dump.read_bytes())
        data[len(data) // 2] ^= 0xFF
        dump.write_bytes(bytes(data))
        expected = "sha256 differs"
    elif damage == "truncate":
        dump.write_bytes(dump.read_bytes()[:100])
        expected = "truncated: 100 of"
    elif damage == "delete":
        dump.unlink()
        expected = "missing"
    else:
        manifest = created.path / "manifest.json"
        manifest.write_text(manifest.read_text().replace('"jobs": 3', '"jobs": 4'))
        expected = "was altered after the backup was made"
    report = verify_backup(ctx, created.name)
    assert not report.ok
    failed = [c for c in report.checks if c.ok is False]
    assert any(expected in c.detail for c in failed), failed
    if damage != "manifest":
        assert manifest_json(created.path)["verification"]["ok"] is False
        restore = next(c for c in report.checks if c.name == "restore")
        assert restore.ok is None, "a damaged dump is not even loaded"


def test_verify_in_a_throwaway_embedded_server(seeded: str, ctx: BackupContext) -> None:
    created = create_backup(ctx, CreateOptions(fmt="sql-gz"))
    report = verify_backup(ctx, created.name, scratch="embedded")
    assert report.ok, report.checks
    assert report.scratch == "embedded"
    assert not list(Path("/tmp").glob("cronicorn-verify-*/pgdata/postmaster.pid"))


async def test_verifying_a_damaged_copy_elsewhere_leaves_the_real_backups_entry(
    seeded: str, ctx: BackupContext, tmp_path: Path, engine: AsyncEngine
) -> None:
    created = create_backup(ctx)
    assert verify_backup(ctx, created.name).ok
    good_at = await catalog.last_good(engine, verified_only=True)
    assert good_at == created.manifest.created_at
    copy = tmp_path / "copies" / created.name
    shutil.copytree(created.path, copy)
    dump = copy / "db.dump"
    dump.write_bytes(dump.read_bytes()[:100])

    report = verify_backup(ctx, str(copy))

    assert not report.ok
    assert manifest_json(copy)["verification"]["ok"] is False, "the copy records its result"
    row = "SELECT location || ' ' || verify_ok::text FROM backups WHERE name = %s"
    assert scalar(seeded, row, created.name) == f"{created.path} true"
    assert await catalog.last_good(engine, verified_only=True) == good_at, "health unchanged"
    listed = {e.name: e.manifest for e in scan(ctx.backup_dir)}
    check = listed[created.name].verification  # type: ignore[union-attr]
    assert check is not None
    assert check.ok
